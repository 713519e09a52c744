//! The playlist's exact text, its window, which parts it lists, and the answers it gives a
//! blocking reload.

use super::*;
use std::time::UNIX_EPOCH;

const MS: Duration = Duration::from_millis(1);

fn playlist(target_secs: u64, window: usize) -> Playlist {
    Playlist::new(PlaylistConfig { part_target: 500 * MS, target_duration: Duration::from_secs(target_secs), window })
}

fn part(msn: u64, index: u32, millis: u64) -> HlsEvent {
    HlsEvent::Part { msn, index, duration: Duration::from_millis(millis), independent: index == 0, bytes: Vec::new() }
}

fn end(msn: u64, millis: u64, first_dts_millis: u64) -> HlsEvent {
    HlsEvent::SegmentEnd {
        msn,
        duration: Duration::from_millis(millis),
        first_dts: Duration::from_millis(first_dts_millis),
    }
}

/// Segments `msns` of four 500 ms parts each, back to back from media time 0.
fn segments(p: &mut Playlist, msns: std::ops::Range<u64>, clock: Option<SystemTime>) {
    for msn in msns {
        for index in 0..4 {
            p.apply(&part(msn, index, 500), clock);
        }
        p.apply(&end(msn, 2000, 2000 * msn), clock);
    }
}

#[test]
fn names() {
    assert_eq!(segment_name(5), "seg5.m4s");
    assert_eq!(part_name(5, 0), "seg5.0.m4s");
    assert_eq!(part_name(12, 3), "seg12.3.m4s");
    assert_eq!(INIT_NAME, "init.mp4");
}

#[test]
fn a_small_live_playlist_exactly() {
    let mut p = playlist(3, 10);
    // 2023-11-14T22:13:20Z is media time zero.
    let clock = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    segments(&mut p, 0..1, clock);
    p.apply(&part(1, 0, 500), clock);
    p.apply(
        &HlsEvent::Part { msn: 1, index: 1, duration: 166_667 * MS / 1000, independent: true, bytes: vec![] },
        clock,
    );
    assert_eq!(
        p.render(),
        "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:3
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500
#EXT-X-PART-INF:PART-TARGET=0.500
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z
#EXT-X-PART:DURATION=0.500,URI=\"seg0.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI=\"seg0.1.m4s\"
#EXT-X-PART:DURATION=0.500,URI=\"seg0.2.m4s\"
#EXT-X-PART:DURATION=0.500,URI=\"seg0.3.m4s\"
#EXTINF:2.000,
seg0.m4s
#EXT-X-PART:DURATION=0.500,URI=\"seg1.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.167,URI=\"seg1.1.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg1.2.m4s\"
"
    );
    p.apply(&end(1, 667, 2000), clock);
    p.finish();
    assert!(p.is_finished());
    let text = p.render();
    assert!(text.ends_with(
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z
#EXT-X-PART:DURATION=0.500,URI=\"seg1.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.167,URI=\"seg1.1.m4s\",INDEPENDENT=YES
#EXTINF:0.667,
seg1.m4s
#EXT-X-ENDLIST
"
    ));
    assert!(!text.contains("PRELOAD-HINT"), "nothing comes after the end");
}

#[test]
fn without_a_wall_clock_there_is_no_program_date_time() {
    let mut p = playlist(3, 10);
    segments(&mut p, 0..2, None);
    assert!(!p.render().contains("PROGRAM-DATE-TIME"));
}

#[test]
fn without_parts_it_is_a_plain_playlist() {
    let mut p = playlist(3, 10);
    segments(&mut p, 0..2, None);
    p.apply(&part(2, 0, 500), None);
    assert_eq!(
        p.render_without_parts(),
        "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:3
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:2.000,
seg0.m4s
#EXTINF:2.000,
seg1.m4s
"
    );
}

#[test]
fn the_window_slides_and_old_segments_lose_their_parts() {
    // Target 2 s: parts are listed for segments ending within the last 6 s.
    let mut p = playlist(2, 5);
    segments(&mut p, 0..7, None);
    p.apply(&part(7, 0, 500), None);
    let text = p.render();
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:2\n"), "{text}");
    assert!(!text.contains("seg1.m4s"));
    let listed: Vec<&str> = text.lines().filter(|l| l.starts_with("seg")).collect();
    assert_eq!(listed, ["seg2.m4s", "seg3.m4s", "seg4.m4s", "seg5.m4s", "seg6.m4s"]);
    // seg6 ends 0.5 s before the end, seg5 2.5 s, seg4 4.5 s, seg3 6.5 s.
    for msn in 2..=3 {
        assert!(!text.contains(&format!("URI=\"seg{msn}.0.m4s\"")), "seg{msn}'s parts are too old: {text}");
    }
    for msn in 4..=7 {
        assert!(text.contains(&format!("URI=\"seg{msn}.0.m4s\"")), "seg{msn}'s parts: {text}");
    }
    assert_eq!(p.media_sequence(), 2);
    let names = p.segment_names();
    assert_eq!(names.first().map(String::as_str), Some("seg2.m4s"));
    assert_eq!(names.iter().filter(|n| n.matches('.').count() == 2).count(), 3 * 4 + 1, "parts of seg4..6, and seg7.0");
    assert_eq!(names.last().map(String::as_str), Some("seg7.0.m4s"));
    for name in &names {
        assert!(text.contains(name.as_str()), "{name} is in the playlist");
    }
}

#[test]
fn has_answers_blocking_reloads() {
    let mut p = playlist(3, 10);
    assert!(!p.has(0, None) && !p.has(0, Some(0)));
    assert_eq!(p.last(), None);
    p.apply(&part(0, 0, 500), None);
    assert!(p.has(0, Some(0)));
    assert!(!p.has(0, Some(1)), "the next part is not there yet");
    assert!(!p.has(0, None), "the segment is not complete");
    assert_eq!(p.last(), Some((0, 0)));
    for index in 1..4 {
        p.apply(&part(0, index, 500), None);
    }
    p.apply(&end(0, 2000, 0), None);
    assert!(p.has(0, None));
    assert!(p.has(0, Some(3)));
    assert!(p.has(0, Some(4)), "a part beyond a complete segment's last counts as present");
    assert!(!p.has(1, Some(0)) && !p.has(1, None));
    assert_eq!(p.last(), Some((0, 3)));
    p.apply(&part(1, 0, 500), None);
    assert!(p.has(1, Some(0)) && !p.has(1, Some(1)) && !p.has(2, Some(0)));
    assert_eq!(p.last(), Some((1, 0)));
}

#[test]
fn the_preload_hint_names_the_next_part() {
    let hint = |p: &Playlist| p.render().lines().find(|l| l.starts_with("#EXT-X-PRELOAD-HINT")).map(str::to_owned);
    let mut p = playlist(3, 10);
    assert_eq!(hint(&p).as_deref(), Some("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg0.0.m4s\""));
    p.apply(&part(0, 0, 500), None);
    assert_eq!(hint(&p).as_deref(), Some("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg0.1.m4s\""));
    p.apply(&end(0, 500, 0), None);
    assert_eq!(hint(&p).as_deref(), Some("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg1.0.m4s\""));
    p.finish();
    assert_eq!(hint(&p), None);
    assert!(p.render().ends_with("#EXT-X-ENDLIST\n"));
}

#[test]
fn events_out_of_order_are_ignored() {
    let mut p = playlist(3, 10);
    p.apply(&part(0, 1, 500), None);
    assert_eq!(p.last(), None, "part 1 before part 0");
    segments(&mut p, 0..1, None);
    let before = p.render();
    p.apply(&part(0, 4, 500), None);
    p.apply(&end(0, 2000, 0), None);
    assert_eq!(p.render(), before, "segment 0 has ended");
    p.finish();
    p.apply(&part(1, 0, 500), None);
    assert!(!p.has(1, Some(0)), "nothing after the end");
}

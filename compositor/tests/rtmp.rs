//! Live streaming to real RTMP servers (nginx with its RTMP module, recording what it receives;
//! stunnel in front of it for RTMPS): several destinations at once, added and removed while
//! the program runs; a refused, hanging, frozen or restarted ingest reconnects on its own while
//! the other destinations and the recording lose no frame; stream keys never show.

mod common;
use common::*;
use std::time::{Duration, Instant};
use tessera_compositor::destination::{IvsChannelType, ReconnectPolicy};
use tessera_compositor::{
    CompositorError, DestinationId, DestinationInfo, DestinationSpec, DestinationStatus, IngestPreset, ProgramConfig,
    ProgramEvent, RtmpUrl,
};
use tessera_testkit::analysis::{
    GREEN, RED, assert_continuous, assert_no_frame_lost, decode_frames, ffprobe, video_packet_times,
};
use tessera_testkit::ports::free_port;
use tessera_testkit::rtmp::{BlackHole, NginxRtmp};
use tessera_testkit::tls::{Stunnel, TestCa};

fn destination(url: &str) -> DestinationSpec {
    DestinationSpec::new(RtmpUrl::parse(url).expect("valid URL"))
}

fn wait_status(room: &Room, id: DestinationId, want: &[DestinationStatus], timeout: f64) -> DestinationInfo {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        let info = room.program.destination(id).expect("destination exists");
        if want.contains(&info.status) {
            return info;
        }
        assert!(Instant::now() < deadline, "{id} never became {want:?}: {info:?}");
        sleep(0.05);
    }
}

/// No destination info, error or event shows a stream key.
fn assert_no_secret(room: &Room, infos: &[DestinationInfo], secrets: &[&str]) {
    let mut texts: Vec<String> = infos.iter().map(|i| format!("{i:?}")).collect();
    texts.extend(room.events.lock().unwrap().iter().map(|e| format!("{e:?}")));
    texts.extend(infos.iter().map(|i| serde_json::to_string(i).unwrap()));
    for t in &texts {
        for s in secrets {
            assert!(!t.contains(s), "a stream key leaked: {t}");
        }
    }
}

/// The FLV nginx recorded for `key`: every frame, evenly spaced; returns the frame count.
fn received_frames(server: &NginxRtmp, key: &str) -> Vec<usize> {
    server
        .recordings(key)
        .iter()
        .map(|file| assert_no_frame_lost(&video_packet_times(file), 30.0, &file.display().to_string()))
        .collect()
}

#[test]
fn streams_one_program_to_two_destinations_and_removes_one_while_live() {
    let nginx = NginxRtmp::start();
    let room = Room::new(ProgramConfig::default(), "grid");
    let _alice = room.join(spec("alice", RED, 440.0));
    let _bob = room.join(spec("bob", GREEN, 660.0));
    let rec = Recording::start(&room);
    let first = room
        .program
        .add_destination(destination(&nginx.url("first-SECRET1")).with_preset(IngestPreset::Youtube))
        .expect("youtube-like destination");
    let second = room
        .program
        .add_destination(
            destination(&nginx.url("second-SECRET2"))
                .with_preset(IngestPreset::Ivs { channel: IvsChannelType::Standard }),
        )
        .expect("ivs-like destination");
    wait_status(&room, first, &[DestinationStatus::Live], 10.0);
    wait_status(&room, second, &[DestinationStatus::Live], 10.0);

    // What a viewer of the ingest gets, read back by ffprobe over RTMP.
    let live = ffprobe(&nginx.url("first-SECRET1"));
    let video = live.video.expect("video on the ingest");
    assert_eq!(video.codec, "h264");
    assert_eq!((video.width, video.height), (Some(1280), Some(720)));
    assert!((video.fps.unwrap_or(0.0) - 30.0).abs() < 0.5, "fps {:?}", video.fps);
    let audio = live.audio.expect("audio on the ingest");
    assert_eq!(audio.codec, "aac");
    assert_eq!((audio.sample_rate, audio.channels), (Some(48000), Some(2)));

    sleep(2.0);
    let second_info = room.program.remove_destination(second).expect("second removed");
    assert_eq!(room.program.destinations().len(), 1);
    sleep(3.0);
    let first_info = room.program.remove_destination(first).expect("first removed");
    let rec_stats = rec.finish(&room);

    // Each ingest received every frame it was sent, in order, with no gap.
    let first_rx = received_frames(&nginx, "first-SECRET1");
    let second_rx = received_frames(&nginx, "second-SECRET2");
    assert_eq!(first_rx, vec![first_info.video_frames as usize], "first ingest: one publish, all frames");
    assert_eq!(second_rx, vec![second_info.video_frames as usize], "second ingest: one publish, all frames");
    // The removed one stopped about 3 s earlier; the first ran on.
    let (a, b) = (first_rx[0] as f64 / 30.0, second_rx[0] as f64 / 30.0);
    assert!(a - b > 2.0 && a - b < 4.5, "first {a:.1} s, second {b:.1} s");
    assert!(
        rec_stats.video_frames as usize >= first_rx[0],
        "the recording ran throughout: {rec_stats:?} {first_rx:?} {first_info:?}"
    );
    assert_eq!((first_info.reconnects, second_info.reconnects), (0, 0));
    assert!(first_info.bytes_sent > 100_000, "{first_info:?}");
    assert_eq!(first_info.url, format!("rtmp://127.0.0.1:{}/live/****", nginx.port));
    assert_eq!((first_info.preset.as_str(), second_info.preset.as_str()), ("youtube", "ivs-standard"));
    assert_no_secret(&room, &[first_info, second_info], &["SECRET1", "SECRET2"]);
}

#[test]
fn refused_hanging_and_frozen_ingests_cost_the_others_no_frame() {
    let good = NginxRtmp::start();
    let frozen = NginxRtmp::start();
    let hole = BlackHole::start();
    let refused_port = free_port();
    let room = Room::new(ProgramConfig::default(), "grid");
    let _alice = room.join(spec("alice", RED, 440.0));
    let _bob = room.join(spec("bob", GREEN, 660.0));
    let rec = Recording::start(&room);
    let good_id = room.program.add_destination(destination(&good.url("good-SECRETA"))).unwrap();
    let frozen_id = room.program.add_destination(destination(&frozen.url("frozen-SECRETB"))).unwrap();
    let hole_id = room
        .program
        .add_destination(destination(&format!("rtmp://127.0.0.1:{}/live/hole-SECRETC", hole.port)))
        .unwrap();
    let refused_id = room
        .program
        .add_destination(destination(&format!("rtmp://127.0.0.1:{refused_port}/live/refused-SECRETD")))
        .unwrap();
    wait_status(&room, good_id, &[DestinationStatus::Live], 10.0);
    wait_status(&room, frozen_id, &[DestinationStatus::Live], 10.0);
    sleep(1.0);
    // The second ingest stops reading: its connection backs up (the kernel buffers take a
    // while to fill) and its own queue drops what cannot be sent, nothing else notices.
    frozen.freeze();
    sleep(10.0);
    let refused = room.program.destination(refused_id).unwrap();
    assert_ne!(refused.status, DestinationStatus::Live);
    assert!(refused.reconnects >= 3, "refused ingest retries with backoff: {refused:?}");
    assert!(refused.last_error.as_deref().unwrap_or("").contains("refused"), "{refused:?}");
    let hanging = room.program.destination(hole_id).unwrap();
    assert_ne!(hanging.status, DestinationStatus::Live);
    assert!(hanging.last_error.as_deref().unwrap_or("").contains("timed out"), "{hanging:?}");
    let healthy = room.program.destination(good_id).unwrap();
    assert_eq!((healthy.status, healthy.reconnects), (DestinationStatus::Live, 0));
    // Once the frozen ingest reads again, it is live (on the same connection or a new one).
    frozen.thaw();
    wait_status(&room, frozen_id, &[DestinationStatus::Live], 40.0);
    sleep(2.0);

    let infos: Vec<DestinationInfo> = [good_id, frozen_id, hole_id, refused_id]
        .into_iter()
        .map(|id| room.program.remove_destination(id).expect("removed"))
        .collect();
    let rec_stats = rec.finish(&room);

    // The healthy ingest got every frame of its whole run, evenly spaced.
    let good_rx = received_frames(&good, "good-SECRETA");
    assert_eq!(good_rx, vec![infos[0].video_frames as usize], "healthy ingest lost frames");
    let good_seconds = good_rx[0] as f64 / 30.0;
    assert!(good_seconds > 12.0, "healthy ingest ran {good_seconds:.1} s");
    // And so did the recording.
    let frames = decode_frames(&rec.path, 160, 90);
    let n = assert_continuous(&frames, 30.0);
    assert_eq!(n as u64, rec_stats.video_frames, "recording lost frames");
    assert!(n > good_rx[0], "the recording covers the whole run");
    assert!(!frozen.recordings("frozen-SECRETB").is_empty());
    assert_no_secret(&room, &infos, &["SECRETA", "SECRETB", "SECRETC", "SECRETD"]);
    let events = room.events.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| matches!(e, ProgramEvent::DestinationChanged { destination, status: DestinationStatus::Reconnecting, .. } if *destination == refused_id)),
        "the refusals were reported: {events:?}"
    );
}

#[test]
fn a_destination_goes_live_again_after_its_server_is_killed_and_restarted() {
    let mut nginx = NginxRtmp::start();
    let room = Room::new(ProgramConfig::default(), "grid");
    let _alice = room.join(spec("alice", RED, 440.0));
    let rec = Recording::start(&room);
    let id = room.program.add_destination(destination(&nginx.url("restart-SECRET"))).unwrap();
    wait_status(&room, id, &[DestinationStatus::Live], 10.0);
    sleep(2.0);
    nginx.kill();
    let down = wait_status(&room, id, &[DestinationStatus::Reconnecting, DestinationStatus::Connecting], 10.0);
    eprintln!("after the kill: {down:?}");
    sleep(2.0);
    nginx.restart();
    let up = wait_status(&room, id, &[DestinationStatus::Live], 20.0);
    assert!(up.reconnects >= 1, "{up:?}");
    sleep(3.0);
    let info = room.program.remove_destination(id).unwrap();
    let rec_stats = rec.finish(&room);

    // Two publishes on the server: before the kill and after the restart, each without a gap.
    let rx = received_frames(&nginx, "restart-SECRET");
    assert!(rx.len() >= 2, "publishes: {rx:?}");
    assert!(*rx.last().unwrap() >= 80, "after the restart: {rx:?}");
    // The recording went on untouched throughout.
    let frames = decode_frames(&rec.path, 160, 90);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, rec_stats.video_frames);
    assert_no_secret(&room, &[info], &["SECRET"]);
}

fn rtmps_room() -> (NginxRtmp, TestCa, Stunnel, Room) {
    let nginx = NginxRtmp::start();
    let ca = TestCa::new();
    let tunnel = Stunnel::start(&ca, nginx.port);
    let room = Room::new(ProgramConfig::default(), "grid");
    (nginx, ca, tunnel, room)
}

#[test]
fn rtmps_goes_through_a_tls_terminator_that_a_trusted_test_ca_signed() {
    let (nginx, ca, tunnel, room) = rtmps_room();
    tessera_compositor::destination::trust_extra_ca_file(&ca.ca_cert).expect("CA trusted");
    let _alice = room.join(spec("alice", RED, 440.0));
    let url = format!("rtmps://localhost:{}/live/tls-SECRET", tunnel.port);
    let id = room.program.add_destination(destination(&url)).unwrap();
    let live = wait_status(&room, id, &[DestinationStatus::Live], 15.0);
    assert_eq!(live.url, format!("rtmps://localhost:{}/live/****", tunnel.port));
    sleep(3.0);
    let info = room.program.remove_destination(id).unwrap();
    let rx = received_frames(&nginx, "tls-SECRET");
    assert_eq!(rx, vec![info.video_frames as usize]);
    assert!(rx[0] >= 80, "{rx:?}");
    room.assert_no_failures();
}

#[test]
fn rtmps_refuses_a_certificate_from_an_unknown_ca() {
    let (nginx, _ca, tunnel, room) = rtmps_room();
    let url = format!("rtmps://localhost:{}/live/untrusted-SECRET", tunnel.port);
    let policy = ReconnectPolicy { max_attempts: Some(1), ..Default::default() };
    let id = room.program.add_destination(destination(&url).with_reconnect(policy)).unwrap();
    let failed = wait_status(&room, id, &[DestinationStatus::Failed], 20.0);
    eprintln!("untrusted: {failed:?}");
    let error = failed.last_error.clone().unwrap_or_default().to_lowercase();
    assert!(error.contains("certificate") || error.contains("tls"), "{error}");
    assert!(nginx.recordings("untrusted-SECRET").is_empty(), "nothing was published");
    room.program.remove_destination(id).unwrap();
    assert_no_secret(&room, &[failed], &["SECRET"]);
}

#[test]
fn a_preset_the_program_cannot_meet_is_refused_before_anything_connects() {
    let nginx = NginxRtmp::start();
    let room = Room::new(ProgramConfig::default(), "grid");
    let basic =
        destination(&nginx.url("basic-SECRET")).with_preset(IngestPreset::Ivs { channel: IvsChannelType::Basic });
    match room.program.add_destination(basic) {
        Err(CompositorError::InvalidDestination { field, reason }) => {
            assert_eq!(field, "program.width");
            assert!(reason.contains("852x480") && reason.contains("1280x720"), "{reason}");
            assert!(!reason.contains("SECRET"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(room.program.stats().outputs, 0, "no output was attached");
    assert!(room.program.destinations().is_empty());

    // The same preset on a program made for it is fine.
    let mut config = ProgramConfig::default();
    let preset = IngestPreset::Ivs { channel: IvsChannelType::Basic };
    preset.apply(&mut config);
    let small = Room::new(config, "grid");
    let id = small.program.add_destination(destination(&nginx.url("basic-SECRET")).with_preset(preset)).unwrap();
    wait_status(&small, id, &[DestinationStatus::Live], 10.0);
    let live = ffprobe(&nginx.url("basic-SECRET"));
    let video = live.video.expect("video");
    assert_eq!((video.width, video.height), (Some(852), Some(478)));
    small.program.remove_destination(id).unwrap();
}

#[test]
fn a_destination_added_late_in_a_long_program_gets_every_frame() {
    let nginx = NginxRtmp::start();
    let room = Room::new(ProgramConfig::default(), "grid");
    let _alice = room.join(spec("alice", RED, 440.0));
    // Longer than the outputs' queues hold (10 s): the queue must not take the program's
    // running time for its fill level.
    sleep(12.0);
    let id = room.program.add_destination(destination(&nginx.url("late-SECRET"))).unwrap();
    wait_status(&room, id, &[DestinationStatus::Live], 10.0);
    sleep(3.0);
    let info = room.program.remove_destination(id).unwrap();
    let rx = received_frames(&nginx, "late-SECRET");
    assert_eq!(rx, vec![info.video_frames as usize]);
    assert!(rx[0] >= 80, "{rx:?}");
    room.assert_no_failures();
}

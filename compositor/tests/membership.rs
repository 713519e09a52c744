//! Participants join, leave, stall and publish no video while the program keeps running.

mod common;
use common::*;
use std::sync::atomic::Ordering;
use tessera_compositor::{ProgramConfig, TrackKind};
use tessera_testkit::analysis::{
    GREEN, RED, assert_color, assert_continuous, decode_audio, decode_frames, tone_amplitude,
};

const CANVAS: (u32, u32) = (1280, 720);

#[test]
fn participants_join_and_leave_mid_stream() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    let a = room.join(spec("alice", RED, 440.0));
    sleep(2.5);
    let alone = room.program.tiles();
    let b = room.join(spec("bob", GREEN, 660.0));
    room.program.sync_scene(std::time::Duration::from_secs(2)).unwrap();
    let t_join = rec.now(&room);
    sleep(3.5);
    let both = room.program.tiles();
    room.leave(&a);
    let t_leave = rec.now(&room);
    let bob_alone = room.program.tiles();
    sleep(2.5);
    let stats = rec.finish(&room);
    drop(b);

    assert_eq!(alone.len(), 1);
    assert_eq!(alone[0].rect.width, 1280 - 2 * alone[0].rect.x as u32, "alone: the whole canvas");
    assert_eq!(both.len(), 2);
    assert_eq!(bob_alone.len(), 1);
    assert_eq!(bob_alone[0].participant, "bob");

    let frames = decode_frames(&rec.path, 320, 180);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, stats.video_frames);
    let centre = (640.0, 360.0);
    assert_color(&frames, 1.0, t_join - 0.1, centre, CANVAS, RED, "alice alone");
    let (pa, pb) = (tile_center(&both, "alice").unwrap(), tile_center(&both, "bob").unwrap());
    // bob's first picture needs a keyframe and a full jitter buffer: allow a moment.
    assert_color(&frames, t_join + 2.0, t_leave - 0.1, pa, CANVAS, RED, "alice with bob");
    assert_color(&frames, t_join + 2.0, t_leave - 0.1, pb, CANVAS, GREEN, "bob with alice");
    assert_color(&frames, t_leave + 0.2, t_leave + 2.3, centre, CANVAS, GREEN, "bob alone");
    assert_eq!(room.program.stats().tracks, 2, "alice's tracks are gone");
}

#[test]
fn a_stalled_input_freezes_its_tile_and_recovers_while_the_program_runs() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    let _a = room.join(spec("alice", RED, 440.0));
    let b = room.join(spec("bob", GREEN, 660.0));
    sleep(2.5);
    let tiles = room.program.tiles();
    let requests_before = room.keyframe_requests.lock().unwrap().len();
    b.open.store(false, Ordering::SeqCst);
    let t_stall = rec.now(&room);
    sleep(3.0);
    b.open.store(true, Ordering::SeqCst);
    let t_resume = rec.now(&room);
    sleep(2.5);
    let stats = rec.finish(&room);

    let frames = decode_frames(&rec.path, 320, 180);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, stats.video_frames, "constant frame rate");
    let (pa, pb) = (tile_center(&tiles, "alice").unwrap(), tile_center(&tiles, "bob").unwrap());
    let end = frames.last().unwrap().pts;
    assert_color(&frames, 1.5, end, pa, CANVAS, RED, "alice throughout");
    assert_color(&frames, 1.5, t_stall, pb, CANVAS, GREEN, "bob before the stall");
    // While stalled, bob's tile keeps its last picture; it is never left black.
    assert_color(&frames, t_stall, t_resume, pb, CANVAS, GREEN, "bob frozen");
    assert_color(&frames, t_resume + 1.0, end, pb, CANVAS, GREEN, "bob after the stall");
    // Packets resumed after a gap: the decoder asked for a keyframe (a PLI, in the SFU).
    let bob_video = b.tracks[&TrackKind::Camera];
    let requests = room.keyframe_requests.lock().unwrap();
    assert!(
        requests[requests_before..].contains(&bob_video),
        "a keyframe was requested for bob's video after the stall: {requests:?}"
    );
}

#[test]
fn a_participant_without_video_gets_a_name_card_and_is_heard() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    let _a = room.join(spec("alice", RED, 440.0));
    let mut d = spec("dave", 0, 990.0);
    d.video = None;
    let _d = room.join(d);
    sleep(3.5);
    let tiles = room.program.tiles();
    rec.finish(&room);
    let card = tiles.iter().find(|t| t.participant == "dave").expect("dave has a tile");
    assert_eq!(card.source, tessera_compositor::layout::TileSource::Placeholder);
    let frames = decode_frames(&rec.path, 320, 180);
    let end = frames.last().unwrap().pts;
    // The card's background colour (#2d3440) away from the centred name.
    let spot = (card.rect.x as f64 + 20.0, card.rect.y as f64 + 20.0);
    assert_color(&frames, 1.0, end, spot, CANVAS, 0x2d3440, "dave's name card");
    // The name is drawn: the card's centre row has bright (text) pixels.
    let last = frames.last().unwrap();
    let (cx, cy) = tile_center(&tiles, "dave").unwrap();
    let bright = (0..60)
        .map(|i| last.color_at(cx - 150.0 + i as f64 * 5.0, cy, 1280, 720))
        .filter(|c| c.0 as u32 + c.1 as u32 + c.2 as u32 > 3 * 110)
        .count();
    assert!(bright > 3, "the name is written on the card ({bright} bright samples)");
    let audio = decode_audio(&rec.path);
    let tail = &audio[audio.len() - 48000..];
    assert!(tone_amplitude(tail, 48000.0, 990.0) > 0.02, "dave is heard");
}

//! The live preview: JPEG stills of the composited program, renewed twice a second from a
//! branch before the encoder, without costing the recording a frame; the branch goes away when
//! nobody looks and comes back on the next request.

mod common;
use common::*;
use std::time::{Duration, Instant};
use tessera_compositor::ProgramConfig;
use tessera_compositor::program::PREVIEW_FPS;
use tessera_testkit::analysis::{BLUE, RED, assert_continuous, close, decode_frames, decode_jpeg};

const CANVAS: (u32, u32) = (1280, 720);

#[test]
fn the_preview_shows_the_program_and_leaves_the_recording_whole() {
    let room = Room::new(ProgramConfig::default(), "grid");
    room.program.set_preview_idle_timeout(Duration::from_secs(2));
    let rec = Recording::start(&room);
    let _a = room.join(spec("alice", RED, 440.0));
    let _b = room.join(spec("bob", BLUE, 660.0));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !room.program.participants().iter().all(|p| p.camera.is_some_and(|c| c.width > 0)) {
        assert!(Instant::now() < deadline, "the cameras never decoded");
        sleep(0.1);
    }
    sleep(1.0);
    let tiles = room.program.tiles();

    // The first request attaches the branch and waits for its first still.
    let asked = Instant::now();
    let first = room.program.preview(Duration::from_secs(5)).expect("a first still");
    eprintln!("first still after {:?}: {} bytes", asked.elapsed(), first.jpeg.len());
    assert!(asked.elapsed() < Duration::from_secs(3));
    assert_eq!(&first.jpeg[..2], &[0xff, 0xd8], "a JPEG");
    assert_eq!((first.width, first.height), (640, 360));
    assert!(room.program.preview_attached());

    // Stills keep coming, at the preview rate, each newer than the last.
    let mut seen = vec![first.clone()];
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        sleep(0.1);
        let p = room.program.preview(Duration::from_secs(1)).unwrap();
        if p.sequence != seen.last().unwrap().sequence {
            assert!(p.position > seen.last().unwrap().position, "stills move forward");
            seen.push(p);
        }
    }
    let rate = (seen.len() - 1) as f64 / 3.0;
    eprintln!("{} new stills in 3 s", seen.len() - 1);
    assert!(rate >= 1.3 && rate <= PREVIEW_FPS as f64 + 1.0, "stills a second: {rate}");
    let gaps: Vec<f64> = seen.windows(2).map(|w| (w[1].position - w[0].position).as_secs_f64()).collect();
    assert!(gaps.iter().all(|g| *g < 1.0), "a still at least every second: {gaps:?}");

    // The stills show what the program shows: alice red, bob blue in their grid tiles.
    let last = seen.last().unwrap();
    let frame = decode_jpeg(&last.jpeg, 320, 180);
    for (who, color) in [("alice", RED), ("bob", BLUE)] {
        let at = tile_center(&tiles, who).unwrap();
        let c = frame.color_at(at.0, at.1, CANVAS.0, CANVAS.1);
        assert!(close(c, color), "{who} in the still: {c:?}, want #{color:06x}");
    }

    // Nobody looks: the branch goes, the program is not kept by it, and it comes back.
    let deadline = Instant::now() + Duration::from_secs(6);
    while room.program.preview_attached() {
        assert!(Instant::now() < deadline, "the idle preview stayed attached");
        sleep(0.2);
    }
    let again = room.program.preview(Duration::from_secs(5)).expect("a still after re-attaching");
    assert!(again.sequence >= 1 && again.position > last.position);

    // The recording lost no frame to the branch coming and going.
    sleep(1.0);
    let stats = rec.finish(&room);
    let frames = decode_frames(&rec.path, 160, 90);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, stats.video_frames, "no gap, no lost frame");
    assert!(room.program.is_idle(), "the preview does not keep the program running");
}

//! Renditions: one program composed at two sizes at once from the same decoded inputs. A
//! 1280x720 grid and a 720x1280 portrait recording run side by side: each file has its size
//! and its layout, every camera is decoded once, a participant joining or leaving shows in
//! both, and the second rendition goes away with its last output.

mod common;
use common::*;
use gst::prelude::*;
use tessera_compositor::layout::Layout;
use tessera_compositor::{OutputSpec, ProgramConfig, RenditionId, RenditionRequest, VideoFormat};
use tessera_testkit::analysis::{BLUE, GREEN, RED, assert_color, assert_continuous, decode_frames, ffprobe};

const LANDSCAPE: (u32, u32) = (1280, 720);
const PORTRAIT: (u32, u32) = (720, 1280);

fn portrait() -> RenditionRequest {
    RenditionRequest {
        format: VideoFormat { width: PORTRAIT.0, height: PORTRAIT.1, fps: 30, bitrate_kbps: 1500 },
        layout: Layout::builtin("portrait-grid").expect("built-in layout"),
    }
}

#[test]
fn a_portrait_rendition_runs_beside_the_program_from_the_same_decoders() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let _alice = room.join(spec("alice", RED, 440.0));
    let bob = room.join(spec("bob", GREEN, 660.0));
    let landscape = Recording::start(&room);
    sleep(1.0);
    let dir = tmpdir();
    let portrait_path = dir.path().join("portrait.mp4");
    let output = room.program.attach_output_in(&portrait(), OutputSpec::mp4_file(&portrait_path)).expect("rendition");
    let rendition = room.program.output_rendition(output).expect("attached");
    assert_ne!(rendition, RenditionId::PRIMARY, "another size is another rendition");
    let renditions = room.program.renditions();
    assert_eq!(renditions.len(), 2, "{renditions:?}");
    assert_eq!((renditions[1].format.width, renditions[1].format.height), PORTRAIT);
    // The same format again joins the running rendition.
    let again = dir.path().join("again.mp4");
    let second = room.program.attach_output_in(&portrait(), OutputSpec::mp4_file(&again)).expect("same rendition");
    assert_eq!(room.program.output_rendition(second), Some(rendition));
    assert_eq!(room.program.renditions().len(), 2);

    sleep(2.0);
    room.program.sync_scene(std::time::Duration::from_secs(2)).expect("both scenes on screen");
    // Each camera decoded once for both renditions (the synthetic participants send VP8).
    assert_eq!(room.program.decoders().video, 2, "one decoder per camera");
    let grid = room.program.tiles();
    let stacked = room.program.rendition_tiles(rendition).expect("portrait tiles");
    assert!(stacked.iter().all(|t| t.rect.x + t.rect.width as i32 <= PORTRAIT.0 as i32), "{stacked:?}");

    // Carol joins both; bob leaves both.
    let now = || {
        let started = room.program.output_stats(output).and_then(|s| s.started_at).expect("started");
        room.program.stats().position.as_secs_f64() - started.as_secs_f64()
    };
    let carol_joins = now();
    let carol_joins_landscape = landscape.now(&room);
    let _carol = room.join(spec("carol", BLUE, 880.0));
    sleep(2.0);
    let bob_leaves = now();
    assert_eq!(room.program.decoders().video, 3);
    let with_carol = room.program.rendition_tiles(rendition).expect("portrait tiles");
    assert!(with_carol.iter().any(|t| t.participant == "carol"), "{with_carol:?}");
    room.leave(&bob);
    sleep(1.5);
    assert_eq!(room.program.decoders().video, 2, "bob's decoder went with his track");

    let portrait_stats = room.program.detach_output(output).expect("portrait finishes");
    assert_eq!(room.program.renditions().len(), 2, "the other output still uses it");
    room.program.detach_output(second).expect("second finishes");
    assert_eq!(room.program.renditions().len(), 1, "the rendition went with its last output");
    let names: Vec<String> =
        room.program.pipeline().iterate_recurse().into_iter().flatten().map(|e| e.name().to_string()).collect();
    assert!(!names.iter().any(|n| n.ends_with(&format!("-r{}", rendition.0))), "left behind: {names:?}");
    sleep(1.0);
    let landscape_stats = landscape.finish(&room);
    room.assert_no_failures();

    let probe = ffprobe(portrait_path.to_str().unwrap());
    let v = probe.video.expect("portrait video");
    assert_eq!((v.width, v.height), (Some(PORTRAIT.0), Some(PORTRAIT.1)));
    assert!(probe.audio.is_some(), "the program's audio is in every rendition's file");
    let probe = ffprobe(landscape.path.to_str().unwrap());
    let v = probe.video.expect("landscape video");
    assert_eq!((v.width, v.height), (Some(LANDSCAPE.0), Some(LANDSCAPE.1)));

    // Each file in its own layout: the grid puts alice and bob side by side, the portrait
    // grid one above the other.
    let frames = decode_frames(&portrait_path, 180, 320);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, portrait_stats.video_frames, "no gap in the portrait file");
    let alice = tile_center(&stacked, "alice").expect("alice in the portrait");
    let bob_at = tile_center(&stacked, "bob").expect("bob in the portrait");
    assert_color(&frames, 1.0, carol_joins - 0.1, alice, PORTRAIT, RED, "alice in the portrait");
    assert_color(&frames, 1.0, carol_joins - 0.1, bob_at, PORTRAIT, GREEN, "bob in the portrait");
    let carol_at = tile_center(&with_carol, "carol").expect("carol in the portrait");
    assert_color(&frames, bob_leaves - 0.8, bob_leaves - 0.1, carol_at, PORTRAIT, BLUE, "carol in the portrait");
    let frames = decode_frames(&landscape.path, 320, 180);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, landscape_stats.video_frames, "no gap in the grid");
    // Until carol joins: then the grid has three cells.
    let until = carol_joins_landscape - 0.1;
    assert_color(&frames, 1.0, until, tile_center(&grid, "alice").unwrap(), LANDSCAPE, RED, "alice in the grid");
    assert_color(&frames, 1.0, until, tile_center(&grid, "bob").unwrap(), LANDSCAPE, GREEN, "bob in the grid");
}

#[test]
fn an_rtp_output_takes_the_programs_own_rendition() {
    let room = Room::new(ProgramConfig::default(), "grid");
    struct Nowhere;
    impl tessera_compositor::RtpSink for Nowhere {
        fn video(&self, _: &[u8]) {}
        fn audio(&self, _: &[u8]) {}
    }
    let spec = tessera_compositor::RtpOutputSpec::new(std::sync::Arc::new(Nowhere));
    let err = room.program.attach_output_in(&portrait(), OutputSpec::Rtp(spec)).expect_err("refused");
    assert!(err.to_string().contains("own rendition"), "{err}");
    assert_eq!(room.program.renditions().len(), 1, "nothing left behind");
}

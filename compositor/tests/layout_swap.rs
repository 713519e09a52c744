//! Layouts change on the next frames of a running program: no encoder restart, no timestamp
//! gap, no black frame; speaking does not reshuffle a grid; speaker layouts follow the speaker.

mod common;
use common::*;
use tessera_compositor::ProgramConfig;
use tessera_compositor::layout::Layout;
use tessera_testkit::analysis::{
    BLUE, GREEN, RED, assert_color, assert_continuous, close, decode_frames, ffprobe, frames_in,
};

const CANVAS: (u32, u32) = (1280, 720);

#[test]
fn swapping_the_layout_mid_stream_takes_effect_on_the_next_frames() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    let _a = room.join(spec("alice", RED, 440.0));
    let _b = room.join(spec("bob", GREEN, 660.0));
    sleep(3.0);
    let grid_tiles = room.program.tiles();
    room.program.set_layout(Layout::builtin("pip").unwrap()).expect("layout swap");
    // set_layout returns once the program composes with the new layout.
    let swapped_at = rec.now(&room);
    let pip_tiles = room.program.tiles();
    sleep(3.0);
    let stats = rec.finish(&room);

    let frames = decode_frames(&rec.path, 320, 180);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, stats.video_frames, "no gap, no lost frame");
    let info = ffprobe(rec.path.to_str().unwrap());
    assert_eq!(info.video.unwrap().width, Some(1280), "same encoder, same stream");

    // pip: the first joined fills the canvas, the other is an inset above it.
    let main = pip_tiles.iter().find(|t| t.participant == "alice").unwrap();
    let inset = pip_tiles.iter().find(|t| t.participant == "bob").unwrap();
    assert_eq!((main.rect.width, main.rect.height), (1280, 720));
    assert!(inset.rect.width < 640 && inset.zorder > main.zorder);

    let before = (tile_center(&grid_tiles, "alice").unwrap(), tile_center(&grid_tiles, "bob").unwrap());
    let bob_inset = tile_center(&pip_tiles, "bob").unwrap();
    // Where bob was in the grid, alice's full-canvas picture shows after the swap.
    let spot = before.1;
    let r = inset.rect;
    let in_inset = spot.0 >= r.x as f64
        && spot.0 < (r.x + r.width as i32) as f64
        && spot.1 >= r.y as f64
        && spot.1 < (r.y + r.height as i32) as f64;
    assert!(!in_inset, "probe point clear of the inset");
    assert_color(&frames, 1.5, swapped_at - 0.1, before.0, CANVAS, RED, "alice before");
    assert_color(&frames, 1.5, swapped_at - 0.1, spot, CANVAS, GREEN, "bob before");
    assert_color(&frames, swapped_at + 0.1, swapped_at + 2.5, spot, CANVAS, RED, "alice after");
    assert_color(&frames, swapped_at + 0.1, swapped_at + 2.5, bob_inset, CANVAS, GREEN, "bob inset");
    // Around the swap every frame is one layout or the other (never black), and the switch
    // happens once, on the frame the call returned at.
    let mut first_new = None;
    for f in frames_in(&frames, swapped_at - 1.0, swapped_at + 1.0) {
        let c = f.color_at(spot.0, spot.1, 1280, 720);
        assert!(close(c, GREEN) || close(c, RED), "frame at {:.3}: {c:?}", f.pts);
        match (close(c, RED), first_new) {
            (true, None) => first_new = Some(f.pts),
            (false, Some(t)) => panic!("switched back at {:.3} after switching at {t:.3}", f.pts),
            _ => {}
        }
    }
    let first_new = first_new.expect("the new layout appears");
    assert!((first_new - swapped_at).abs() <= 0.07, "switched at {first_new:.3}, call returned at {swapped_at:.3}");
}

#[test]
fn speaking_does_not_reshuffle_a_grid_but_moves_the_active_speaker_view() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    let _a = room.join(spec("alice", RED, 440.0));
    let _b = room.join(spec("bob", GREEN, 660.0));
    let _c = room.join(spec("carol", BLUE, 880.0));
    sleep(2.0);
    let grid = room.program.tiles();
    room.program.set_active_speakers(&["carol".to_string()]);
    room.program.sync_scene(std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(room.program.tiles(), grid, "a grid keeps its order when someone speaks");

    room.program.set_layout(Layout::builtin("active-speaker").unwrap()).unwrap();
    let t1 = rec.now(&room);
    let carol_main = room.program.tiles();
    sleep(1.5);
    room.program.set_active_speakers(&["bob".to_string(), "carol".to_string()]);
    room.program.sync_scene(std::time::Duration::from_secs(2)).unwrap();
    let t2 = rec.now(&room);
    let bob_main = room.program.tiles();
    sleep(1.5);
    rec.finish(&room);

    let biggest = |tiles: &[tessera_compositor::layout::Tile]| {
        tiles.iter().max_by_key(|t| t.rect.width * t.rect.height).unwrap().participant.clone()
    };
    assert_eq!(biggest(&carol_main), "carol");
    assert_eq!(biggest(&bob_main), "bob");
    let frames = decode_frames(&rec.path, 320, 180);
    assert_continuous(&frames, 30.0);
    let main_spot = (640.0, 200.0);
    assert_color(&frames, t1 + 0.1, t2 - 0.1, main_spot, CANVAS, BLUE, "carol speaking");
    assert_color(&frames, t2 + 0.1, t2 + 1.4, main_spot, CANVAS, GREEN, "bob speaking");
}

#[test]
fn an_invalid_layout_is_refused_and_the_program_is_untouched() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    let _a = room.join(spec("alice", RED, 440.0));
    sleep(2.0);
    let tiles = room.program.tiles();
    let bad = r#"{"name":"bad","regions":[{"x":0.5,"y":0,"width":0.8,"height":1}]}"#;
    let err = room.program.set_layout_json(bad).expect_err("x + width > 1");
    let text = err.to_string();
    assert!(text.contains("/regions/0"), "names the JSON path: {text}");
    let err = room.program.set_layout_json("{not json").expect_err("syntax error");
    assert!(err.to_string().contains("line"), "says where: {err}");
    assert_eq!(room.program.layout().name(), "grid");
    assert_eq!(room.program.tiles(), tiles);
    sleep(1.5);
    let stats = rec.finish(&room);
    let frames = decode_frames(&rec.path, 160, 90);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, stats.video_frames);
    assert!(close(frames.last().unwrap().color_at(640.0, 360.0, 1280, 720), RED));
}

#[test]
fn a_user_layout_file_drives_the_running_program() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    let _a = room.join(spec("alice", RED, 440.0));
    let _b = room.join(spec("bob", GREEN, 660.0));
    let _c = room.join(spec("carol", BLUE, 880.0));
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/layouts/two-up-with-strip.json");
    let json = std::fs::read_to_string(file).expect("fixture");
    room.program.set_active_speakers(&["carol".to_string(), "alice".to_string()]);
    room.program.set_layout_json(&json).expect("user layout applies");
    let t = rec.now(&room);
    let tiles = room.program.tiles();
    sleep(2.5);
    rec.finish(&room);
    // The two latest speakers share the stage (top 75%), in join order; bob is in the strip.
    let stage: Vec<&str> = tiles.iter().filter(|t| t.region == 0).map(|t| t.participant.as_str()).collect();
    assert_eq!(stage, ["alice", "carol"]);
    let bob = tiles.iter().find(|t| t.participant == "bob").unwrap();
    assert_eq!(bob.region, 1);
    assert!(bob.rect.y >= 540, "bob in the bottom strip: {:?}", bob.rect);
    let frames = decode_frames(&rec.path, 320, 180);
    let end = frames.last().unwrap().pts;
    for (who, color) in [("alice", RED), ("carol", BLUE), ("bob", GREEN)] {
        assert_color(&frames, t + 1.0, end, tile_center(&tiles, who).unwrap(), CANVAS, color, who);
    }
    // The layout's own background colour (#101820) shows between the stage and the strip.
    let gap = frames.last().unwrap().color_at(640.0, 4.0, 1280, 720);
    assert!(close(gap, 0x101820), "background {gap:?}");
}

/// The background colour is set by the layout; changing it while the program streams must not
/// race the background source (GStreamer 1.22's `videotestsrc` frees its cached frame on a
/// property change without a lock; set from another thread this stopped the program in one CI
/// run). The race is narrow: this test guards the behaviour, it does not reliably reproduce
/// the old failure.
#[test]
fn background_colour_changes_many_times_while_streaming() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    let layout = |bg: &str| {
        format!(
            r#"{{"name":"bg","background":"{bg}","regions":[{{"x":0,"y":0,"width":1,"height":1,"select":["rest"]}}]}}"#
        )
    };
    for i in 0..60 {
        let bg = if i % 2 == 0 { "#c02020" } else { "#2040c0" };
        room.program.set_layout_json(&layout(bg)).expect("layout applies");
        sleep(0.02);
    }
    room.program.set_layout_json(&layout("#204060")).expect("layout applies");
    let t = rec.now(&room);
    sleep(1.5);
    // `finish` fails the test if the program reported any failure.
    let stats = rec.finish(&room);
    let frames = decode_frames(&rec.path, 320, 180);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, stats.video_frames, "no gap, no lost frame");
    for f in frames_in(&frames, t + 0.2, frames.last().unwrap().pts) {
        let c = f.color_at(640.0, 360.0, 1280, 720);
        assert!(close(c, 0x204060), "frame at {:.3}: {c:?}", f.pts);
    }
}

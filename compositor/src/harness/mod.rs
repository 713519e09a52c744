//! The compositor's test harness: a room [`Program`](crate::Program) fed by synthetic
//! participants (real RTP from GStreamer encoders, [`crate::synthetic`]), and recordings of
//! it to an MP4 file.
//!
//! For tests that need a live program without an SFU: the compositor's own integration tests
//! and the binary's tests of what it builds on a program (its recording store). It lives in the
//! crate rather than in the test kit (`tessera-testkit`), which depends on none of Tessera's
//! crates. Reading back what was recorded (frames, colours, tones, ffprobe) is the test kit's
//! `analysis`.
//!
//! ```rust,ignore
//! let room = Room::new(ProgramConfig::default(), "grid");
//! let alice = room.join(spec("alice", 0xff0000, 440.0));
//! let rec = Recording::start(&room, dir.path());
//! sleep(4.0);
//! room.leave(&alice);
//! let stats = rec.finish(&room);
//! ```
//!
//! Compiled only with the `test-harness` feature (tests only: the production build has no
//! harness); the crate's own integration tests have it.

mod recording;
mod room;

use std::time::Duration;

use crate::layout::{Tile, TileSource};
use crate::synthetic::SyntheticSpec;

pub use recording::Recording;
pub use room::{Room, Sender};

/// A synthetic participant `identity` showing `color` (0xRRGGBB) and playing a `tone` (Hz).
pub fn spec(identity: &str, color: u32, tone: f64) -> SyntheticSpec {
    SyntheticSpec::new(identity, color, tone)
}

/// Lets the program run for `s` seconds.
pub fn sleep(s: f64) {
    std::thread::sleep(Duration::from_secs_f64(s));
}

/// Centre of a participant's camera tile (or name card) in canvas pixels.
pub fn tile_center(tiles: &[Tile], participant: &str) -> Option<(f64, f64)> {
    tiles
        .iter()
        .find(|t| t.participant == participant && t.source != TileSource::Screen)
        .map(|t| (t.rect.x as f64 + t.rect.width as f64 / 2.0, t.rect.y as f64 + t.rect.height as f64 / 2.0))
}

/// Centre of each camera tile of the built-in `grid` layout on a `canvas` (width, height),
/// for participants named `names` who joined in that order, each with a `camera` (width,
/// height) video.
pub fn grid_centres(names: &[&str], canvas: (u32, u32), camera: (u32, u32)) -> Vec<(f64, f64)> {
    use crate::layout::{Canvas, Layout, LayoutEngine, ParticipantView, VideoSize};
    let people: Vec<ParticipantView> = names
        .iter()
        .enumerate()
        .map(|(i, name)| ParticipantView {
            id: (*name).into(),
            name: (*name).into(),
            join_order: i as u64,
            speaker_rank: None,
            pinned: false,
            camera: Some(VideoSize { width: camera.0, height: camera.1 }),
            screen: None,
        })
        .collect();
    let Some(grid) = Layout::builtin("grid") else { return Vec::new() };
    let tiles = LayoutEngine::compute(&grid, &people, Canvas { width: canvas.0, height: canvas.1 });
    names.iter().filter_map(|name| tile_center(&tiles, name)).collect()
}

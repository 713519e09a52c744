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

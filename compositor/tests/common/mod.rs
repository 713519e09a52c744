//! What the compositor's integration tests add to its test harness (`tessera_compositor::harness`:
//! a room program fed by synthetic participants, recordings of it): temp directories, and
//! recordings into one of their own that leave the test kit a note for its frame-gap report.
//! Reading back what was recorded (frames, colours, tones, ffprobe) and the servers outputs go
//! to are in the test kit (`tessera_testkit::analysis`, `rtmp`, `tls`).
#![allow(dead_code, unused_imports)]

use std::ops::Deref;

pub use tessera_compositor::harness::{Room, Sender, sleep, spec, tile_center};
use tessera_compositor::{OutputStats, harness};

pub fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A [`harness::Recording`] into a temp directory of its own (`path`, `now` and `output` are
/// the harness's).
pub struct Recording {
    pub dir: tempfile::TempDir,
    recording: harness::Recording,
}

impl Deref for Recording {
    type Target = harness::Recording;

    fn deref(&self) -> &harness::Recording {
        &self.recording
    }
}

impl Recording {
    pub fn start(room: &Room) -> Recording {
        let dir = tmpdir();
        let recording = harness::Recording::start(room, dir.path());
        Recording { dir, recording }
    }

    /// The harness's `finish`, and how many frames were muxed noted for a later
    /// `assert_continuous` that finds a gap.
    pub fn finish(&self, room: &Room) -> OutputStats {
        let stats = self.recording.finish(room);
        tessera_testkit::analysis::note_muxed_frames(stats.video_frames);
        stats
    }
}

//! A recording of a room's program to an MP4 file.

use std::path::{Path, PathBuf};

use super::Room;
use crate::{OutputId, OutputSpec, OutputStats};

/// A recording in progress and, once finished, what it contains.
pub struct Recording {
    /// The MP4 file (`program.mp4` in the directory it was started in).
    pub path: PathBuf,
    pub output: OutputId,
}

impl Recording {
    /// Attaches an MP4 file output to the room's program, writing `program.mp4` in `dir`
    /// (which must outlive the recording).
    pub fn start(room: &Room, dir: &Path) -> Recording {
        let path = dir.join("program.mp4");
        let output = room.program.attach_output(OutputSpec::mp4_file(&path)).expect("output attaches");
        Recording { path, output }
    }

    /// Output time (s) of the program's current position.
    pub fn now(&self, room: &Room) -> f64 {
        let stats = room.program.output_stats(self.output).expect("output exists");
        let pos = room.program.stats().position.as_secs_f64();
        stats.started_at.map(|s| pos - s.as_secs_f64()).unwrap_or(0.0)
    }

    /// Detaches the output (the file is complete when this returns), and asserts the program
    /// reported no failure and the recording's queues dropped nothing.
    pub fn finish(&self, room: &Room) -> OutputStats {
        let stats = room.program.detach_output(self.output).expect("output finishes");
        room.assert_no_failures();
        assert_eq!(stats.overruns, 0, "the recording's queues overran and dropped buffers: {stats:?}");
        stats
    }
}

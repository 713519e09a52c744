//! A graceful stop: every running recording ended and stored whole before the process exits.

use std::time::{Duration, Instant};

use super::{RecordingStatus, Recordings};

/// What a graceful stop made of the running recordings.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FinishedRecordings {
    pub completed: usize,
    pub failed: usize,
    /// Still being stored at the deadline: the next start's recovery finishes them.
    pub unfinished: usize,
}

impl Recordings {
    /// Stops every running recording (all at once) and waits until their sinks have stored
    /// everything (files closed, objects completed) or `deadline`: a graceful stop.
    pub fn finish_all(&self, deadline: Instant) -> FinishedRecordings {
        // Those still recording are stopped; those already stopping are only waited for.
        let (ending, running): (Vec<String>, Vec<String>) = {
            let entries = self.lock();
            let live = entries.values().filter(|e| e.live.is_some());
            let ending = live.clone().map(|e| e.rec.id.clone()).collect();
            let running = live
                .filter(|e| matches!(e.rec.status, RecordingStatus::Starting | RecordingStatus::Recording))
                .map(|e| e.rec.id.clone())
                .collect();
            (ending, running)
        };
        std::thread::scope(|scope| {
            for id in &running {
                scope.spawn(move || {
                    if let Err(err) = self.stop(id) {
                        tracing::warn!(recording = %id, %err, "recording could not be stopped");
                    }
                });
            }
        });
        // A recording's sink reports once its storage has all of it; `live` is dropped then.
        loop {
            let entries = self.lock();
            let ended = ending.iter().filter_map(|id| entries.get(id)).filter(|e| e.live.is_none());
            let (completed, failed) =
                ended.fold(
                    (0, 0),
                    |(c, f), e| if e.rec.status == RecordingStatus::Completed { (c + 1, f) } else { (c, f + 1) },
                );
            let unfinished = ending.len() - completed - failed;
            if unfinished == 0 || Instant::now() >= deadline {
                return FinishedRecordings { completed, failed, unfinished };
            }
            drop(entries);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

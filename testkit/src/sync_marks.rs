//! Sync marks: a picture that turns white while a tone beeps, for 100 ms of every second
//! (`tessera bot --sync-marks`, the compositor's synthetic senders with `sync_marks`). Their
//! onsets in a recording, and the audio/video offsets between them.

use crate::analysis::Frame;

/// EBU R37: audio at most 40 ms early and at most 60 ms late, widened by one video frame
/// (33 ms) each way because a flash is only seen on the program's frame grid.
pub const IN_SYNC: std::ops::RangeInclusive<f64> = -0.073..=0.093;

/// Starts of the white flashes at `at` on a `canvas` (width, height): the first white frame
/// after a non-white one.
pub fn flash_onsets(frames: &[Frame], at: (f64, f64), canvas: (u32, u32)) -> Vec<f64> {
    let white = |f: &Frame| {
        let c = f.color_at(at.0, at.1, canvas.0, canvas.1);
        c.0 > 200 && c.1 > 200 && c.2 > 200
    };
    frames.windows(2).filter(|w| !white(&w[0]) && white(&w[1])).map(|w| w[1].pts).collect()
}

/// Starts of the beeps in 48 kHz samples: the first 2 ms window above a threshold after
/// 50 ms of quiet.
pub fn beep_onsets(samples: &[f32]) -> Vec<f64> {
    let win = 96; // 2 ms at 48 kHz
    let mut onsets = Vec::new();
    let mut quiet_for = 0usize;
    for (i, w) in samples.chunks(win).enumerate() {
        let peak = w.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        if peak > 0.05 {
            if quiet_for >= 25 {
                onsets.push(i as f64 * win as f64 / 48000.0);
            }
            quiet_for = 0;
        } else {
            quiet_for += 1;
        }
    }
    onsets
}

/// For each flash after `after` seconds (once the first sender reports have set lip sync),
/// the nearest beep's onset minus the flash's (positive: the audio is late).
pub fn av_offsets(flashes: &[f64], beeps: &[f64], after: f64) -> Vec<f64> {
    flashes
        .iter()
        .filter(|&&v| v > after)
        .filter_map(|&v| {
            let a = beeps.iter().copied().min_by(|x, y| (x - v).abs().total_cmp(&(y - v).abs()))?;
            Some(a - v)
        })
        .collect()
}

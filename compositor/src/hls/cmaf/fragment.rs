//! One CMAF fragment: a `moof` describing the samples of each track, then one `mdat` holding
//! them, video first. Each LL-HLS part is one fragment, and a segment is its parts back to
//! back, so a fragment must stand alone: `tfdt` gives each track's absolute decode time and the
//! `trun` data offsets count from the start of this `moof` (`default-base-is-moof`), not from
//! anything written before.

use super::{AUDIO_TRACK_ID, Sample, VIDEO_TRACK_ID};
use crate::hls::boxes::*;
use crate::hls::error::{HlsError, Result};

/// `tfhd` flag: data offsets are relative to the start of the enclosing `moof`.
const DEFAULT_BASE_IS_MOOF: u32 = 0x020000;
/// `trun` flags: a data offset, then per sample its duration, size, flags and composition
/// time offset.
const TRUN_FLAGS: u32 = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800;
/// Sample flags of a sync sample: depends on no other sample.
const SYNC_SAMPLE: u32 = 0x0200_0000;
/// Sample flags of any other: depends on others, and is not a sync sample.
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// The fragment with `sequence` (`mfhd`: 1, 2, 3… in the order fragments are written) holding
/// `video` then `audio`, each in decode order. A track with no samples gets no `traf`. Each
/// track's decode time is its first sample's `dts`; the following samples are placed by the
/// durations, so a caller wanting exact timestamps makes each duration reach the next `dts`.
pub fn fragment(sequence: u32, video: &[Sample], audio: &[Sample]) -> Result<Vec<u8>> {
    let tracks: Vec<(u32, &[Sample])> =
        [(VIDEO_TRACK_ID, video), (AUDIO_TRACK_ID, audio)].into_iter().filter(|(_, s)| !s.is_empty()).collect();
    if tracks.is_empty() {
        return Err(HlsError::Fragment("no samples".into()));
    }
    let mut payload = 0u64;
    for (_, samples) in &tracks {
        if u32::try_from(samples.len()).is_err() {
            return Err(HlsError::Fragment(format!("{} samples in one track", samples.len())));
        }
        for s in samples.iter() {
            if u32::try_from(s.data.len()).is_err() {
                return Err(HlsError::Fragment(format!("a sample of {} bytes", s.data.len())));
            }
            payload += s.data.len() as u64;
        }
    }

    let mut out = Vec::with_capacity(payload as usize + 200 + 16 * (video.len() + audio.len()));
    // Where each trun's data_offset field is, and where its track's data starts in the mdat.
    let mut offsets: Vec<(usize, u64)> = Vec::with_capacity(2);
    write_box(&mut out, b"moof", |b| {
        write_full_box(b, b"mfhd", 0, 0, |b| put_u32(b, sequence));
        let mut data_start = 0u64;
        for (id, samples) in &tracks {
            write_box(b, b"traf", |b| {
                write_full_box(b, b"tfhd", 0, DEFAULT_BASE_IS_MOOF, |b| put_u32(b, *id));
                // Version 1: a 64-bit decode time, which 90 kHz outgrows after 13 hours.
                write_full_box(b, b"tfdt", 1, 0, |b| put_u64(b, samples[0].dts));
                // Version 1: signed composition offsets.
                write_full_box(b, b"trun", 1, TRUN_FLAGS, |b| {
                    put_u32(b, samples.len() as u32);
                    offsets.push((b.len(), data_start));
                    put_i32(b, 0);
                    for s in samples.iter() {
                        put_u32(b, s.duration);
                        put_u32(b, s.data.len() as u32);
                        put_u32(b, if s.keyframe { SYNC_SAMPLE } else { NON_SYNC_SAMPLE });
                        put_i32(b, s.cts_offset);
                    }
                });
            });
            data_start += samples.iter().map(|s| s.data.len() as u64).sum::<u64>();
        }
    });

    // The mdat header is 8 bytes, or 16 when its size needs 64 bits (see `write_box`).
    let mdat_header = if payload + 8 > u64::from(u32::MAX) { 16 } else { 8 };
    for (at, data_start) in offsets {
        let offset = out.len() as u64 + mdat_header + data_start;
        let offset = i32::try_from(offset)
            .map_err(|_| HlsError::Fragment(format!("data offset {offset} does not fit a trun")))?;
        patch_i32(&mut out, at, offset);
    }
    write_box(&mut out, b"mdat", |b| {
        for (_, samples) in &tracks {
            for s in samples.iter() {
                b.extend_from_slice(&s.data);
            }
        }
    });
    Ok(out)
}

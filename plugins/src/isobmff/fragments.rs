//! Whole boxes read in memory, for the duration of a recording without downloading it
//! ([`scan_init`], [`last_fragment_end`]): track timescales from the `moov`
//! (`trak/mdia/mdhd`, `hdlr`, `mvex/trex`) and a fragment's decode times from its `moof`
//! (`traf/tfhd`, `tfdt`, `trun`).

use super::{BoxRef, FourCc, be_u32, be_u64, box_header, boxes, child, version_flags};

/// A track, as the `moov` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub id: u32,
    /// `vide`, `soun`...
    pub handler: FourCc,
    /// Units per second of its decode times.
    pub timescale: u32,
    /// From `mvex/trex`: a sample's duration when its fragment does not say.
    pub default_sample_duration: u32,
}

/// The tracks in a `moov` box's payload (those whose `tkhd`, `mdhd` and `hdlr` are readable).
pub fn parse_moov(moov: &[u8]) -> Vec<Track> {
    let trex: Vec<(u32, u32)> = child(moov, b"mvex")
        .map(|mvex| {
            boxes(mvex)
                .filter(|b| &b.fourcc == b"trex")
                .filter_map(|b| {
                    let p = &mvex[b.payload..b.end];
                    Some((be_u32(p, 4)?, be_u32(p, 12)?))
                })
                .collect()
        })
        .unwrap_or_default();
    boxes(moov)
        .filter(|b| &b.fourcc == b"trak")
        .filter_map(|b| {
            let trak = &moov[b.payload..b.end];
            let tkhd = child(trak, b"tkhd")?;
            let id = be_u32(tkhd, if version_flags(tkhd)?.0 == 1 { 20 } else { 12 })?;
            let mdia = child(trak, b"mdia")?;
            let mdhd = child(mdia, b"mdhd")?;
            let timescale = be_u32(mdhd, if version_flags(mdhd)?.0 == 1 { 20 } else { 12 })?;
            let handler: FourCc = child(mdia, b"hdlr")?.get(8..12)?.try_into().ok()?;
            let default_sample_duration = trex.iter().find(|(t, _)| *t == id).map_or(0, |(_, d)| *d);
            (timescale > 0).then_some(Track { id, handler, timescale, default_sample_duration })
        })
        .collect()
}

/// A track's samples in one fragment: decode times from `start` to `end`, in its timescale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackRun {
    pub track_id: u32,
    pub start: u64,
    pub end: u64,
}

/// The tracks' runs in a `moof` box's payload: `tfdt`'s base decode time plus the sample
/// durations of its `trun`s (or the defaults of `tfhd`, else of the track's `trex`). A
/// `traf` without `tfdt` is left out.
pub fn parse_moof(moof: &[u8], tracks: &[Track]) -> Vec<TrackRun> {
    boxes(moof)
        .filter(|b| &b.fourcc == b"traf")
        .filter_map(|b| {
            let traf = &moof[b.payload..b.end];
            let tfhd = child(traf, b"tfhd")?;
            let (_, flags) = version_flags(tfhd)?;
            let track_id = be_u32(tfhd, 4)?;
            // base-data-offset (8), sample-description-index (4), then default-sample-duration.
            let at = 8 + if flags & 0x01 != 0 { 8 } else { 0 } + if flags & 0x02 != 0 { 4 } else { 0 };
            let default = if flags & 0x08 != 0 {
                be_u32(tfhd, at)?
            } else {
                tracks.iter().find(|t| t.id == track_id).map_or(0, |t| t.default_sample_duration)
            };
            let tfdt = child(traf, b"tfdt")?;
            let start = if version_flags(tfdt)?.0 == 1 { be_u64(tfdt, 4)? } else { u64::from(be_u32(tfdt, 4)?) };
            let mut duration = 0u64;
            for run in boxes(traf).filter(|b| &b.fourcc == b"trun") {
                let trun = &traf[run.payload..run.end];
                duration += trun_duration(trun, default)?;
            }
            Some(TrackRun { track_id, start, end: start + duration })
        })
        .collect()
}

/// The sum of a `trun`'s sample durations (`default` for samples that have none).
fn trun_duration(trun: &[u8], default: u32) -> Option<u64> {
    let (_, flags) = version_flags(trun)?;
    let count = be_u32(trun, 4)?;
    if flags & 0x100 == 0 {
        return Some(u64::from(count) * u64::from(default));
    }
    // data-offset and first-sample-flags, then per sample: duration, size, flags, cts offset.
    let mut at = 8 + if flags & 0x01 != 0 { 4 } else { 0 } + if flags & 0x04 != 0 { 4 } else { 0 };
    let per_sample = 4 * (flags & 0xf00).count_ones() as usize;
    let mut total = 0u64;
    for _ in 0..count {
        total += u64::from(be_u32(trun, at)?);
        at += per_sample;
    }
    Some(total)
}

/// What the start of a fragmented MP4 says about its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitScan {
    /// The first video track (else the first track), and where its first fragment starts
    /// (decode time) if the first fragment is in the bytes read.
    Found { track: Track, first_start: Option<u64> },
    /// The `moov` is not whole in the bytes read: it ends at this offset.
    NeedBytes(u64),
    /// No `moov` with a track.
    Invalid,
}

/// Reads the header (`ftyp`, `moov`) at the start of `head`, and the first fragment's
/// decode time when `head` holds it.
pub fn scan_init(head: &[u8]) -> InitScan {
    let mut pos = 0usize;
    let mut tracks = None::<Vec<Track>>;
    while let Some((fourcc, header, size)) = box_header(&head[pos..]) {
        let Some(end) = usize::try_from(size).ok().and_then(|s| pos.checked_add(s)) else { break };
        if &fourcc == b"moov" && tracks.is_none() {
            if end > head.len() {
                return InitScan::NeedBytes(end as u64);
            }
            tracks = Some(parse_moov(&head[pos + header..end]));
        } else if &fourcc == b"moof"
            && end <= head.len()
            && let Some(tracks) = &tracks
            && let Some(track) = main_track(tracks)
        {
            let first =
                parse_moof(&head[pos + header..end], tracks).iter().find(|r| r.track_id == track.id).map(|r| r.start);
            if first.is_some() {
                return InitScan::Found { track: track.clone(), first_start: first };
            }
        }
        if end > head.len() {
            break;
        }
        pos = end;
    }
    match tracks.as_deref().and_then(main_track) {
        Some(track) => InitScan::Found { track: track.clone(), first_start: None },
        None => InitScan::Invalid,
    }
}

/// The first video track, else the first track.
fn main_track(tracks: &[Track]) -> Option<&Track> {
    tracks.iter().find(|t| &t.handler == b"vide").or_else(|| tracks.first())
}

/// The end (decode time, in the track's timescale) of the last whole fragment (`moof` and
/// the box after it, its `mdat`) of `track` in `data`, which starts at a box boundary.
pub fn last_fragment_end(data: &[u8], track: &Track) -> Option<u64> {
    let tracks = std::slice::from_ref(track);
    let all: Vec<BoxRef> = boxes(data).collect();
    all.windows(2)
        .rev()
        .filter(|w| &w[0].fourcc == b"moof")
        .find_map(|w| parse_moof(&data[w[0].payload..w[0].end], tracks).into_iter().find(|r| r.track_id == track.id))
        .map(|r| r.end)
}

/// In `window`, the last bytes of a file, where a `moof` starts from which whole boxes run
/// exactly to the end of the window: the start of the earliest such chain. A box boundary
/// that is not known otherwise (the window may start in the middle of a box).
pub fn find_fragment_chain(window: &[u8]) -> Option<usize> {
    let chain_ends_at_end = |from: usize| {
        let mut end = from;
        for b in boxes(&window[from..]) {
            end = from + b.end;
        }
        end == window.len()
    };
    (0..window.len().saturating_sub(8))
        .filter(|&p| &window[p + 4..p + 8] == b"moof")
        .find(|&p| box_header(&window[p..]).is_some() && chain_ends_at_end(p))
}

//! Streaming scanner for top-level ISO-BMFF boxes. Buffers may split a box (or its header)
//! anywhere; only headers are parsed, payloads are skipped.
//!
//! Also a little reading of whole boxes in memory, for the duration of a recording without
//! downloading it ([`scan_init`], [`last_fragment_end`]): track timescales from the `moov`
//! (`trak/mdia/mdhd`, `hdlr`, `mvex/trex`) and a fragment's decode times from its `moof`
//! (`traf/tfhd`, `tfdt`, `trun`).

use crate::error::Error;

pub type FourCc = [u8; 4];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxEvent {
    Start { offset: u64, fourcc: FourCc, size: u64 },
    End { end: u64, fourcc: FourCc },
}

#[derive(Debug, Default)]
pub struct BoxScanner {
    /// Absolute stream offset of the next byte to be pushed.
    pos: u64,
    header: [u8; 16],
    header_len: usize,
    /// Current box: type and absolute end offset, while inside its payload.
    current: Option<(FourCc, u64)>,
}

impl BoxScanner {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Scans `data`, appending box starts and ends to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<BoxEvent>) -> Result<(), Error> {
        while !data.is_empty() {
            if let Some((fourcc, end)) = self.current {
                let skip = usize::try_from(end - self.pos).unwrap_or(usize::MAX).min(data.len());
                data = &data[skip..];
                self.pos += skip as u64;
                if self.pos == end {
                    out.push(BoxEvent::End { end, fourcc });
                    self.current = None;
                }
                continue;
            }
            let need = self.header_need();
            let take = (need - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            self.pos += take as u64;
            data = &data[take..];
            if self.header_len == self.header_need() {
                self.finish_header(out)?;
            }
        }
        Ok(())
    }

    /// 8 bytes, or 16 when the 32-bit size says "64-bit size follows".
    fn header_need(&self) -> usize {
        if self.header_len >= 4 && self.header[..4] == [0, 0, 0, 1] { 16 } else { 8 }
    }

    fn finish_header(&mut self, out: &mut Vec<BoxEvent>) -> Result<(), Error> {
        let len = self.header_len as u64;
        let offset = self.pos - len;
        let size32 = u32::from_be_bytes([self.header[0], self.header[1], self.header[2], self.header[3]]);
        let fourcc = [self.header[4], self.header[5], self.header[6], self.header[7]];
        let size = match size32 {
            0 => return Err(Error::InvalidBox { offset, reason: "box extending to end of file" }),
            1 => u64::from_be_bytes(self.header[8..16].try_into().unwrap_or([0; 8])),
            n => u64::from(n),
        };
        if size < len {
            return Err(Error::InvalidBox { offset, reason: "box smaller than its header" });
        }
        if !fourcc.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            return Err(Error::InvalidBox { offset, reason: "box type is not printable" });
        }
        self.header_len = 0;
        out.push(BoxEvent::Start { offset, fourcc, size });
        let end = offset + size;
        if end == self.pos {
            out.push(BoxEvent::End { end, fourcc });
        } else {
            self.current = Some((fourcc, end));
        }
        Ok(())
    }
}

/// Turns box events into what the recorder needs: where fragments start (part boundaries)
/// and up to where the stream is playable (the end of the last complete fragment).
#[derive(Debug, Default)]
pub struct FragmentTracker {
    have_moov: bool,
    /// End of the last complete box that leaves the file playable (moov, mdat, mfra, ...).
    pub playable_end: u64,
}

impl FragmentTracker {
    /// Returns the offset of a new fragment start (`moof`), if this event is one.
    pub fn on_event(&mut self, event: &BoxEvent) -> Option<u64> {
        match *event {
            BoxEvent::Start { offset, fourcc: ref f, .. } if f == b"moof" => Some(offset),
            BoxEvent::Start { .. } => None,
            BoxEvent::End { end, fourcc } => {
                if &fourcc == b"moov" {
                    self.have_moov = true;
                }
                // A moof alone is not playable: only its mdat completes the fragment.
                if self.have_moov && &fourcc != b"moof" {
                    self.playable_end = end;
                }
                None
            }
        }
    }
}

/// A whole box in a byte slice: its type, and where it starts, where its payload starts and
/// where it ends (offsets in the slice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxRef {
    pub fourcc: FourCc,
    pub start: usize,
    pub payload: usize,
    pub end: usize,
}

/// The header at the start of `data`: type, header length and box size. `None` when `data`
/// is shorter than a header, or it is not one (size 0 "to the end" included).
pub fn box_header(data: &[u8]) -> Option<(FourCc, usize, u64)> {
    let size32 = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
    let fourcc: FourCc = data.get(4..8)?.try_into().ok()?;
    if !fourcc.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return None;
    }
    let (header, size) = match size32 {
        0 => return None,
        1 => (16, u64::from_be_bytes(data.get(8..16)?.try_into().ok()?)),
        n => (8, u64::from(n)),
    };
    (size >= header as u64).then_some((fourcc, header, size))
}

/// The whole boxes one after the other in `data` (a file's top level, or a box's payload),
/// up to the first that is cut short or not a box.
pub fn boxes(data: &[u8]) -> impl Iterator<Item = BoxRef> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let (fourcc, header, size) = box_header(&data[pos..])?;
        let end = pos.checked_add(usize::try_from(size).ok()?)?;
        if end > data.len() {
            return None;
        }
        let b = BoxRef { fourcc, start: pos, payload: pos + header, end };
        pos = end;
        Some(b)
    })
}

/// The payload of the first child box of type `fourcc` in `data`.
fn child<'a>(data: &'a [u8], fourcc: &FourCc) -> Option<&'a [u8]> {
    boxes(data).find(|b| &b.fourcc == fourcc).map(|b| &data[b.payload..b.end])
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// A full box's version and flags.
fn version_flags(payload: &[u8]) -> Option<(u8, u32)> {
    let vf = be_u32(payload, 0)?;
    Some(((vf >> 24) as u8, vf & 0x00ff_ffff))
}

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn mk_box(fourcc: &[u8; 4], payload_len: usize) -> Vec<u8> {
        let mut v = ((payload_len + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(fourcc);
        v.extend(std::iter::repeat_n(0xab, payload_len));
        v
    }

    /// ftyp, moov, then `n` moof+mdat fragments.
    pub(crate) fn sample_stream(n: usize) -> Vec<u8> {
        let mut s = mk_box(b"ftyp", 16);
        s.extend(mk_box(b"moov", 300));
        for i in 0..n {
            s.extend(mk_box(b"moof", 100));
            s.extend(mk_box(b"mdat", 1000 + i * 7));
        }
        s
    }

    fn scan_chunked(data: &[u8], chunk: usize) -> Vec<BoxEvent> {
        let mut sc = BoxScanner::new();
        let mut ev = Vec::new();
        for c in data.chunks(chunk) {
            sc.push(c, &mut ev).unwrap();
        }
        ev
    }

    #[test]
    fn same_events_whatever_the_buffer_split() {
        let data = sample_stream(3);
        let whole = scan_chunked(&data, data.len());
        assert_eq!(whole.len(), 16);
        for chunk in [1, 2, 3, 5, 7, 8, 9, 13, 100, 1001] {
            assert_eq!(scan_chunked(&data, chunk), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn fragment_starts_and_playable_end() {
        let data = sample_stream(2);
        let mut tr = FragmentTracker::default();
        let mut starts = Vec::new();
        let mut playable = Vec::new();
        for e in scan_chunked(&data, 3) {
            starts.extend(tr.on_event(&e));
            playable.push(tr.playable_end);
        }
        let moov_end = 24 + 308;
        assert_eq!(starts, vec![moov_end, moov_end + 108 + 1008]);
        assert_eq!(tr.playable_end, data.len() as u64);
        // Never playable in the middle of a fragment (after moof, before its mdat ends).
        assert!(playable.contains(&moov_end) && !playable.contains(&(moov_end + 108)));
    }

    fn full_box(fourcc: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
        let mut payload = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
        payload.extend_from_slice(body);
        container(fourcc, &[payload])
    }

    fn container(fourcc: &[u8; 4], children: &[Vec<u8>]) -> Vec<u8> {
        let payload = children.concat();
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(fourcc);
        v.extend(payload);
        v
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    /// A track: `tkhd` (version 0 or 1), `mdhd` with `timescale`, `hdlr`.
    fn trak(id: u32, handler: &[u8; 4], timescale: u32, v1: bool) -> Vec<u8> {
        let (tkhd, mdhd) = if v1 {
            (
                full_box(b"tkhd", 1, 7, &[vec![0; 16], words(&[id, 0]), vec![0; 8]].concat()),
                full_box(b"mdhd", 1, 0, &[vec![0; 16], words(&[timescale]), vec![0; 8 + 4]].concat()),
            )
        } else {
            (
                full_box(b"tkhd", 0, 7, &words(&[0, 0, id, 0, 0])),
                full_box(b"mdhd", 0, 0, &words(&[0, 0, timescale, 0, 0])),
            )
        };
        let hdlr = full_box(b"hdlr", 0, 0, &[words(&[0]), handler.to_vec(), vec![0; 13]].concat());
        container(b"trak", &[tkhd, container(b"mdia", &[mdhd, hdlr])])
    }

    /// ftyp + moov: audio track 1 (48 kHz), video track 2 (90 kHz, trex default 3000).
    fn init_segment() -> Vec<u8> {
        let trex = |id: u32, dur: u32| full_box(b"trex", 0, 0, &words(&[id, 1, dur, 0, 0]));
        let moov = container(
            b"moov",
            &[
                full_box(b"mvhd", 0, 0, &[0u8; 96]),
                trak(1, b"soun", 48_000, false),
                trak(2, b"vide", 90_000, true),
                container(b"mvex", &[trex(1, 1024), trex(2, 3000)]),
            ],
        );
        [mk_box(b"ftyp", 16), moov].concat()
    }

    /// A fragment: video with explicit sample durations (or the trex default), audio with a
    /// tfhd default; then its mdat.
    fn fragment(video_start: u64, durations: &[u32], audio_start: u32, audio_samples: u32) -> Vec<u8> {
        let video = if durations.is_empty() {
            vec![
                full_box(b"tfhd", 0, 0x02_0000, &words(&[2])),
                full_box(b"tfdt", 1, 0, &video_start.to_be_bytes()),
                full_box(b"trun", 0, 0x01, &words(&[30, 0])),
            ]
        } else {
            // data offset, first sample flags, then duration + size per sample.
            let mut body = words(&[durations.len() as u32, 0, 0]);
            for d in durations {
                body.extend(words(&[*d, 1000]));
            }
            vec![
                full_box(b"tfhd", 0, 0x02_0000, &words(&[2])),
                full_box(b"tfdt", 1, 0, &video_start.to_be_bytes()),
                full_box(b"trun", 0, 0x01 | 0x04 | 0x100 | 0x200, &body),
            ]
        };
        let audio = vec![
            // sample-description-index, then default-sample-duration 1024.
            full_box(b"tfhd", 0, 0x02 | 0x08, &words(&[1, 1, 1024])),
            full_box(b"tfdt", 0, 0, &words(&[audio_start])),
            full_box(b"trun", 0, 0, &words(&[audio_samples])),
        ];
        let moof = container(
            b"moof",
            &[full_box(b"mfhd", 0, 0, &words(&[1])), container(b"traf", &audio), container(b"traf", &video)],
        );
        [moof, mk_box(b"mdat", 5000)].concat()
    }

    #[test]
    fn tracks_and_fragment_times() {
        let init = init_segment();
        let tracks = parse_moov(&init[24 + 8..]);
        assert_eq!(
            tracks,
            vec![
                Track { id: 1, handler: *b"soun", timescale: 48_000, default_sample_duration: 1024 },
                Track { id: 2, handler: *b"vide", timescale: 90_000, default_sample_duration: 3000 },
            ]
        );
        let f = fragment(45_000, &[3000, 3000, 3003], 24_000, 24);
        let runs = parse_moof(&f[8..boxes(&f).next().unwrap().end], &tracks);
        assert_eq!(
            runs,
            vec![
                TrackRun { track_id: 1, start: 24_000, end: 24_000 + 24 * 1024 },
                TrackRun { track_id: 2, start: 45_000, end: 54_003 },
            ]
        );
        // Without per-sample durations: the trex default.
        let f = fragment(0, &[], 0, 0);
        let runs = parse_moof(&f[8..boxes(&f).next().unwrap().end], &tracks);
        assert_eq!(runs[1], TrackRun { track_id: 2, start: 0, end: 90_000 });
    }

    #[test]
    fn duration_from_the_header_and_the_last_fragment() {
        let init = init_segment();
        let video = Track { id: 2, handler: *b"vide", timescale: 90_000, default_sample_duration: 3000 };
        let frags: Vec<Vec<u8>> = (0..4u64).map(|i| fragment(9000 + i * 45_000, &[3000; 15], 0, 10)).collect();
        let file = [init.clone(), frags.concat()].concat();

        // The video track and the first fragment's start, whatever else follows.
        for head in [&file[..], &file[..init.len() + frags[0].len()]] {
            assert_eq!(scan_init(head), InitScan::Found { track: video.clone(), first_start: Some(9000) });
        }
        // The header alone: no first fragment (counted from 0).
        assert_eq!(scan_init(&init), InitScan::Found { track: video.clone(), first_start: None });
        // A moov cut short: read up to its end.
        assert_eq!(scan_init(&init[..100]), InitScan::NeedBytes(init.len() as u64));
        assert_eq!(scan_init(&[0u8; 64]), InitScan::Invalid);

        // The last fragment's end, from a tail that starts at a fragment...
        let end = 9000 + 3 * 45_000 + 45_000;
        assert_eq!(last_fragment_end(&frags[1..].concat(), &video), Some(end));
        // ...or from the whole file (the header is skipped), not from one cut short.
        assert_eq!(last_fragment_end(&file, &video), Some(end));
        assert_eq!(last_fragment_end(&file[..file.len() - 1], &video), Some(end - 45_000));
        assert_eq!(last_fragment_end(&init, &video), None);

        // From the last bytes of the file, starting anywhere inside a fragment.
        for cut in [1, 100, 2500, frags[3].len() + 7] {
            let window = &file[file.len() - frags[3].len() - cut..];
            let start = find_fragment_chain(window).expect("a fragment");
            assert_eq!(last_fragment_end(&window[start..], &video), Some(end), "cut {cut}");
        }
        assert_eq!(find_fragment_chain(&file[file.len() - 100..]), None);
    }

    #[test]
    fn large_size_and_errors() {
        let mut b = vec![0, 0, 0, 1];
        b.extend_from_slice(b"mdat");
        b.extend_from_slice(&20u64.to_be_bytes());
        b.extend_from_slice(&[1, 2, 3, 4]);
        let ev = scan_chunked(&b, 5);
        assert_eq!(ev[0], BoxEvent::Start { offset: 0, fourcc: *b"mdat", size: 20 });
        assert_eq!(ev[1], BoxEvent::End { end: 20, fourcc: *b"mdat" });

        let mut sc = BoxScanner::new();
        let mut out = Vec::new();
        assert!(sc.push(&[0, 0, 0, 4, b'f', b'r', b'e', b'e'], &mut out).is_err());
        let mut sc = BoxScanner::new();
        assert!(sc.push(b"\x00\x00\x00\x10\x01\x02\x03\x04", &mut out).is_err());
    }
}

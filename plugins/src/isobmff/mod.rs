//! Streaming scanner for top-level ISO-BMFF boxes. Buffers may split a box (or its header)
//! anywhere; only headers are parsed, payloads are skipped.
//!
//! Also a little reading of whole boxes in memory (`fragments.rs`), for the duration of a
//! recording without downloading it.

mod fragments;
#[cfg(test)]
pub(crate) mod tests;

pub use fragments::{
    InitScan, Track, TrackRun, find_fragment_chain, last_fragment_end, parse_moof, parse_moov, scan_init,
};

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

//! Streaming scanner for top-level ISO-BMFF boxes. Buffers may split a box (or its header)
//! anywhere; only headers are parsed, payloads are skipped.

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

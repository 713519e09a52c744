//! `--packet-log FILE`: one line per RTP packet the bot sends (publishing) or receives
//! (subscribing), so that a benchmark can count what arrived in a time window and join a
//! publisher's log with its subscribers' into one-way delays (`scripts/bench-janus`).
//!
//! A line is `MICROS KIND FINGERPRINT`: the wall-clock time (`CLOCK_REALTIME`, microseconds
//! since the Unix epoch, the same clock for every process on a machine), `v` or `a`, and a
//! 64-bit FNV-1a hash of the RTP payload in hex. SFUs rewrite SSRCs, sequence numbers and
//! timestamps but forward the payload as it came, so the fingerprint names a packet across the
//! hop. A publisher stamps a packet as it hands it to its WebRTC stack (after the pacer, before
//! SRTP); a subscriber as its stack delivers it (after SRTP and its interceptors),
//! so a delay includes both clients' stacks as well as the server.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::bot::BotError;
use crate::locks::lock;

/// The log file, written through a buffer (flushed by [`PacketLog::flush`] and on drop).
pub struct PacketLog {
    out: Mutex<BufWriter<File>>,
}

/// Audio or video, as a line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
}

impl PacketLog {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, BotError> {
        let file = File::create(path)
            .map_err(|e| BotError::Config(format!("--packet-log {}: cannot create it: {e}", path.display())))?;
        Ok(PacketLog { out: Mutex::new(BufWriter::with_capacity(1 << 16, file)) })
    }

    /// A packet with this payload, now. A write error is logged once per flush, not fatal: the
    /// benchmark notices a short log.
    pub fn record(&self, kind: Kind, payload: &[u8]) {
        let micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
        let tag = match kind {
            Kind::Audio => 'a',
            Kind::Video => 'v',
        };
        let _ = writeln!(lock(&self.out), "{micros} {tag} {:016x}", fingerprint(payload));
    }

    /// Writes out what is buffered.
    pub fn flush(&self) {
        if let Err(e) = lock(&self.out).flush() {
            tracing::warn!(%e, "cannot write the packet log");
        }
    }
}

/// FNV-1a, 64 bits: fast, and enough to tell about 10^5 packets apart (a collision is rare, and
/// the benchmark leaves out fingerprints the publisher sent more than once).
pub fn fingerprint(payload: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in payload {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_and_lines() {
        // FNV-1a's published test values.
        assert_eq!(fingerprint(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fingerprint(b"a"), 0xaf63_dc4c_8601_ec8c);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("packets.log");
        let log = PacketLog::create(&path).unwrap();
        log.record(Kind::Video, b"a");
        log.record(Kind::Audio, b"");
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0][1..], ["v", "af63dc4c8601ec8c"]);
        assert_eq!(lines[1][1..], ["a", "cbf29ce484222325"]);
        assert!(lines[0][0].parse::<u128>().unwrap() > 1_600_000_000_000_000);
    }
}

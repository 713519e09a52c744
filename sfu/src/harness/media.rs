//! What a test client publishes, and the synthetic packets it sends: Opus audio with an RFC 6464
//! level every 20 ms, VP8 video at 30 frames a second (one packet a frame), optionally in three
//! simulcast layers. A packet's payload says what it is, so a subscriber can tell what reached
//! it after the SFU rewrote the headers: VP8 keyframes start with a real keyframe header (the
//! SFU reads the frame size from it), and every video payload ends with its layer's index.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp;

use crate::handoff::TrackSource;

/// Audio packets' spacing.
pub const AUDIO_PACKET: Duration = Duration::from_millis(20);
/// Video frames' spacing (30 a second).
pub const VIDEO_FRAME: Duration = Duration::from_micros(33_333);

/// One simulcast layer (or the only layer) of a video track.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The RID it is sent with (`None`: not simulcast).
    pub rid: Option<String>,
    /// Its frame height (in its keyframes).
    pub height: u16,
    /// Payload bytes per frame (so per packet): what sets its bitrate.
    pub payload: usize,
}

/// A track a test client publishes.
#[derive(Debug, Clone)]
pub struct Media {
    /// Its `msid` track id (the client's own id for it).
    pub id: String,
    /// What it is, as declared with the publish offer.
    pub source: TrackSource,
    /// Its video layers, low to high (empty for audio).
    pub layers: Vec<Layer>,
}

impl Media {
    /// An Opus track.
    pub fn audio(id: &str) -> Media {
        Media { id: id.to_owned(), source: TrackSource::Audio, layers: Vec::new() }
    }

    /// A VP8 camera of one layer (360 lines, about 120 kbit/s).
    pub fn camera(id: &str) -> Media {
        Media {
            id: id.to_owned(),
            source: TrackSource::Camera,
            layers: vec![Layer { rid: None, height: 360, payload: 500 }],
        }
    }

    /// A VP8 camera in three simulcast layers `q`, `h`, `f`: 180, 360 and 720 lines at about
    /// 27, 123 and 267 kbit/s (payload and a 12-byte header, 30 frames a second).
    pub fn simulcast(id: &str) -> Media {
        let layer = |rid: &str, height, payload| Layer { rid: Some(rid.to_owned()), height, payload };
        Media {
            id: id.to_owned(),
            source: TrackSource::Camera,
            layers: vec![layer("q", 180, 100), layer("h", 360, 500), layer("f", 720, 1100)],
        }
    }

    pub(crate) fn is_video(&self) -> bool {
        !self.layers.is_empty()
    }

    pub(crate) fn spacing(&self) -> Duration {
        if self.is_video() { VIDEO_FRAME } else { AUDIO_PACKET }
    }
}

/// The VP8 payload of one frame of `layer` (RFC 7741 descriptor: start of partition 0, no
/// extensions; then the frame tag, and for a keyframe the start code and frame size).
pub(crate) fn vp8_frame(layer: usize, height: u16, len: usize, keyframe: bool) -> Bytes {
    let mut p = vec![0u8; len.max(12)];
    p[0] = 0x10;
    if keyframe {
        p[4..7].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        p[7..9].copy_from_slice(&(height * 16 / 9).to_le_bytes());
        p[9..11].copy_from_slice(&height.to_le_bytes());
    } else {
        // The inverse key frame flag: an interframe.
        p[1] = 0x01;
    }
    let last = p.len() - 1;
    p[last] = layer as u8;
    Bytes::from(p)
}

/// Whether a VP8 payload of `vp8_frame` is a keyframe.
pub fn is_keyframe(payload: &[u8]) -> bool {
    payload.get(1).is_some_and(|b| b & 0x01 == 0)
}

/// The layer index a video payload of `vp8_frame` carries.
pub fn layer_of(payload: &[u8]) -> Option<usize> {
    payload.last().map(|&l| usize::from(l))
}

/// One RTP stream a client sends: a layer of a video track, or an audio track.
#[derive(Debug)]
pub(crate) struct Stream {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    /// The next frame is a keyframe (the first, or one a PLI asked for).
    pub keyframe_due: bool,
}

/// The packet a stream sends next, with the header extensions the caller adds.
pub(crate) fn next_packet(media: &Media, layer: usize, s: &mut Stream, pt: u8) -> rtp::Packet {
    let mut p = rtp::Packet::default();
    p.header.version = 2;
    p.header.payload_type = pt;
    p.header.ssrc = s.ssrc;
    p.header.sequence_number = s.seq;
    p.header.timestamp = s.timestamp;
    p.header.marker = true;
    s.seq = s.seq.wrapping_add(1);
    match media.layers.get(layer) {
        Some(l) => {
            p.payload = vp8_frame(layer, l.height, l.payload, s.keyframe_due);
            s.keyframe_due = false;
            s.timestamp = s.timestamp.wrapping_add(90_000 / 30);
        }
        None => {
            p.payload = Bytes::from(vec![0xfcu8; 40]);
            s.timestamp = s.timestamp.wrapping_add(960);
        }
    }
    p
}

/// When a track sends next.
#[derive(Debug)]
pub(crate) struct Pace {
    pub next: Instant,
    pub every: Duration,
}

impl Pace {
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if self.next > now {
            return false;
        }
        self.next += self.every;
        true
    }
}

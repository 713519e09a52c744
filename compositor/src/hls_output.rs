//! The HLS output's contract, as plain Rust: what an [`HlsSink`] receives. The program's one
//! H.264 encode and its AAC are cut into CMAF partial segments of at most `part_target` and
//! segments of about `segment_target` (each starting on a keyframe) by [`crate::hls`]'s
//! segmenter; the sink stores and serves them (the binary: memory, HTTP with blocking playlist
//! reload, optionally a bucket). The GStreamer side is `program::hls_bin`.

use crate::hls::{HlsEvent, SegmenterConfig};
use std::sync::Arc;
use std::time::Duration;

/// The part length LL-HLS players are tuned for: a third of their 1.5 s hold-back.
pub const DEFAULT_PART_TARGET: Duration = Duration::from_millis(500);
/// A segment per encoder keyframe interval (the program's is 2 s).
pub const DEFAULT_SEGMENT_TARGET: Duration = Duration::from_secs(2);

/// What the stream is, once both encoders' formats are known (before any part).
#[derive(Debug, Clone)]
pub struct HlsInit {
    /// The CMAF header (`ftyp` + `moov`): the playlist's `EXT-X-MAP`.
    pub bytes: Vec<u8>,
    /// RFC 6381 codecs, e.g. `avc1.4d001f,mp4a.40.2` (a multivariant playlist's `CODECS`).
    pub codecs: String,
    pub width: u32,
    pub height: u32,
}

/// Where an HLS output's media goes. Called on GStreamer streaming threads (the output's video
/// and audio branches), one call at a time and in order: `init` once, then events, then `end`.
///
/// **They must never block**: a stalled call holds up the output (its queues fill, then drop
/// their oldest media). Store the bytes and hand anything slow (uploads) to another thread.
pub trait HlsSink: Send + Sync + 'static {
    /// The stream's header and codecs, before its first part.
    fn init(&self, init: HlsInit);
    /// A part, or the end of a segment.
    fn event(&self, event: HlsEvent);
    /// The output has finished (EOS): the last part and segment were sent.
    fn end(&self);
}

/// An HLS output: the program's H.264 and AAC, as it encodes them, cut for LL-HLS.
#[derive(Clone)]
pub struct HlsOutputSpec {
    pub sink: Arc<dyn HlsSink>,
    pub segmenter: SegmenterConfig,
}

impl HlsOutputSpec {
    /// Parts of 500 ms and segments of 2 s into `sink`.
    pub fn new(sink: Arc<dyn HlsSink>) -> Self {
        HlsOutputSpec {
            sink,
            segmenter: SegmenterConfig { part_target: DEFAULT_PART_TARGET, segment_target: DEFAULT_SEGMENT_TARGET },
        }
    }
}

impl std::fmt::Debug for HlsOutputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsOutputSpec").field("segmenter", &self.segmenter).finish_non_exhaustive()
    }
}

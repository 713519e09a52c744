//! Low-latency HLS (RFC 8216bis, LL-HLS) of the program, as plain Rust: no GStreamer here, so
//! every byte and every boundary is tested exactly. The GStreamer side (`program::hls_bin`)
//! turns the encoders' buffers into [`Sample`]s; what is written is served by the binary.
//!
//! - [`cmaf`]: the CMAF muxer. One init segment for both tracks, and one fragment (`moof` +
//!   `mdat`, video and audio together) per part. Written by hand because LL-HLS needs parts
//!   cut where the playlist says, which no muxer element does.
//! - [`Segmenter`]: when a part and a segment end (video keyframes and durations decide; audio
//!   follows), as a state machine fed samples with their times.
//! - [`Playlist`]: the LL-HLS media playlist, updated from the segmenter's [`HlsEvent`]s, and
//!   what the server's blocking playlist reload asks of it.

mod boxes;
pub mod cmaf;
mod error;
mod playlist;
mod segmenter;
#[cfg(test)]
mod testing;
mod time;

pub use cmaf::{AudioConfig, Sample, VideoConfig, fragment, init_segment};
pub use error::{HlsError, Result};
pub use playlist::{INIT_NAME, Playlist, PlaylistConfig, part_name, segment_name};
pub use segmenter::{AUDIO_WAIT, HlsEvent, Segmenter, SegmenterConfig};

//! Tessera's room compositor: a room's live RTP in, one produced H.264/AAC program out.
//!
//! [`Program`] takes input tracks at runtime (VP8, H.264, Opus over RTP), decodes them,
//! composes the video by a JSON [`layout::Layout`], mixes the audio, encodes once and feeds
//! any number of outputs that attach and detach while it runs. No WebRTC here: the SFU hands us
//! RTP through the binary.

pub mod config;
pub mod destination;
pub mod error;
#[cfg(feature = "test-harness")]
pub mod harness;
pub mod hls;
pub mod hls_output;
pub mod keyframe;
pub mod layout;
mod locks;
pub mod program;
pub mod rtp;
pub mod rtp_output;
pub mod sync;
pub mod synthetic;
pub mod track;

pub use config::ProgramConfig;
pub use destination::{DestinationId, DestinationInfo, DestinationSpec, DestinationStatus, IngestPreset, RtmpUrl};
pub use error::{CompositorError, Result};
pub use hls_output::{HlsInit, HlsOutputSpec, HlsSink};
pub use program::{
    DecoderCount, OutputId, OutputSpec, OutputStats, Preview, Program, ProgramEvent, ProgramId, ProgramStats,
    RenditionId, RenditionInfo, RenditionRequest, TrackStats, VideoFormat,
};
pub use rtp::SenderReport;
pub use rtp_output::{RtpClockSample, RtpOutputInfo, RtpOutputSpec, RtpSink, RtpStream, RtpStreamInfo};
pub use track::{Codec, TrackId, TrackKind, TrackParams};

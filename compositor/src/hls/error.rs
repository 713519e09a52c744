//! What can be wrong with what the encoders hand the HLS muxer: their codec configuration
//! records, or samples no MP4 box can describe. Bad input is an error, never a panic: the
//! bytes come from GStreamer caps and buffers.

/// One problem with the codec configuration or the samples given to the muxer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlsError {
    /// The H.264 `codec_data` (avcC, ISO/IEC 14496-15) is unusable.
    #[error("invalid avcC record: {0}")]
    InvalidAvcc(&'static str),
    /// The AAC `codec_data` (AudioSpecificConfig, ISO/IEC 14496-3) is unusable.
    #[error("invalid AudioSpecificConfig: {0}")]
    InvalidAsc(&'static str),
    /// A configuration value out of range (`field`: which one).
    #[error("invalid HLS configuration: {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    /// A fragment's samples do not fit its boxes (sizes and counts are 32-bit).
    #[error("cannot mux fragment: {0}")]
    Fragment(String),
}

pub type Result<T, E = HlsError> = std::result::Result<T, E>;

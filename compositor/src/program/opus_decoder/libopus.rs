//! The few libopus calls the decoder needs, through its single-stream API.
//!
//! GStreamer's `opusdec` goes through the multistream API even for one stream, and libopus
//! 1.3 (Debian 12, built with custom modes) recomputes a decoder's size on every multistream
//! call, which runs CPUID a few times per packet. In a virtual machine every CPUID traps to the
//! hypervisor: that was 38% of opusdec's CPU here. `opus_decode_float` runs none.

use std::ffi::{CStr, c_char, c_int};
use std::ptr::NonNull;

#[repr(C)]
struct RawDecoder {
    _private: [u8; 0],
}

#[link(name = "opus")]
unsafe extern "C" {
    fn opus_decoder_create(fs: i32, channels: c_int, error: *mut c_int) -> *mut RawDecoder;
    fn opus_decoder_destroy(st: *mut RawDecoder);
    fn opus_decode_float(
        st: *mut RawDecoder,
        data: *const u8,
        len: i32,
        pcm: *mut f32,
        frame_size: c_int,
        decode_fec: c_int,
    ) -> c_int;
    fn opus_packet_get_nb_samples(data: *const u8, len: i32, fs: i32) -> c_int;
    fn opus_strerror(error: c_int) -> *const c_char;
}

/// Opus always decodes at 48 kHz here (what WebRTC's RTP clock is).
pub const RATE: u32 = 48_000;
/// The longest Opus packet: 120 ms.
pub const MAX_SAMPLES: usize = RATE as usize * 120 / 1000;

/// A libopus error code with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusError {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for OpusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

fn error(code: c_int) -> OpusError {
    // SAFETY: opus_strerror returns a static NUL-terminated string for any code.
    let message = unsafe { CStr::from_ptr(opus_strerror(code)) }.to_string_lossy().into_owned();
    OpusError { code, message }
}

/// One libopus decoder at 48 kHz with 1 or 2 output channels (any stream decodes to either).
pub struct Decoder {
    raw: NonNull<RawDecoder>,
    channels: usize,
}

// SAFETY: a libopus decoder is plain memory with no thread affinity; `&mut self` serialises use.
unsafe impl Send for Decoder {}

/// What to decode into the next output samples.
pub enum Source<'a> {
    /// A packet, normally.
    Packet(&'a [u8]),
    /// A lost frame rebuilt from the in-band FEC data of the packet after it.
    Fec(&'a [u8]),
    /// A lost frame with nothing to rebuild it from: concealment.
    Conceal,
}

impl Decoder {
    pub fn new(channels: usize) -> Result<Decoder, OpusError> {
        let mut err: c_int = 0;
        // SAFETY: valid rate and channel count; `err` outlives the call.
        let raw = unsafe { opus_decoder_create(RATE as i32, channels as c_int, &mut err) };
        match NonNull::new(raw) {
            Some(raw) if err == 0 => Ok(Decoder { raw, channels }),
            Some(raw) => {
                // SAFETY: created above, not used afterwards.
                unsafe { opus_decoder_destroy(raw.as_ptr()) };
                Err(error(err))
            }
            None => Err(error(err)),
        }
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Decodes `samples` per channel (for `Packet`, at most that many) and returns them
    /// interleaved. For `Fec` and `Conceal`, `samples` must be a multiple of 2.5 ms (120 samples).
    pub fn decode(&mut self, source: Source<'_>, samples: usize) -> Result<Vec<f32>, OpusError> {
        let samples = samples.min(MAX_SAMPLES);
        let mut pcm = vec![0.0f32; samples * self.channels];
        let (data, len, fec) = match source {
            Source::Packet(p) => (p.as_ptr(), p.len(), 0),
            Source::Fec(p) => (p.as_ptr(), p.len(), 1),
            Source::Conceal => (std::ptr::null(), 0, 0),
        };
        let len = i32::try_from(len).map_err(|_| error(-1))?;
        // SAFETY: `data` is valid for `len` bytes (or null with 0); `pcm` holds `samples`
        // interleaved frames of `channels`.
        let n = unsafe { opus_decode_float(self.raw.as_ptr(), data, len, pcm.as_mut_ptr(), samples as c_int, fec) };
        if n < 0 {
            return Err(error(n));
        }
        pcm.truncate(n as usize * self.channels);
        Ok(pcm)
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { opus_decoder_destroy(self.raw.as_ptr()) }
    }
}

/// Samples per channel (at 48 kHz) that a packet decodes to, read from its TOC byte.
pub fn packet_samples(packet: &[u8]) -> Result<usize, OpusError> {
    let len = i32::try_from(packet.len()).map_err(|_| error(-4))?;
    if len == 0 {
        return Err(error(-4));
    }
    // SAFETY: `packet` is valid for `len` bytes; the call only reads it.
    let n = unsafe { opus_packet_get_nb_samples(packet.as_ptr(), len, RATE as i32) };
    if n < 0 { Err(error(n)) } else { Ok(n as usize) }
}

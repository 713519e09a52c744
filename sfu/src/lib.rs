//! The WebRTC SFU (see issue: SFU).

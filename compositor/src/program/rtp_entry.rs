//! Where a track's RTP (and its sender reports) enter the program: a source pad of our own,
//! linked to one of the jitter buffer's sink pads, pushed from the caller's thread.
//!
//! An `appsrc` would add a thread and a wake-up per packet between the SFU and the jitter buffer
//! (eight threads for four participants, about 0.02 core at 4 x 1 Mbit/s). The jitter buffer's
//! chain function only queues the packet and signals its own output thread, and drops what is
//! older than its latency (`drop-on-latency`), so pushing into it directly never waits on
//! decoding or compositing. A sender report is handled in the pushing thread (`handle-sync`,
//! lip sync), which takes no lock the caller holds.

use super::elements::live_src_pad;
use crate::error::Result;
use crate::locks::lock;
use gst::prelude::*;
use std::sync::Mutex;

pub(crate) struct RtpEntry {
    /// Serialises pushes from several threads: a pad has one streaming context.
    pad: Mutex<gst::Pad>,
}

impl RtpEntry {
    /// A live source pad for `caps`, linked to `sink`, with its stream-start, caps and segment
    /// already stored: they go out ahead of the first packet.
    pub fn link(stream_id: &str, caps: &gst::Caps, sink: &gst::Pad) -> Result<RtpEntry> {
        let pad = live_src_pad("rtp-entry", stream_id, caps)?;
        pad.link(sink)?;
        Ok(RtpEntry { pad: Mutex::new(pad) })
    }

    /// Hands one packet to the jitter buffer. An error means the track is shutting down.
    pub fn push(&self, buffer: gst::Buffer) -> std::result::Result<gst::FlowSuccess, gst::FlowError> {
        let pad = lock(&self.pad);
        pad.push(buffer)
    }

    /// Unlinks and deactivates the pad (when the track's bin is gone).
    pub fn close(&self) {
        let pad = lock(&self.pad);
        if let Some(peer) = pad.peer() {
            let _ = pad.unlink(&peer);
        }
        let _ = pad.set_active(false);
    }
}

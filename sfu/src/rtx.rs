//! Turns a publisher's retransmissions (RFC 4588 RTX, `a=ssrc-group:FID`) back into the
//! packets they repair before the NACK generator sees them.
//!
//! `webrtc` 0.21 unwraps RTX only after the interceptor chain, so its NACK generator never
//! learns that a lost packet was repaired and asks for it again at every interval until it
//! ages out: a 5% loss made the publisher resend each lost packet about 16 times. Unwrapped
//! here, the repair counts as the packet's arrival for every interceptor above (NACK
//! generator, TWCC and receiver reports), and the peer connection sees an ordinary packet of
//! the primary stream.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;

/// The RTX unwrapper (an interceptor below the NACK generator).
pub(crate) struct RtxUnwrapper {
    /// RTX SSRC → (primary SSRC, primary payload type).
    repairs: HashMap<u32, (u32, u8)>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl RtxUnwrapper {
    pub(crate) fn new() -> Self {
        RtxUnwrapper { repairs: HashMap::new(), read: VecDeque::new(), write: VecDeque::new() }
    }
}

/// Rewrites an RTX packet as the packet it repairs; false when it repairs nothing (a
/// padding-only probe without the original sequence number).
fn unwrap_rtx(p: &mut rtc::rtp::Packet, primary_ssrc: u32, primary_pt: u8) -> bool {
    if p.payload.len() < 2 {
        return false;
    }
    let osn = u16::from_be_bytes([p.payload[0], p.payload[1]]);
    p.payload = p.payload.slice(2..);
    p.header.ssrc = primary_ssrc;
    p.header.payload_type = primary_pt;
    p.header.sequence_number = osn;
    true
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtxUnwrapper {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        if let Packet::Rtp(p) = &mut msg.message.packet
            && let Some(&(ssrc, pt)) = self.repairs.get(&p.header.ssrc)
            && !unwrap_rtx(p, ssrc, pt)
        {
            return Ok(());
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for RtxUnwrapper {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.repairs.insert(rtx, (info.ssrc, info.payload_type));
        }
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.repairs.remove(&rtx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rtx_packet_becomes_the_packet_it_repairs() {
        let mut p = rtc::rtp::Packet::default();
        p.header.ssrc = 2222;
        p.header.payload_type = 97;
        p.header.sequence_number = 5;
        p.header.timestamp = 90_000;
        p.payload = bytes::Bytes::from_static(&[0x12, 0x34, 0xaa, 0xbb]);
        assert!(unwrap_rtx(&mut p, 1111, 96));
        assert_eq!((p.header.ssrc, p.header.payload_type, p.header.sequence_number), (1111, 96, 0x1234));
        assert_eq!(p.header.timestamp, 90_000, "the timestamp is the original's");
        assert_eq!(&p.payload[..], &[0xaa, 0xbb]);
        let mut probe = rtc::rtp::Packet::default();
        assert!(!unwrap_rtx(&mut probe, 1111, 96), "padding without an original sequence number");
    }
}

//! The plumbing our interceptors share: each looks at, rewrites or drops the packets passing
//! through ([`PacketTap`]); [`Tapped`] makes one an interceptor of the chain.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Interceptor, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;

/// What an interceptor of ours does with the packets passing through it.
pub(crate) trait PacketTap: Send + Sync {
    /// An inbound message: push what goes on toward the application into `out` (nothing
    /// drops it; several split it).
    fn inbound(&mut self, msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        out.push_back(msg);
    }

    /// An outbound message, seen on its way to the wire: whether it goes on (unchanged).
    fn outbound(&mut self, _msg: &TaggedPacket) -> bool {
        true
    }

    fn bind_local(&mut self, _info: &StreamInfo) {}
    fn unbind_local(&mut self, _info: &StreamInfo) {}
    fn bind_remote(&mut self, _info: &StreamInfo) {}
    fn unbind_remote(&mut self, _info: &StreamInfo) {}
}

/// A [`PacketTap`] as an interceptor.
pub(crate) struct Tapped<T> {
    tap: T,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl<T: PacketTap> Tapped<T> {
    pub(crate) fn new(tap: T) -> Self {
        Tapped { tap, read: VecDeque::new(), write: VecDeque::new() }
    }
}

impl<T: PacketTap> Protocol<TaggedPacket, TaggedPacket, ()> for Tapped<T> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        self.tap.inbound(msg, &mut self.read);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        if self.tap.outbound(&msg) {
            self.write.push_back(msg);
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl<T: PacketTap> Interceptor for Tapped<T> {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.tap.bind_local(info);
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.tap.unbind_local(info);
    }
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.tap.bind_remote(info);
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.tap.unbind_remote(info);
    }
}

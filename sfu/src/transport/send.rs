//! The way out: each datagram a connection's peer connection produces leaves on its path,
//! UDP datagrams gathered into one `sendmmsg` per socket (`batch.rs`), ICE-TCP frames queued
//! for their stream's writer task; nothing waits, and what cannot go is counted and dropped.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rtc::shared::{TaggedBytesMut, TransportProtocol};

use super::{Transport, batch, framing, lock, shard};

impl Transport {
    /// Sends one datagram a connection's peer connection produced; never waits.
    pub(crate) fn send(&self, msg: TaggedBytesMut) {
        #[cfg(any(test, feature = "test-harness"))]
        if let Some(w) = &self.wire {
            self.departed(&msg.message, w.now());
            w.carry(msg);
            return;
        }
        let t = msg.transport;
        let sent = match t.transport_protocol {
            TransportProtocol::TCP => {
                let out = lock(&self.routes).tcp_out.get(&(t.local_addr, t.peer_addr)).cloned();
                let framed = framing::frame(&msg.message);
                out.zip(framed).is_some_and(|(o, f)| o.try_send(f).is_ok())
            }
            _ => {
                let socket = self.addrs.iter().position(|a| *a == t.local_addr).unwrap_or(0);
                match batch::push(batch::Pending { socket, to: t.peer_addr, data: msg.message }) {
                    Ok(None) => true,
                    Ok(Some(full)) => {
                        self.flush(full);
                        true
                    }
                    Err(p) => {
                        let sent = self.socket(socket).is_some_and(|s| s.send_to(&p.data, p.to).is_ok());
                        if sent {
                            self.departed(&p.data, Instant::now());
                        }
                        sent
                    }
                }
            }
        };
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs `f`, which forwards a packet that did not come through a forwarding thread (one made
    /// in this process, see `local_publisher.rs`), gathering the UDP datagrams it sends into
    /// one `sendmmsg` per socket as a forwarding thread's turn does.
    pub(crate) fn batched<R>(&self, f: impl FnOnce() -> R) -> R {
        self.turn(f)
    }

    /// The socket this thread sends from on local address `index`: its shard's own, or the
    /// first shard's on any other thread (all of an address's sockets share its port).
    fn socket(&self, index: usize) -> Option<&std::net::UdpSocket> {
        let shard = self.shards.get(shard::current().unwrap_or(0)).or(self.shards.first())?;
        shard.sockets.get(index)
    }

    /// Sends a batch of UDP datagrams, one `sendmmsg` per socket.
    pub(super) fn flush(&self, mut datagrams: Vec<batch::Pending>) {
        if datagrams.is_empty() {
            return;
        }
        datagrams.sort_by_key(|d| d.socket);
        for run in datagrams.chunk_by(|a, b| a.socket == b.socket) {
            let dropped = match self.socket(run[0].socket) {
                Some(s) => batch::send_all(s.as_raw_fd(), run),
                None => run.len(),
            };
            if dropped > 0 {
                self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            }
        }
        let now = Instant::now();
        for d in &datagrams {
            self.departed(&d.data, now);
        }
    }

    /// An SRTP datagram left at `now`: if it is a forwarded copy, its delay is recorded (the
    /// RTP header is not encrypted).
    pub(super) fn departed(&self, data: &[u8], now: Instant) {
        let Some(delay) = &self.delay else { return };
        // RTP version 2, and not RTCP (payload types 192–223 with the marker bit; RFC 5761).
        if data.len() < 12 || data[0] >> 6 != 2 || (192..=223).contains(&data[1]) {
            return;
        }
        let seq = u16::from_be_bytes([data[2], data[3]]);
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        delay.departed(ssrc, seq, now);
    }
}

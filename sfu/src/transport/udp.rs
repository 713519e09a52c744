//! The UDP receive loop: one task per shared socket.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rtc::shared::TransportProtocol;
use tokio::net::UdpSocket;

use super::Transport;

/// Largest datagram read (the peer connections' receive MTU is smaller).
const RECV_BUF: usize = 2048;
/// Datagrams a receive loop handles before it yields to the runtime.
const RECV_BURST: usize = 64;

/// Reads one UDP socket for as long as the transport lives.
pub(super) async fn udp_loop(transport: Weak<Transport>, sock: Arc<UdpSocket>, local: SocketAddr) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut errors = 0u32;
    loop {
        let first = sock.recv_from(&mut buf).await;
        let Some(t) = transport.upgrade() else { return };
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(r) = next.take() {
            match r {
                Ok((n, peer)) => {
                    errors = 0;
                    t.deliver(local, peer, TransportProtocol::UDP, &buf[..n], Instant::now());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors from a peer that went away surface here; the socket is fine.
                Err(e) => {
                    errors += 1;
                    tracing::debug!(%local, "UDP receive error: {e}");
                    if errors > 100 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            handled += 1;
            if handled < RECV_BURST {
                next = Some(sock.try_recv_from(&mut buf));
            }
        }
        drop(t);
        if handled >= RECV_BURST {
            tokio::task::yield_now().await;
        }
    }
}

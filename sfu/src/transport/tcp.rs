//! ICE-TCP (RFC 6544), passive side: each accepted stream carries RFC 4571 frames, routed
//! like UDP datagrams by the stream's path.

use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Instant;

use rtc::shared::TransportProtocol;
use rtc::shared::tcp_framing::TcpFrameDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{Transport, lock};

/// Frames waiting for a slow TCP peer before further ones are dropped.
const WRITE_QUEUE: usize = 1024;
/// The longest frame a peer may announce (a frame's length is 16 bits; more is garbage).
const MAX_BUFFERED: usize = 256 * 1024;

pub(super) async fn accept_loop(transport: Weak<Transport>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("ICE-TCP accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if transport.strong_count() == 0 {
            return;
        }
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(transport.clone(), stream, peer));
    }
}

/// Reads one stream's frames until it closes; a writer task sends what connections queue for it.
async fn serve(transport: Weak<Transport>, stream: TcpStream, peer: SocketAddr) {
    let Ok(local) = stream.local_addr() else { return };
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    match transport.upgrade() {
        Some(t) => lock(&t.routes).tcp_out.insert((local, peer), tx),
        None => return,
    };
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    let mut decoder = TcpFrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        decoder.extend_from_slice(&buf[..n]);
        if decoder.buffered_len() > MAX_BUFFERED {
            tracing::info!(%peer, "ICE-TCP peer sent an oversized frame; closing the stream");
            break;
        }
        let Some(t) = transport.upgrade() else { break };
        while let Some(frame) = decoder.next_packet() {
            t.deliver(local, peer, TransportProtocol::TCP, &frame, Instant::now());
        }
    }
    writer.abort();
    if let Some(t) = transport.upgrade() {
        let mut r = lock(&t.routes);
        r.tcp_out.remove(&(local, peer));
        r.by_path.remove(&(local, peer, true));
    }
}

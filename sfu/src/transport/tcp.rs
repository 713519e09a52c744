//! ICE-TCP (RFC 6544), passive side: each accepted stream carries RFC 4571 frames, routed
//! like UDP datagrams by the stream's path.

use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Instant;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rtc::shared::TransportProtocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::framing::FrameReader;
use super::{Transport, lock};

/// Frames waiting for a slow TCP peer before further ones are dropped.
const WRITE_QUEUE: usize = 1024;
/// A stream that no connection has claimed by then (its connectivity checks named no ufrag of
/// ours) is closed: half-open or idle streams from strangers cost a task and a file
/// descriptor each, and nothing else would ever end them.
const UNCLAIMED_FOR: Duration = Duration::from_secs(10);
/// Streams served at once, at most; more are closed as soon as they are accepted.
const MAX_STREAMS: usize = 4096;

pub(super) async fn accept_loop(transport: Weak<Transport>, listener: TcpListener) {
    let open = Arc::new(AtomicUsize::new(0));
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
        if open.load(Ordering::Relaxed) >= MAX_STREAMS {
            tracing::warn!(%peer, limit = MAX_STREAMS, "too many ICE-TCP streams; closing the new one");
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, Ordering::Relaxed);
        let (transport, open) = (transport.clone(), open.clone());
        tokio::spawn(async move {
            serve(transport, stream, peer).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
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
    let mut frames = FrameReader::default();
    let mut buf = vec![0u8; 16 * 1024];
    let unclaimed_until = tokio::time::Instant::now() + UNCLAIMED_FOR;
    let mut claimed = false;
    loop {
        let read = if claimed {
            rd.read(&mut buf).await
        } else {
            match tokio::time::timeout_at(unclaimed_until, rd.read(&mut buf)).await {
                Ok(read) => read,
                Err(_) => {
                    tracing::debug!(%peer, "ICE-TCP stream claimed by no connection in time; closing it");
                    break;
                }
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Some(t) = transport.upgrade() else { break };
        frames.push(&buf[..n], |frame| t.deliver(local, peer, TransportProtocol::TCP, frame, Instant::now()));
        claimed = claimed || lock(&t.routes).by_path.contains_key(&(local, peer, true));
    }
    writer.abort();
    if let Some(t) = transport.upgrade() {
        let mut r = lock(&t.routes);
        r.tcp_out.remove(&(local, peer));
        r.by_path.remove(&(local, peer, true));
    }
}

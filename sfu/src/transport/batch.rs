//! What one turn of a forwarding thread produces, sent together: the UDP datagrams, with one
//! `sendmmsg` per socket, and the writes it hands to other shards' threads.
//!
//! A publisher's packet becomes one datagram per subscriber. While the transport hands a read
//! datagram to its connection (and, through the forwarding path, to every subscriber's), the
//! UDP datagrams produced on that thread are collected here and flushed when the hand-off
//! returns (or when [`MAX_BATCH`] are waiting), saving a system call per copy. A copy for a
//! subscriber whose connection another shard owns is not written here but deferred
//! (`shard.rs`): the deferred writes are handed over together, one wake-up per shard.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use bytes::BytesMut;

use super::shard::Deferred;

/// The most datagrams held before a flush (a 20-subscriber fan-out fits).
pub(super) const MAX_BATCH: usize = 64;

/// One datagram waiting: the index of its local address (`Transport::addrs`), its destination
/// and its bytes.
pub(super) struct Pending {
    pub socket: usize,
    pub to: SocketAddr,
    pub data: BytesMut,
}

/// What a turn collected.
struct Batch {
    datagrams: Vec<Pending>,
    deferred: Vec<Deferred>,
}

thread_local! {
    /// `Some` while this thread collects datagrams (inside [`collecting`]).
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Runs `f` collecting the UDP datagrams sent and the writes deferred on this thread, then
/// hands them to `flush` and `hand_over`. Nested calls collect into the outer batch.
pub(super) fn collecting<R>(
    f: impl FnOnce() -> R,
    flush: impl Fn(Vec<Pending>),
    hand_over: impl FnOnce(Vec<Deferred>),
) -> R {
    let outer = BATCH.with(|b| {
        let mut b = b.borrow_mut();
        if b.is_some() {
            true
        } else {
            *b = Some(Batch { datagrams: Vec::with_capacity(MAX_BATCH), deferred: Vec::new() });
            false
        }
    });
    let r = f();
    if !outer && let Some(batch) = BATCH.with(|b| b.borrow_mut().take()) {
        flush(batch.datagrams);
        if !batch.deferred.is_empty() {
            hand_over(batch.deferred);
        }
    }
    r
}

/// Queues a datagram if this thread is collecting; otherwise gives it back. When the batch is
/// full, returns it for flushing (and keeps collecting).
pub(super) fn push(p: Pending) -> Result<Option<Vec<Pending>>, Pending> {
    BATCH.with(|b| {
        let mut b = b.borrow_mut();
        let Some(batch) = b.as_mut() else { return Err(p) };
        batch.datagrams.push(p);
        Ok((batch.datagrams.len() >= MAX_BATCH)
            .then(|| std::mem::replace(&mut batch.datagrams, Vec::with_capacity(MAX_BATCH))))
    })
}

/// Keeps a write for another shard until the turn ends, if this thread is collecting;
/// otherwise gives it back (to be written at once).
pub(super) fn defer(d: Deferred) -> Option<Deferred> {
    BATCH.with(|b| {
        let mut b = b.borrow_mut();
        let Some(batch) = b.as_mut() else { return Some(d) };
        batch.deferred.push(d);
        None
    })
}

/// A socket address in the form the kernel takes.
fn raw_addr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; it is large enough for either family.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is suitably aligned.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Sends `datagrams` on the non-blocking socket `fd` with as few `sendmmsg` calls as the kernel
/// allows; returns how many could not be sent (a full socket buffer drops the rest; a datagram
/// the kernel refuses is skipped).
pub(super) fn send_all(fd: RawFd, datagrams: &[Pending]) -> usize {
    let addrs: Vec<_> = datagrams.iter().map(|d| raw_addr(&d.to)).collect();
    let mut iovs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|d| libc::iovec { iov_base: d.data.as_ptr() as *mut libc::c_void, iov_len: d.data.len() })
        .collect();
    // SAFETY: each header points at this function's iovec and address, which outlive the calls.
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .zip(&addrs)
        .map(|(iov, (addr, len))| {
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = addr as *const _ as *mut libc::c_void;
            h.msg_namelen = *len;
            h.msg_iov = iov as *mut libc::iovec;
            h.msg_iovlen = 1;
            libc::mmsghdr { msg_hdr: h, msg_len: 0 }
        })
        .collect();
    let mut at = 0;
    let mut dropped = 0;
    while at < msgs.len() {
        let rest = &mut msgs[at..];
        // SAFETY: `rest` is a valid array of initialised headers of this length.
        let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) };
        if n > 0 {
            at += n as usize;
            continue;
        }
        let err = std::io::Error::last_os_error();
        match err.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => {
                dropped += msgs.len() - at;
                break;
            }
            // The first datagram was refused (e.g. an unreachable address): skip it.
            _ => {
                tracing::trace!(to = %datagrams[at].to, "datagram refused: {err}");
                dropped += 1;
                at += 1;
            }
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn one_call_sends_a_batch_to_several_destinations() {
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx: Vec<_> = (0..3).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        let batch: Vec<Pending> = rx
            .iter()
            .enumerate()
            .map(|(i, r)| Pending { socket: 0, to: r.local_addr().unwrap(), data: BytesMut::from(&[i as u8; 100][..]) })
            .collect();
        assert_eq!(send_all(tx.as_raw_fd(), &batch), 0);
        for (i, r) in rx.iter().enumerate() {
            let mut buf = [0u8; 200];
            r.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
            let (n, from) = r.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0], from), (100, i as u8, tx.local_addr().unwrap()));
        }
    }

    #[test]
    fn only_a_collecting_thread_batches_and_a_full_batch_comes_back() {
        let p = |n: u8| Pending { socket: 0, to: "127.0.0.1:9".parse().unwrap(), data: BytesMut::from(&[n][..]) };
        assert!(push(p(0)).is_err(), "not collecting: sent at once");
        let flushed = std::cell::RefCell::new(Vec::new());
        collecting(
            || {
                for n in 0..MAX_BATCH + 3 {
                    match push(p(n as u8)) {
                        Ok(Some(full)) => flushed.borrow_mut().push(full.len()),
                        Ok(None) => {}
                        Err(_) => panic!("collecting"),
                    }
                }
                // A nested hand-off adds to the same batch.
                collecting(|| assert!(matches!(push(p(0)), Ok(None))), |_| panic!("inner flush"), |_| panic!("inner"));
            },
            |rest| flushed.borrow_mut().push(rest.len()),
            |_| panic!("nothing deferred"),
        );
        assert_eq!(flushed.into_inner(), vec![MAX_BATCH, 4]);
        assert!(push(p(0)).is_err(), "collecting ends with the call");
    }
}

//! Small shared helpers: poisoned-lock recovery and random SSRCs.
//!
//! Every `std::sync` lock in this crate is taken through [`lock`], [`read`], [`write()`] and
//! [`wait`], never with `.lock().unwrap()` or an inline `unwrap_or_else(|e| e.into_inner())`.
//!
//! Why a poisoned lock is recovered rather than propagated: a lock is poisoned when a thread
//! panicked while holding it, and that panic is a bug in the handling of one packet, message
//! or participant. Passing the poison on would turn it into a panic of every later task that
//! touches the same room, track or transport, and so take the whole room (or, through the
//! SFU's `rooms` and the shared transport, the server) down with it. The data behind these
//! locks is still consistent when a holder panics:
//! - the maps of rooms, participants, tracks, subscriptions, declarations and routes change
//!   by whole-entry inserts, removes and `retain`s, mostly one per critical section; readers
//!   already cope with an entry that one map has and another has not (yet or any more), and
//!   a route whose connection is gone is a dead `Weak` that no longer upgrades, so a panic
//!   between two such steps leaves nothing a reader cannot handle;
//! - the forwarding state of one track or one subscriber (layer maps, rate meters, the layer
//!   selector, sequence number and timestamp rewriting), the speaker detector, the bandwidth
//!   estimator and the delay rings are updated packet by packet: a panic leaves at most one
//!   packet's update half done, which can put one stream's figures off but breaks nothing
//!   another stream or task relies on;
//! - the room observers and the media hand-off's consumer are called after the guard is
//!   dropped, so a panic in the application's code poisons nothing here;
//! - a connection's `RTCPeerConnection` is the one larger state machine behind a lock, and it
//!   belongs to a single peer: at worst that peer's connection stops working, as it could on
//!   a bad network, and nobody else's is affected.

use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, recovering it if a thread panicked while holding it (see the module docs).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Read-locks `l`, recovering it if a writer panicked (see the module docs).
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

/// Write-locks `l`, recovering it if a holder panicked (see the module docs).
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Waits on `c` with `guard`, recovering the mutex if a holder panicked meanwhile (see the
/// module docs). Wakes spuriously like [`Condvar::wait`]: callers recheck their condition.
pub(crate) fn wait<'a, T>(c: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    c.wait(guard).unwrap_or_else(|e| e.into_inner())
}

/// A random u32 (SSRCs) from the OS's random source.
pub(crate) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    crate::random::fill(&mut b);
    u32::from_ne_bytes(b)
}

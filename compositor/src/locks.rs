//! Poisoned-lock recovery: every `std::sync` lock in this crate is taken through [`lock`],
//! [`try_lock`], [`read`], [`write()`] and [`wait_timeout`], never with `.lock().unwrap()` or an
//! inline `unwrap_or_else(|e| e.into_inner())`. (Lip sync is `crate::sync`.)
//!
//! Why a poisoned lock is recovered rather than propagated: a lock is poisoned when a thread
//! panicked while holding it, and that panic is a bug in one change (a track, a layout, an
//! output) or in the handling of one buffer on a streaming thread. Passing the poison on would
//! make every later call on the program panic, the server's calls for the room and the
//! streaming threads' probes and callbacks alike, and so take the room's program down, and with
//! it every recording and live stream it feeds. The data behind these locks is still consistent
//! when a holder panics:
//! - `topology` guards no data: it only serialises changes of the pipeline's shape, and each
//!   change works from what the pipeline and the maps hold when it starts;
//! - the maps of tracks, name cards, outputs, destinations and draining outputs change by whole
//!   entries, one insert or remove at a time;
//! - the scene keeps only its inputs (the layout, the participants and their pads, the speaker
//!   ranking) and computes the tiles from them afresh for each plan, and lip sync recomputes a
//!   participant's offsets from the latest delays at each sender report, so nothing derived is
//!   left stale;
//! - the handlers, the preview's latest still and the elements' settings are replaced whole;
//!   per-stream state (the Opus decoder, a tile's crop, an output's segment and held audio,
//!   a test source's report counters) changes buffer by buffer, where a half-done update
//!   affects one buffer of one stream;
//! - the application's event handler is called with no lock held, and its keyframe handler
//!   with at most `topology` held (a new video track asks for its first keyframe), which
//!   guards no data.

use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};
use std::time::Duration;

/// Locks `m`, recovering it if a thread panicked while holding it (see the module docs).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Locks `m` if it is free, recovering it like [`lock`]; `None` only when another thread holds
/// it now.
pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Read-locks `l`, recovering it if a writer panicked (see the module docs).
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

/// Write-locks `l`, recovering it if a holder panicked (see the module docs).
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Waits on `c` with `guard` for at most `timeout`, recovering the mutex like [`lock`]. Returns
/// on a notification, a spurious wake-up or the timeout alike: callers recheck their condition
/// and the clock.
pub(crate) fn wait_timeout<'a, T>(c: &Condvar, guard: MutexGuard<'a, T>, timeout: Duration) -> MutexGuard<'a, T> {
    c.wait_timeout(guard, timeout).unwrap_or_else(|e| e.into_inner()).0
}

//! Poisoned-lock recovery for the server's own locks: every `std::sync` lock in this crate is
//! taken through [`lock`], never with `.lock().unwrap()` or an inline
//! `unwrap_or_else(|e| e.into_inner())`.
//!
//! Why a poisoned lock is recovered rather than propagated: a lock is poisoned when a thread
//! panicked while holding it, and that panic is a bug in one request, one published track or
//! one program event (Tokio keeps the server running when a request's task panics; the SFU's
//! hand-off thread and a program's threads call in here too). Passing the poison on would make
//! every later request for the same recording or stream panic as well, and, since every room
//! goes through the program hub's `rooms`, every room on the server: one bug would take the
//! rooms, their recordings and the server down with it. The data behind these locks is still
//! consistent when a holder panics:
//! - the registries (the hub's rooms and inputs, recordings, streams, the rooms' webhook
//!   lifecycle, the records on their way to Redis, the cluster's tasks) change by whole
//!   entries, or by a few field assignments to one entry; a record is saved to disk or Redis
//!   serialised whole, from one entry, so no half-changed record is stored;
//! - a change in several steps (a published track added to the room's program, then to the
//!   hub's map of the room's tracks) can be left with that one track or record out of step,
//!   which goes when the room's program stops;
//! - the programs' own state is behind the compositor's locks, which recover the same way;
//! - the listeners and keyframe routes change one entry at a time.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering it if a thread panicked while holding it (see the module docs).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

//! Small shared helpers: poisoned-lock recovery and random SSRCs.

use std::sync::Mutex;

/// Locks `m`, recovering it if a thread panicked while holding it: every piece of state the
/// SFU keeps under a mutex stays consistent between statements, so the data is still good.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random u32 (SSRCs) from the OS's random source.
pub(crate) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    crate::random::fill(&mut b);
    u32::from_ne_bytes(b)
}

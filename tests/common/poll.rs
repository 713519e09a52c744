//! Waiting for something a test cannot be told about: checked every 200 ms, bounded.

use std::time::{Duration, Instant};

/// Checks `cond` every 200 ms until it holds (true) or `timeout` has passed (false).
pub fn poll(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    true
}

/// [`poll`], failing the test with `what` when it times out.
pub fn wait(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    assert!(poll(timeout, cond), "timed out waiting for {what}");
}

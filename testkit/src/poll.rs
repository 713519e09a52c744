//! Waiting for something a test cannot be told about: checked again and again, bounded.

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

/// Calls `check` every 200 ms until it returns a value, and returns that; fails the test with
/// `what` when `timeout` passes first.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// In async tests (tokio): checks `cond` every 250 ms until it holds (true) or `timeout`
/// passes; then one last check decides.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    cond()
}

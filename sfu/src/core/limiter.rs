//! Rate limiting of keyframe requests (PLI/FIR) sent upstream to a publisher.

use std::time::{Duration, Instant};

/// Lets at most one keyframe request through per `min_interval`; the rest are dropped
/// (a keyframe answering the first one answers them all).
#[derive(Debug, Clone)]
pub struct KeyframeRequestLimiter {
    min_interval: Duration,
    last: Option<Instant>,
}

impl KeyframeRequestLimiter {
    /// A limiter that passes one request per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self { min_interval, last: None }
    }

    /// Whether a request arriving at `now` is forwarded; records it if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.min_interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

impl Default for KeyframeRequestLimiter {
    fn default() -> Self {
        Self::new(Duration::from_millis(500))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_one_per_interval() {
        let t0 = Instant::now();
        let mut l = KeyframeRequestLimiter::new(Duration::from_millis(500));
        assert!(l.allow(t0));
        assert!(!l.allow(t0 + Duration::from_millis(10)));
        assert!(!l.allow(t0 + Duration::from_millis(499)));
        assert!(l.allow(t0 + Duration::from_millis(500)));
        assert!(!l.allow(t0 + Duration::from_millis(900)));
        assert!(l.allow(t0 + Duration::from_millis(1000)));
    }
}

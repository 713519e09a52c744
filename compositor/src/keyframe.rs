//! Rate limiting of the program's keyframe requests: its decoders ask on every corrupt frame,
//! but one PLI per interval is all a sender needs. (The SFU has its own per-layer limiter,
//! `KeyframeRequestLimiter` in `sfu/src/core/limiter.rs`; the two crates share no code.)

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct KeyframeRequestThrottle {
    min_interval: Duration,
    last: Option<Duration>,
}

impl KeyframeRequestThrottle {
    pub fn new(min_interval: Duration) -> Self {
        KeyframeRequestThrottle { min_interval, last: None }
    }

    /// `now` is any monotonic time; returns whether a request should go out now.
    pub fn should_request(&mut self, now: Duration) -> bool {
        match self.last {
            Some(last) if now.saturating_sub(last) < self.min_interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_request_per_interval() {
        let mut l = KeyframeRequestThrottle::new(Duration::from_millis(500));
        assert!(l.should_request(Duration::from_millis(0)));
        assert!(!l.should_request(Duration::from_millis(100)));
        assert!(!l.should_request(Duration::from_millis(499)));
        assert!(l.should_request(Duration::from_millis(500)));
        assert!(!l.should_request(Duration::from_millis(900)));
        assert!(l.should_request(Duration::from_millis(1200)));
    }
}

//! Rate limiting of keyframe requests, both ways: the program's decoders ask their senders on
//! every corrupt frame, but one PLI per interval is all a sender needs; and the viewers of an
//! RTP output ask the program's encoder (`Program::request_keyframe`), which forces at most
//! one keyframe a second for all of them. (The SFU has its own per-layer limiter,
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

    #[test]
    fn a_burst_of_viewers_requests_forces_one_keyframe_and_the_next_second_another() {
        let mut l = KeyframeRequestThrottle::new(Duration::from_secs(1));
        let start = Duration::from_secs(5);
        let burst = (0..10).filter(|i| l.should_request(start + Duration::from_millis(10 * i))).count();
        assert_eq!(burst, 1, "ten requests within 100 ms force one keyframe");
        assert!(!l.should_request(start + Duration::from_millis(999)));
        assert!(l.should_request(start + Duration::from_secs(1)), "another after a second");
    }
}

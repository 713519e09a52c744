//! One destination's connection state. A failure of one destination only ever changes its own
//! state: it reconnects on its own schedule while the program and other outputs carry on.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationStatus {
    Connecting,
    Live,
    Reconnecting,
    Failed,
}

/// Exponential backoff between attempts, reset once a connection has stayed up for a while.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub multiplier: f64,
    /// Give up after this many failed attempts in a row (None: never).
    pub max_attempts: Option<u32>,
    /// A connection that lasted this long counts as healthy: the backoff starts over.
    pub stable_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            max_attempts: None,
            stable_after: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DestinationState {
    policy: ReconnectPolicy,
    status: DestinationStatus,
    failures_in_a_row: u32,
    live_since: Option<Duration>,
    retry_at: Option<Duration>,
    reconnects: u64,
    last_error: Option<String>,
}

impl DestinationState {
    /// A destination whose first connection attempt is under way.
    pub fn new(policy: ReconnectPolicy) -> Self {
        DestinationState {
            policy,
            status: DestinationStatus::Connecting,
            failures_in_a_row: 0,
            live_since: None,
            retry_at: None,
            reconnects: 0,
            last_error: None,
        }
    }

    pub fn status(&self) -> DestinationStatus {
        self.status
    }
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The connection is up and media flows.
    pub fn on_live(&mut self, now: Duration) {
        if self.status != DestinationStatus::Failed {
            self.status = DestinationStatus::Live;
            self.live_since = Some(now);
            self.retry_at = None;
        }
    }

    /// The connection failed or dropped; returns when to try again (None: given up).
    pub fn on_error(&mut self, now: Duration, error: &str) -> Option<Duration> {
        if self.status == DestinationStatus::Failed {
            return None;
        }
        self.last_error = Some(error.to_string());
        let was_stable = self.live_since.is_some_and(|since| now.saturating_sub(since) >= self.policy.stable_after);
        if was_stable {
            self.failures_in_a_row = 0;
        }
        self.live_since = None;
        self.failures_in_a_row += 1;
        if self.policy.max_attempts.is_some_and(|max| self.failures_in_a_row > max) {
            self.status = DestinationStatus::Failed;
            self.retry_at = None;
            return None;
        }
        let exp = self.policy.multiplier.powi(self.failures_in_a_row.saturating_sub(1).min(30) as i32);
        let delay = self.policy.initial_delay.mul_f64(exp).min(self.policy.max_delay);
        self.status = DestinationStatus::Reconnecting;
        self.retry_at = Some(now + delay);
        Some(delay)
    }

    /// Whether a reconnect attempt is due at `now`; if so the state becomes `Connecting`.
    pub fn poll_retry(&mut self, now: Duration) -> bool {
        match self.retry_at {
            Some(at) if now >= at && self.status == DestinationStatus::Reconnecting => {
                self.retry_at = None;
                self.status = DestinationStatus::Connecting;
                self.reconnects += 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn backs_off_exponentially_up_to_the_cap_then_recovers() {
        let mut d = DestinationState::new(ReconnectPolicy::default());
        assert_eq!(d.status(), DestinationStatus::Connecting);
        let delays: Vec<f64> =
            (0..8).map(|i| d.on_error(s(i as f64 * 100.0), "refused").unwrap().as_secs_f64()).collect();
        assert_eq!(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
        assert_eq!(d.status(), DestinationStatus::Reconnecting);
        assert!(!d.poll_retry(s(700.0)), "not yet due");
        assert!(d.poll_retry(s(730.0)));
        assert_eq!(d.status(), DestinationStatus::Connecting);
        d.on_live(s(731.0));
        assert_eq!(d.status(), DestinationStatus::Live);
        assert_eq!(d.reconnects(), 1);
        // Up for a minute: the next drop starts the backoff over.
        assert_eq!(d.on_error(s(800.0), "dropped"), Some(s(0.5)));
        assert_eq!(d.last_error(), Some("dropped"));
    }

    #[test]
    fn a_flapping_connection_keeps_backing_off() {
        let mut d = DestinationState::new(ReconnectPolicy::default());
        d.on_error(s(0.0), "x");
        assert!(d.poll_retry(s(0.5)));
        d.on_live(s(0.6));
        // Dropped after 2 s: not stable, so the delay keeps growing.
        assert_eq!(d.on_error(s(2.6), "x"), Some(s(1.0)));
    }

    #[test]
    fn gives_up_after_the_attempt_limit() {
        let policy = ReconnectPolicy { max_attempts: Some(2), ..Default::default() };
        let mut d = DestinationState::new(policy);
        assert!(d.on_error(s(0.0), "x").is_some());
        assert!(d.poll_retry(s(1.0)));
        assert!(d.on_error(s(1.0), "x").is_some());
        assert!(d.poll_retry(s(3.0)));
        assert_eq!(d.on_error(s(3.0), "x"), None);
        assert_eq!(d.status(), DestinationStatus::Failed);
        d.on_live(s(4.0));
        assert_eq!(d.status(), DestinationStatus::Failed, "failed is final");
        assert!(!d.poll_retry(s(100.0)));
    }
}

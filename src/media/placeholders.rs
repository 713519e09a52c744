//! Placeholders: the tiles of participants who were lost rather than left (the node hosting
//! them died). A room's program keeps such a participant, with no track, for
//! [`PLACEHOLDER_FOR`]: the layout shows their name card where their video was, and the
//! others' tiles do not move. The participant's return (a publication with the same program
//! id, their token's identity) takes the tile back in place; otherwise it goes when the time
//! is up.
//!
//! The bookkeeping is a plain state machine with time passed in ([`Placeholders`]); the hub
//! (`handoff.rs`) acts on what it decides.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a lost participant's tile waits for them: a client reconnecting through another
/// node (or the web client's retry) comes back well within this.
pub const PLACEHOLDER_FOR: Duration = Duration::from_secs(30);

/// The lost participants a program keeps tiles for, by program id.
#[derive(Debug, Default)]
pub struct Placeholders {
    since: HashMap<String, Instant>,
}

impl Placeholders {
    /// `id` was lost at `now`: its tile is kept.
    pub fn lost(&mut self, id: &str, now: Instant) {
        self.since.insert(id.to_owned(), now);
    }

    /// `id` publishes again: its tile is its own again; whether it was a placeholder.
    pub fn returned(&mut self, id: &str) -> bool {
        self.since.remove(id).is_some()
    }

    /// Whether `id` holds a placeholder.
    pub fn holds(&self, id: &str) -> bool {
        self.since.contains_key(id)
    }

    /// The placeholders whose time is up at `now`, forgotten.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .since
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= PLACEHOLDER_FOR)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.since.remove(id);
        }
        gone
    }

    /// Forgets them all (the program stopped: there are no tiles to keep).
    pub fn clear(&mut self) {
        self.since.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_participant_is_kept_until_the_time_is_up() {
        let t0 = Instant::now();
        let mut p = Placeholders::default();
        p.lost("blue", t0);
        p.lost("red", t0 + Duration::from_secs(10));
        assert!(p.expire(t0 + PLACEHOLDER_FOR - Duration::from_millis(1)).is_empty());
        assert_eq!(p.expire(t0 + PLACEHOLDER_FOR), vec!["blue".to_owned()]);
        assert!(!p.holds("blue") && p.holds("red"));
        assert_eq!(p.expire(t0 + PLACEHOLDER_FOR * 2), vec!["red".to_owned()]);
    }

    #[test]
    fn a_return_takes_the_tile_back_and_nothing_expires() {
        let t0 = Instant::now();
        let mut p = Placeholders::default();
        p.lost("blue", t0);
        assert!(p.returned("blue"));
        assert!(!p.returned("blue"), "a second publication is no return");
        assert!(p.expire(t0 + PLACEHOLDER_FOR * 2).is_empty());
    }

    #[test]
    fn lost_again_counts_from_the_second_loss() {
        let t0 = Instant::now();
        let mut p = Placeholders::default();
        p.lost("blue", t0);
        p.lost("blue", t0 + Duration::from_secs(20));
        assert!(p.expire(t0 + PLACEHOLDER_FOR).is_empty());
        assert_eq!(p.expire(t0 + Duration::from_secs(20) + PLACEHOLDER_FOR), vec!["blue".to_owned()]);
    }
}

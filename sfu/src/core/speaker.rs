//! Active speaker detection from the RFC 6464 audio-level header extension, smoothed so it
//! does not flicker between participants.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Parses the one-byte RFC 6464 value: (level in -dBov, 0 loudest .. 127 silence; voice flag).
pub fn parse_audio_level(ext: &[u8]) -> Option<(u8, bool)> {
    let b = *ext.first()?;
    Some((b & 0x7f, b & 0x80 != 0))
}

/// Tuning for [`ActiveSpeakerDetector`].
#[derive(Debug, Clone, Copy)]
pub struct SpeakerConfig {
    /// Smoothing time constant of the loudness average.
    pub time_constant: Duration,
    /// Minimum smoothed loudness (127 - dBov) to count as speaking.
    pub threshold: f32,
    /// A new speaker must be this much louder than the current one.
    pub margin: f32,
    /// Minimum time between two changes.
    pub min_dwell: Duration,
    /// A challenger must stay louder than the current speaker (by `margin`) this long before
    /// taking over: two people talking in short turns do not flip it at every turn.
    pub hold: Duration,
    /// A participant silent in the extension for this long counts as silent.
    pub stale_after: Duration,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        Self {
            time_constant: Duration::from_millis(400),
            threshold: 50.0,
            margin: 3.0,
            min_dwell: Duration::from_millis(1000),
            hold: Duration::from_millis(700),
            stale_after: Duration::from_millis(1000),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Smoothed {
    loudness: f32,
    updated: Instant,
}

/// Tracks every participant's smoothed loudness and names one active speaker.
#[derive(Debug, Clone)]
pub struct ActiveSpeakerDetector {
    cfg: SpeakerConfig,
    levels: HashMap<String, Smoothed>,
    current: Option<String>,
    changed_at: Option<Instant>,
    /// Who has been louder than the current speaker, since when.
    challenger: Option<(String, Instant)>,
}

impl Default for ActiveSpeakerDetector {
    fn default() -> Self {
        Self::new(SpeakerConfig::default())
    }
}

impl ActiveSpeakerDetector {
    /// A detector with this tuning.
    pub fn new(cfg: SpeakerConfig) -> Self {
        Self { cfg, levels: HashMap::new(), current: None, changed_at: None, challenger: None }
    }

    /// The active speaker now.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// One audio-level sample (RFC 6464 `level`, 0 = loudest) from `participant` at `now`.
    pub fn on_level(&mut self, participant: &str, level_dbov: u8, now: Instant) {
        let loudness = 127.0 - f32::from(level_dbov.min(127));
        match self.levels.get_mut(participant) {
            Some(s) => {
                let dt = now.saturating_duration_since(s.updated).as_secs_f32();
                let alpha = 1.0 - (-dt / self.cfg.time_constant.as_secs_f32()).exp();
                s.loudness += alpha * (loudness - s.loudness);
                s.updated = now;
            }
            None => {
                self.levels.insert(participant.to_owned(), Smoothed { loudness: 0.0, updated: now });
                self.on_level(participant, level_dbov, now);
            }
        }
    }

    /// Forgets a participant (left the room or stopped publishing audio).
    pub fn remove(&mut self, participant: &str) -> Option<Option<String>> {
        self.levels.remove(participant);
        if self.current.as_deref() == Some(participant) {
            self.current = None;
            return Some(None);
        }
        None
    }

    fn loudness(&self, id: &str, now: Instant) -> f32 {
        match self.levels.get(id) {
            Some(s) if now.saturating_duration_since(s.updated) < self.cfg.stale_after => s.loudness,
            _ => 0.0,
        }
    }

    /// Re-evaluates at `now`; returns the new active speaker when it changed. The last
    /// speaker stays active through silence until someone else speaks.
    pub fn tick(&mut self, now: Instant) -> Option<String> {
        let (best, best_loud) = self
            .levels
            .keys()
            .map(|id| (id.clone(), self.loudness(id, now)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)))?;
        if best_loud < self.cfg.threshold || self.current.as_deref() == Some(best.as_str()) {
            self.challenger = None;
            return None;
        }
        if let Some(cur) = &self.current {
            let cur_loud = self.loudness(cur, now);
            if best_loud < cur_loud + self.cfg.margin {
                self.challenger = None;
                return None;
            }
            let since = match &self.challenger {
                Some((who, since)) if *who == best => *since,
                _ => {
                    self.challenger = Some((best.clone(), now));
                    now
                }
            };
            let dwell_ok = self.changed_at.is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.min_dwell);
            if !dwell_ok || now.saturating_duration_since(since) < self.cfg.hold {
                return None;
            }
        }
        self.challenger = None;
        self.current = Some(best.clone());
        self.changed_at = Some(now);
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(d: &mut ActiveSpeakerDetector, id: &str, level: u8, from: Instant, ms: u64) {
        for i in 0..ms / 20 {
            d.on_level(id, level, from + Duration::from_millis(i * 20));
        }
    }

    #[test]
    fn parses_extension() {
        assert_eq!(parse_audio_level(&[0x80 | 30]), Some((30, true)));
        assert_eq!(parse_audio_level(&[127]), Some((127, false)));
        assert_eq!(parse_audio_level(&[]), None);
    }

    #[test]
    fn picks_loudest_and_does_not_flicker() {
        let t = Instant::now();
        let mut d = ActiveSpeakerDetector::default();
        feed(&mut d, "a", 30, t, 600);
        feed(&mut d, "b", 120, t, 600);
        assert_eq!(d.tick(t + Duration::from_millis(600)).as_deref(), Some("a"));
        // b gets a little louder for a moment: no change (dwell and margin).
        feed(&mut d, "b", 29, t + Duration::from_millis(600), 100);
        feed(&mut d, "a", 30, t + Duration::from_millis(600), 100);
        assert_eq!(d.tick(t + Duration::from_millis(700)), None);
        // a goes silent, b speaks for a while: b takes over once after the dwell time.
        let t2 = t + Duration::from_millis(700);
        feed(&mut d, "a", 127, t2, 1500);
        feed(&mut d, "b", 25, t2, 1500);
        let mut changes = vec![];
        for i in 0..75 {
            if let Some(s) = d.tick(t2 + Duration::from_millis(i * 20)) {
                changes.push(s);
            }
        }
        assert_eq!(changes, vec!["b".to_string()]);
        // Everyone silent: b stays the active speaker.
        let t3 = t2 + Duration::from_millis(1500);
        feed(&mut d, "b", 127, t3, 1000);
        assert_eq!(d.tick(t3 + Duration::from_millis(1000)), None);
        assert_eq!(d.current(), Some("b"));
        assert_eq!(d.remove("b"), Some(None));
    }

    #[test]
    fn short_turns_do_not_flip_the_speaker() {
        let t = Instant::now();
        let mut d = ActiveSpeakerDetector::default();
        feed(&mut d, "a", 20, t, 600);
        assert_eq!(d.tick(t + Duration::from_millis(600)).as_deref(), Some("a"));
        // a and b take turns of 400 ms for 10 s: a stays the speaker.
        let mut changes = vec![];
        for i in 0..500u64 {
            let now = t + Duration::from_millis(600 + i * 20);
            let a_talks = (i * 20 / 400) % 2 == 1;
            d.on_level("a", if a_talks { 20 } else { 127 }, now);
            d.on_level("b", if a_talks { 127 } else { 20 }, now);
            changes.extend(d.tick(now));
        }
        assert!(changes.is_empty(), "{changes:?}");
        // b talks on for a second: b takes over.
        let t2 = t + Duration::from_millis(10_600);
        for i in 0..60u64 {
            let now = t2 + Duration::from_millis(i * 20);
            d.on_level("a", 127, now);
            d.on_level("b", 20, now);
            changes.extend(d.tick(now));
        }
        assert_eq!(changes, vec!["b".to_string()]);
    }
}

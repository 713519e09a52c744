//! The load generator's report: one entry per subscriber, its tracks' figures and the totals
//! (the JSON shape is in the module docs of `load`), and the one-line progress summary.

use std::time::Duration;

use serde::Serialize;

use super::track::{TrackFigures, TrackKind};

/// The whole run, printed as JSON at the end.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub room: String,
    /// From the start of the run to this report.
    pub duration_s: f64,
    pub subscribers: Vec<SubscriberReport>,
    pub totals: Totals,
}

/// One subscriber.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SubscriberReport {
    /// Its name in the room, `NAME-sub-001`…
    pub id: String,
    /// The identity in its token.
    pub identity: String,
    /// The SFU's id for it, once joined.
    pub participant_id: Option<String>,
    /// Its subscribe connection is up (now, or when the run ended).
    pub connected: bool,
    /// From its start (its turn in the ramp) to `joined`, to its subscribe connection up, and
    /// to its first RTP packet.
    pub joined_ms: Option<u64>,
    pub connected_ms: Option<u64>,
    pub time_to_first_packet_ms: Option<u64>,
    /// Why it failed or left early; the figures up to then are kept.
    pub error: Option<String>,
    pub tracks: Vec<TrackReport>,
}

/// One track a subscriber received.
#[derive(Debug, Clone, Serialize)]
pub struct TrackReport {
    pub track_id: String,
    pub kind: TrackKind,
    #[serde(flatten)]
    pub figures: TrackFigures,
}

/// The sums over every subscriber and track.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub subscribers: usize,
    /// In the room (without an error), and of those with their subscribe connection up.
    pub joined: usize,
    pub connected: usize,
    /// Subscribers with an error.
    pub failed: usize,
    pub tracks: usize,
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
    /// lost / (packets + lost), in percent.
    pub loss_pct: f64,
    pub freezes: u64,
    pub freeze_ms: u64,
    /// Over the subscribers that received a packet.
    pub time_to_first_packet_ms: Option<Spread>,
}

/// Median, 95th percentile and maximum (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spread {
    pub p50: u64,
    pub p95: u64,
    pub max: u64,
}

impl Spread {
    pub fn of(mut values: Vec<u64>) -> Option<Spread> {
        values.sort_unstable();
        let max = *values.last()?;
        let rank = |p: usize| values[(values.len() * p).div_ceil(100).max(1) - 1];
        Some(Spread { p50: rank(50), p95: rank(95), max })
    }
}

impl Totals {
    pub fn of(subscribers: &[SubscriberReport]) -> Totals {
        let mut t = Totals { subscribers: subscribers.len(), ..Totals::default() };
        for s in subscribers {
            t.joined += usize::from(s.participant_id.is_some() && s.error.is_none());
            t.connected += usize::from(s.connected);
            t.failed += usize::from(s.error.is_some());
            for track in &s.tracks {
                let f = &track.figures;
                t.tracks += 1;
                t.packets += f.packets;
                t.bytes += f.bytes;
                t.lost += f.lost;
                t.freezes += f.freezes;
                t.freeze_ms += f.freeze_ms;
            }
        }
        t.loss_pct = loss_pct(t.lost, t.packets);
        t.time_to_first_packet_ms = Spread::of(subscribers.iter().filter_map(|s| s.time_to_first_packet_ms).collect());
        t
    }

    /// One line for stderr, with the packet rate since the `previous` line (and how long ago):
    /// `12.0 s: 20/20 joined, 20 connected, 0 failed, 41520 packets (3460/s), 0.012% lost, 0 freezes (0 ms)`.
    pub fn summary(&self, elapsed: Duration, previous: Option<(&Totals, Duration)>) -> String {
        let rate = match previous {
            Some((p, interval)) if !interval.is_zero() => {
                format!(" ({:.0}/s)", self.packets.saturating_sub(p.packets) as f64 / interval.as_secs_f64())
            }
            _ => String::new(),
        };
        format!(
            "{:.1} s: {}/{} joined, {} connected, {} failed, {} packets{rate}, {:.3}% lost, {} freezes ({} ms)",
            elapsed.as_secs_f64(),
            self.joined,
            self.subscribers,
            self.connected,
            self.failed,
            self.packets,
            self.loss_pct,
            self.freezes,
            self.freeze_ms,
        )
    }
}

/// Percent of packets lost, rounded to 1/1000 %.
fn loss_pct(lost: u64, received: u64) -> f64 {
    let sent = lost + received;
    if sent == 0 {
        return 0.0;
    }
    (lost as f64 * 100_000.0 / sent as f64).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(kind: TrackKind, packets: u64, lost: u64, freezes: u64) -> TrackReport {
        let figures = TrackFigures {
            packets,
            bytes: packets * 100,
            lost,
            freezes,
            freeze_ms: freezes * 500,
            ..Default::default()
        };
        TrackReport { track_id: format!("{kind:?}"), kind, figures }
    }

    #[test]
    fn totals_add_up() {
        let ok = SubscriberReport {
            id: "load-sub-001".into(),
            participant_id: Some("PA_1".into()),
            connected: true,
            time_to_first_packet_ms: Some(120),
            tracks: vec![track(TrackKind::Audio, 500, 0, 0), track(TrackKind::Video, 1490, 10, 1)],
            ..Default::default()
        };
        let failed = SubscriberReport {
            id: "load-sub-002".into(),
            participant_id: Some("PA_2".into()),
            error: Some("the subscribe connection is failed".into()),
            ..Default::default()
        };
        let t = Totals::of(&[ok, failed]);
        assert_eq!((t.subscribers, t.joined, t.connected, t.failed, t.tracks), (2, 1, 1, 1, 2));
        assert_eq!((t.packets, t.bytes, t.lost, t.freezes, t.freeze_ms), (1990, 199_000, 10, 1, 500));
        assert_eq!(t.loss_pct, 0.5);
        assert_eq!(t.time_to_first_packet_ms, Some(Spread { p50: 120, p95: 120, max: 120 }));
        let line = t.summary(
            Duration::from_secs(10),
            Some((&Totals { packets: 990, ..Totals::default() }, Duration::from_secs(5))),
        );
        assert_eq!(
            line,
            "10.0 s: 1/2 joined, 1 connected, 1 failed, 1990 packets (200/s), 0.500% lost, 1 freezes (500 ms)"
        );
    }

    #[test]
    fn spreads_by_nearest_rank() {
        assert_eq!(Spread::of(vec![]), None);
        assert_eq!(Spread::of((1..=100).rev().collect()), Some(Spread { p50: 50, p95: 95, max: 100 }));
        assert_eq!(Spread::of(vec![7, 3]), Some(Spread { p50: 3, p95: 7, max: 7 }));
    }

    #[test]
    fn the_json_shape() {
        let report = LoadReport {
            room: "big".into(),
            duration_s: 6.0,
            subscribers: vec![SubscriberReport {
                id: "load-sub-001".into(),
                tracks: vec![track(TrackKind::Video, 10, 0, 0)],
                ..Default::default()
            }],
            totals: Totals::default(),
        };
        let v = serde_json::to_value(&report).unwrap();
        let t = &v["subscribers"][0]["tracks"][0];
        assert_eq!(t["kind"], "video");
        for field in ["track_id", "packets", "bytes", "lost", "discarded", "frames", "freezes", "freeze_ms"] {
            assert!(t.get(field).is_some(), "{field} in {t}");
        }
        for field in ["connected", "time_to_first_packet_ms", "error", "participant_id", "joined_ms"] {
            assert!(v["subscribers"][0].get(field).is_some(), "{field}");
        }
        assert_eq!(v["totals"]["loss_pct"], 0.0);
    }
}

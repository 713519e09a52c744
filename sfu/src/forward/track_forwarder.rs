//! The forwarding side of a published track: its simulcast layers (by SSRC, with their
//! measured bitrates and heights) and the fan-out of each packet to its down tracks and the
//! hand-off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use rtc::rtp;

use super::down_track::{DownTrack, PacketMeta};
use super::rate_meter::RateMeter;
use crate::core::keyframe::{VideoCodec, vp8_keyframe_size};
use crate::core::{LayerInfo, is_keyframe};
use crate::sync::{lock, read, write};

/// What the forwarder learnt of the track's layers.
struct TrackState {
    /// SSRC → layer index.
    ssrc_layer: HashMap<u32, usize>,
    /// Layer index → SSRC.
    layer_ssrc: Vec<Option<u32>>,
    meters: Vec<RateMeter>,
    layers: Vec<LayerInfo>,
    /// The hand-off down track's last forwarded packet: (source SSRC, input ts, output ts), to
    /// map the publisher's sender reports into the handed-over stream.
    handoff_sample: Option<(u32, u32, u32)>,
    /// For a track relayed from another node: `layers` are as the origin reports them (only
    /// the layers someone here wants arrive, so they cannot be measured here).
    reported: bool,
}

/// Where a track's packets go besides its down tracks: the relay links to other nodes of the
/// room (see `crate::cascade`). Called for every packet with its layer; must not block.
pub trait RelayTap: Send + Sync {
    fn on_rtp(&self, pkt: &rtp::Packet, layer: usize);
}

/// The forwarding side of a published track. Its packets come from whichever task drove the
/// publisher's connection (a forwarding thread), so it is shared, behind locks.
///
/// Lock order: `downs` or `handoff` (read), then a down track's `state` and, after that is
/// released, its output's (the subscriber connection's `pc`, or the hand-off queue);
/// `handoff`, then `state` (the hand-off sample is noted under the read guard). Otherwise
/// `state` is released before any other lock is taken.
pub struct TrackForwarder {
    codec: Option<VideoCodec>,
    video: bool,
    simulcast_rids: Vec<String>,
    state: Mutex<TrackState>,
    downs: RwLock<Vec<Arc<DownTrack>>>,
    handoff: RwLock<Option<Arc<DownTrack>>>,
    relay: RwLock<Option<Arc<dyn RelayTap>>>,
    /// For a track relayed from another node: its layers as the origin measures them (only
    /// the layers someone here wants arrive, so they cannot be measured here).
    received: AtomicU64,
    /// Counts changes of which layers send: a relay reports them to the other nodes at once.
    activity_changes: AtomicU64,
}

impl TrackForwarder {
    /// A forwarder for a track of this MIME type; `rids` orders simulcast layers low→high
    /// (empty: one layer).
    pub fn new(mime_type: &str, rids: Vec<String>) -> Self {
        let codec = VideoCodec::from_mime(mime_type);
        let n = rids.len().max(1);
        Self {
            codec,
            video: mime_type.to_ascii_lowercase().starts_with("video/"),
            simulcast_rids: rids,
            state: Mutex::new(TrackState {
                ssrc_layer: HashMap::new(),
                layer_ssrc: vec![None; n],
                meters: vec![RateMeter::default(); n],
                layers: vec![LayerInfo::default(); n],
                handoff_sample: None,
                reported: false,
            }),
            downs: RwLock::new(Vec::new()),
            handoff: RwLock::new(None),
            relay: RwLock::new(None),
            received: AtomicU64::new(0),
            activity_changes: AtomicU64::new(0),
        }
    }

    /// The layer a publisher's SSRC carries, once its packets arrived.
    pub fn layer_of_ssrc(&self, ssrc: u32) -> Option<usize> {
        lock(&self.state).ssrc_layer.get(&ssrc).copied()
    }

    /// Layer index of a RID (`q`/`h`/`f` or the order the publisher declared).
    pub fn layer_of_rid(&self, rid: Option<&str>) -> usize {
        let Some(rid) = rid else { return 0 };
        if let Some(i) = self.simulcast_rids.iter().position(|r| r == rid) {
            return i;
        }
        match rid {
            "q" | "l" | "0" => 0,
            "h" | "m" | "1" => 1,
            _ => self.simulcast_rids.len().saturating_sub(1).min(2),
        }
    }

    /// Registers the SSRC of a layer (from the first packet of that layer).
    pub fn set_layer_ssrc(&self, ssrc: u32, layer: usize) {
        let mut st = lock(&self.state);
        let n = st.layers.len();
        let layer = layer.min(n - 1);
        st.ssrc_layer.insert(ssrc, layer);
        st.layer_ssrc[layer] = Some(ssrc);
    }

    /// SSRC of a layer, for keyframe requests.
    pub fn layer_ssrc(&self, layer: usize) -> Option<u32> {
        let st = lock(&self.state);
        st.layer_ssrc.get(layer).copied().flatten().or_else(|| st.layer_ssrc.iter().flatten().next().copied())
    }

    /// Number of layers.
    pub fn layer_count(&self) -> usize {
        lock(&self.state).layers.len()
    }

    /// Current layer measurements.
    pub fn layers(&self) -> Vec<LayerInfo> {
        lock(&self.state).layers.clone()
    }

    /// Adds a subscriber.
    pub fn add_down(&self, d: Arc<DownTrack>) {
        write(&self.downs).push(d);
    }

    /// Removes a subscriber's down track.
    pub fn remove_down(&self, subscriber_id: &str) -> Option<Arc<DownTrack>> {
        let mut downs = write(&self.downs);
        let i = downs.iter().position(|d| d.subscriber_id == subscriber_id)?;
        Some(downs.remove(i))
    }

    /// The down tracks.
    pub fn downs(&self) -> Vec<Arc<DownTrack>> {
        read(&self.downs).clone()
    }

    /// Sets the hand-off down track.
    pub fn set_handoff(&self, d: Option<Arc<DownTrack>>) {
        *write(&self.handoff) = d;
    }

    /// Sets where the packets also go to other nodes.
    pub fn set_relay(&self, tap: Option<Arc<dyn RelayTap>>) {
        *write(&self.relay) = tap;
    }

    /// The layers of a relayed track as its origin reports them (bitrates and heights).
    pub fn set_reported_layers(&self, layers: Vec<LayerInfo>) {
        let mut st = lock(&self.state);
        let n = st.layers.len();
        if layers.len() == n {
            st.layers = layers;
            st.reported = true;
        }
    }

    /// The layer each down track (and the hand-off) would take now and the layer it takes:
    /// what a relayed track must receive.
    pub fn wanted_layers(&self) -> Vec<usize> {
        let layers = self.layers();
        let mut wanted: Vec<usize> = Vec::new();
        let downs = read(&self.downs).clone();
        let handoff = read(&self.handoff).clone();
        for d in downs.iter().chain(handoff.iter()) {
            if !d.wants_media() {
                continue;
            }
            let (current, preferred) = if self.video { d.layers_wanted(&layers) } else { (None, 0) };
            for l in current.into_iter().chain(std::iter::once(preferred)) {
                if !wanted.contains(&l) {
                    wanted.push(l);
                }
            }
        }
        wanted.sort_unstable();
        wanted
    }

    /// Packets received from the publisher.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Maps a publisher sender report's RTP time into the hand-off stream.
    pub fn handoff_sender_report_time(&self, ssrc: u32, rtp_time: u32) -> Option<u32> {
        let (layer, sample) = {
            let st = lock(&self.state);
            let layer = *st.ssrc_layer.get(&ssrc)?;
            let sample = st.handoff_sample.filter(|s| s.0 == ssrc).map(|s| (s.1, s.2));
            (layer, sample)
        };
        let h = read(&self.handoff).clone()?;
        h.map_sender_report(ssrc, layer, rtp_time, sample)
    }

    /// How many times the set of sending layers changed (a layer stopped or started).
    pub fn activity_changes(&self) -> u64 {
        self.activity_changes.load(Ordering::Relaxed)
    }

    /// Forwards one packet from the publisher to every down track and the hand-off. Returns
    /// the layer whose keyframe a down track is waiting for, if any (the last one that asked).
    pub fn on_rtp(&self, pkt: &rtp::Packet, now: Instant) -> Option<usize> {
        self.received.fetch_add(1, Ordering::Relaxed);
        let keyframe = match self.codec {
            Some(c) => is_keyframe(c, &pkt.payload),
            None => false,
        };
        let (layer, layers, layers_changed) = {
            let mut st = lock(&self.state);
            let layer = match st.ssrc_layer.get(&pkt.header.ssrc) {
                Some(&l) => l,
                None => {
                    // Unannounced SSRC: the first free layer.
                    let l = st.layer_ssrc.iter().position(|s| s.is_none()).unwrap_or(0);
                    st.ssrc_layer.insert(pkt.header.ssrc, l);
                    st.layer_ssrc[l] = Some(pkt.header.ssrc);
                    l
                }
            };
            let mut changed = st.meters[layer].add(pkt.payload.len() + 12, pkt.header.timestamp, now);
            if keyframe
                && self.codec == Some(VideoCodec::Vp8)
                && let Some((_, h)) = vp8_keyframe_size(&pkt.payload)
                && st.layers[layer].height != h
            {
                st.layers[layer].height = h;
                changed = true;
            }
            let before: Vec<bool> = st.layers.iter().map(|l| l.bitrate_bps > 0).collect();
            if !st.reported {
                for i in 0..st.layers.len() {
                    st.layers[i].bitrate_bps = st.meters[i].bps(now);
                }
            }
            if st.layers.iter().map(|l| l.bitrate_bps > 0).ne(before) {
                changed = true;
                self.activity_changes.fetch_add(1, Ordering::Relaxed);
            }
            (layer, st.layers.clone(), changed)
        };
        let meta = PacketMeta { video: self.video, layer, keyframe, layers: &layers, layers_changed };
        let mut want = None;
        for d in read(&self.downs).iter() {
            let (k, _) = d.forward(pkt, &meta, now);
            if k {
                want = Some(d.target_layer());
            }
        }
        if let Some(r) = read(&self.relay).as_ref() {
            r.on_rtp(pkt, layer);
        }
        if let Some(h) = read(&self.handoff).as_ref() {
            let (k, sample) = h.forward(pkt, &meta, now);
            if k {
                want = Some(h.target_layer());
            }
            if let Some((i, o)) = sample {
                lock(&self.state).handoff_sample = Some((pkt.header.ssrc, i, o));
            }
        }
        want
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::sync::mpsc;

    use super::*;
    use crate::forward::Output;

    fn vp8(ssrc: u32, seq: u16, ts: u32, key: bool, len: usize) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.version = 2;
        p.header.ssrc = ssrc;
        p.header.sequence_number = seq;
        p.header.timestamp = ts;
        p.header.payload_type = 96;
        let mut payload = vec![0u8; len];
        payload[0] = 0x10;
        payload[1] = if key { 0x00 } else { 0x01 };
        p.payload = Bytes::from(payload);
        p
    }

    /// A VP8 track in three simulcast layers (SSRCs 10, 20, 30) and one subscriber (SSRC
    /// 777, payload type 100) whose packets queue up.
    fn three_layers_one_subscriber() -> (TrackForwarder, Arc<DownTrack>, mpsc::Receiver<rtp::Packet>) {
        let f = TrackForwarder::new("video/VP8", vec!["q".into(), "h".into(), "f".into()]);
        for (l, s) in [(0, 10), (1, 20), (2, 30)] {
            f.set_layer_ssrc(s, l);
        }
        let (tx, rx) = mpsc::channel(10_000);
        let d = Arc::new(DownTrack::new("sub".into(), 777, 100, 90_000, Output::Queue(tx)));
        f.add_down(Arc::clone(&d));
        (f, d, rx)
    }

    #[test]
    fn simulcast_fan_out_switches_at_keyframes_with_continuous_numbers() {
        let (f, d, mut rx) = three_layers_one_subscriber();
        let t0 = Instant::now();
        let mut want = vec![];
        // 2 s of three layers at 30 fps, keyframes every 15 frames, no bandwidth limit.
        for i in 0..60u32 {
            let now = t0 + Duration::from_millis(33 * i as u64);
            for (s, base, len) in [(10u32, 1000u16, 50), (20, 5000, 200), (30, 9000, 800)] {
                let key = i % 15 == 0;
                if let Some(l) = f.on_rtp(&vp8(s, base.wrapping_add(i as u16), i * 3000, key, len), now) {
                    want.push(l);
                }
            }
            if i == 30 {
                // Bandwidth drops (layers are ~15, ~50 and ~195 kbit/s): down to the middle.
                assert_eq!(d.current_layer(), Some(2));
                d.set_bandwidth(100_000);
            }
        }
        let mut out = vec![];
        while let Ok(p) = rx.try_recv() {
            out.push(p);
        }
        assert!(!out.is_empty());
        for w in out.windows(2) {
            assert_eq!(w[1].header.sequence_number, w[0].header.sequence_number.wrapping_add(1));
            assert!(w[1].header.timestamp.wrapping_sub(w[0].header.timestamp) < 0x8000_0000);
        }
        assert!(out.iter().all(|p| p.header.ssrc == 777 && p.header.payload_type == 100));
        assert_eq!(d.current_layer(), Some(1), "bandwidth limited to the middle layer");
        assert!(want.contains(&1), "asked for a keyframe on the new target");
    }

    #[test]
    fn a_layer_the_publisher_stops_is_left_within_half_a_second() {
        let (f, d, mut rx) = three_layers_one_subscriber();
        let t0 = Instant::now();
        // Keyframes every 2 s, and on request (the next frame of the layer asked for).
        let mut asked = [false; 3];
        let mut forwarded_at = vec![];
        for i in 0..150u32 {
            let now = t0 + Duration::from_millis(33 * i as u64);
            for (l, (s, base, len)) in [(10u32, 1000u16, 50), (20, 5000, 200), (30, 9000, 800)].into_iter().enumerate()
            {
                // The publisher stops its top layer after 2 s (as Chromium does when short of
                // CPU or bandwidth).
                if l == 2 && i >= 60 {
                    continue;
                }
                let key = i % 60 == 0 || std::mem::take(&mut asked[l]);
                if let Some(want) = f.on_rtp(&vp8(s, base.wrapping_add(i as u16), i * 3000, key, len), now) {
                    asked[want] = true;
                }
            }
            while rx.try_recv().is_ok() {
                forwarded_at.push(now);
            }
        }
        assert_eq!(d.current_layer(), Some(1), "moved down to the highest layer still sending");
        let longest = forwarded_at.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
        assert!(longest < Duration::from_millis(550), "the subscriber got nothing for {longest:?}");
    }
}

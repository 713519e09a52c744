//! The per-packet forwarding path: a published track fans its packets out to down tracks
//! (one per subscriber, plus one for the hand-off). No sockets here: a down track hands its
//! rewritten packets to a bounded queue (`try_send`), so a slow subscriber loses packets
//! instead of slowing the publisher or the other subscribers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rtc::rtp;
use tokio::sync::mpsc;

use crate::core::keyframe::{VideoCodec, vp8_keyframe_size};
use crate::core::{LayerInfo, LayerSelector, SelectorAction, StreamRewriter, is_keyframe};

/// PT value meaning "not negotiated yet": packets are held back.
pub(crate) const PT_UNKNOWN: u8 = 0xff;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a down track's packets go.
pub enum Output {
    /// A bounded queue drained by a writer task (tests, benchmarks).
    Queue(mpsc::Sender<rtp::Packet>),
    /// A callback given each packet and when the forwarder got it (a subscriber's
    /// connection, the hand-off); returns false when the packet was dropped. Must not block.
    Callback(Box<dyn Fn(rtp::Packet, Instant) -> bool + Send + Sync>),
}

/// Per-layer bitrate measurement over one-second windows.
#[derive(Debug, Clone, Default)]
struct RateMeter {
    window_start: Option<Instant>,
    bytes: u64,
    last_bps: u64,
    last_packet: Option<Instant>,
}

impl RateMeter {
    fn add(&mut self, bytes: usize, now: Instant) -> bool {
        self.last_packet = Some(now);
        let start = *self.window_start.get_or_insert(now);
        self.bytes += bytes as u64;
        let el = now.saturating_duration_since(start);
        if el >= Duration::from_millis(500) {
            let bps = self.bytes * 8 * 1000 / el.as_millis().max(1) as u64;
            // First window: take it; then smooth.
            self.last_bps = if self.last_bps == 0 { bps } else { (self.last_bps + bps) / 2 };
            self.bytes = 0;
            self.window_start = Some(now);
            return true;
        }
        if self.last_bps == 0 {
            // Until the first window closes, report something nonzero so the layer counts
            // as active.
            self.last_bps = 1;
        }
        false
    }

    fn bps(&self, now: Instant) -> u64 {
        match self.last_packet {
            Some(t) if now.saturating_duration_since(t) < Duration::from_secs(2) => self.last_bps,
            _ => 0,
        }
    }
}

/// The forwarding state of one down track.
struct DownState {
    selector: LayerSelector,
    rewriter: StreamRewriter,
    last_update: Option<Instant>,
    /// When a keyframe on the target layer was last asked for, while a switch waits for one.
    keyframe_asked: Option<Instant>,
}

/// One subscriber's copy of a published track.
pub struct DownTrack {
    pub(crate) subscriber_id: String,
    pub(crate) ssrc: u32,
    pub(crate) payload_type: AtomicU8,
    pub(crate) paused: AtomicBool,
    /// Subscriber's bandwidth for this track in bit/s (0: unknown).
    pub(crate) bandwidth: AtomicU64,
    /// Requested maximum height (0: no limit).
    pub(crate) max_height: AtomicU64,
    state: Mutex<DownState>,
    output: Output,
    /// Packets dropped because the output queue was full.
    pub(crate) dropped: AtomicU64,
    pub(crate) forwarded: AtomicU64,
    /// Payload bytes forwarded (RTP payloads, without headers).
    forwarded_bytes: AtomicU64,
}

impl DownTrack {
    /// A down track writing to `output` with this SSRC and payload type.
    pub fn new(subscriber_id: String, ssrc: u32, payload_type: u8, clock_rate: u32, output: Output) -> Self {
        Self {
            subscriber_id,
            ssrc,
            payload_type: AtomicU8::new(payload_type),
            paused: AtomicBool::new(false),
            bandwidth: AtomicU64::new(0),
            max_height: AtomicU64::new(0),
            state: Mutex::new(DownState {
                selector: LayerSelector::new(),
                rewriter: StreamRewriter::new(clock_rate),
                last_update: None,
                keyframe_asked: None,
            }),
            output,
            dropped: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            forwarded_bytes: AtomicU64::new(0),
        }
    }

    /// The layer currently forwarded.
    pub fn current_layer(&self) -> Option<usize> {
        lock(&self.state).selector.current()
    }

    /// Packets forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// RTP payload bytes forwarded so far.
    pub fn forwarded_bytes(&self) -> u64 {
        self.forwarded_bytes.load(Ordering::Relaxed)
    }

    /// Packets dropped because the subscriber's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Sets the subscriber's bandwidth for this track (bit/s, 0 = unknown).
    pub fn set_bandwidth(&self, bps: u64) {
        // Re-evaluate the layer at the next packet only when it changed (REMB repeats it).
        if self.bandwidth.swap(bps, Ordering::Relaxed) != bps {
            lock(&self.state).last_update = None;
        }
    }

    /// Sets the requested maximum height (0 = no limit).
    pub fn set_max_height(&self, h: u32) {
        self.max_height.store(h as u64, Ordering::Relaxed);
        lock(&self.state).last_update = None;
    }

    /// Maps an RTP timestamp of `src_ssrc` into this down track's space, if that source is the
    /// one forwarded now.
    pub(crate) fn map_sender_report(
        &self,
        src_ssrc: u32,
        layer: usize,
        rtp_time: u32,
        sample: Option<(u32, u32)>,
    ) -> Option<u32> {
        let st = lock(&self.state);
        // Audio never goes through the layer selector (its `current` stays `None`); video
        // reports count only for the layer forwarded now.
        if st.selector.current().is_some_and(|current| current != layer) {
            return None;
        }
        let _ = src_ssrc;
        // `sample` is (input ts, output ts) of the last forwarded packet of that source.
        let (in_ts, out_ts) = sample?;
        Some(out_ts.wrapping_add(rtp_time.wrapping_sub(in_ts)))
    }

    /// Forwards one packet. Returns true when this down track needs a keyframe on its target
    /// layer (the caller requests one from the publisher, rate limited).
    fn forward(&self, pkt: &rtp::Packet, meta: &PacketMeta<'_>, now: Instant) -> (bool, Option<(u32, u32)>) {
        if self.paused.load(Ordering::Relaxed) {
            return (false, None);
        }
        let mut st = lock(&self.state);
        let mut want_keyframe = false;
        if meta.video {
            let refresh = st.last_update.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_millis(250));
            if refresh || meta.layers_changed {
                st.last_update = Some(now);
                let bw = self.bandwidth.load(Ordering::Relaxed);
                st.selector.set_bandwidth((bw > 0).then_some(bw));
                let h = self.max_height.load(Ordering::Relaxed);
                st.selector.set_max_height((h > 0).then_some(h as u32));
                if st.selector.update(meta.layers) {
                    want_keyframe = true;
                }
            }
            // A switch between layers waits for the target's keyframe: ask again each second
            // (the first request may have been rate limited or lost).
            if st.selector.current().is_some() && st.selector.waiting_for_keyframe() {
                if want_keyframe
                    || st.keyframe_asked.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
                {
                    want_keyframe = true;
                    st.keyframe_asked = Some(now);
                }
            } else {
                st.keyframe_asked = None;
            }
            match st.selector.on_packet(meta.layer, meta.keyframe) {
                SelectorAction::Drop => {
                    let waiting = st.selector.waiting_for_keyframe();
                    return (
                        want_keyframe
                            || (waiting && meta.layer == st.selector.target() && st.selector.current().is_none()),
                        None,
                    );
                }
                SelectorAction::Forward { .. } => {}
            }
        }
        let Some(out) = st.rewriter.rewrite(pkt.header.ssrc, pkt.header.sequence_number, pkt.header.timestamp, now)
        else {
            return (want_keyframe, None);
        };
        drop(st);
        let pt = self.payload_type.load(Ordering::Relaxed);
        if pt == PT_UNKNOWN {
            return (want_keyframe, None);
        }
        let mut p = rtp::Packet { header: pkt.header.clone(), payload: pkt.payload.clone() };
        p.header.ssrc = self.ssrc;
        p.header.sequence_number = out.seq;
        p.header.timestamp = out.ts;
        p.header.payload_type = pt;
        p.header.extension = false;
        p.header.extension_profile = 0;
        p.header.extensions.clear();
        p.header.extensions_padding = 0;
        let payload = p.payload.len() as u64;
        let sent = match &self.output {
            Output::Queue(tx) => tx.try_send(p).is_ok(),
            Output::Callback(f) => f(p, now),
        };
        if sent {
            self.forwarded.fetch_add(1, Ordering::Relaxed);
            self.forwarded_bytes.fetch_add(payload, Ordering::Relaxed);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        (want_keyframe, Some((pkt.header.timestamp, out.ts)))
    }
}

struct PacketMeta<'a> {
    video: bool,
    layer: usize,
    keyframe: bool,
    layers: &'a [LayerInfo],
    layers_changed: bool,
}

struct TrackState {
    /// SSRC → layer index.
    ssrc_layer: HashMap<u32, usize>,
    /// Layer index → SSRC.
    layer_ssrc: Vec<Option<u32>>,
    meters: Vec<RateMeter>,
    layers: Vec<LayerInfo>,
    /// Last (input ts, output ts) per down track id for sender-report mapping: kept only for
    /// the hand-off down track.
    handoff_sample: Option<(u32, u32, u32)>,
}

/// The forwarding side of a published track, shared by its receive tasks.
pub struct TrackForwarder {
    codec: Option<VideoCodec>,
    video: bool,
    simulcast_rids: Vec<String>,
    state: Mutex<TrackState>,
    downs: RwLock<Vec<Arc<DownTrack>>>,
    handoff: RwLock<Option<Arc<DownTrack>>>,
    received: AtomicU64,
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
            }),
            downs: RwLock::new(Vec::new()),
            handoff: RwLock::new(None),
            received: AtomicU64::new(0),
        }
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
        self.downs.write().unwrap_or_else(|e| e.into_inner()).push(d);
    }

    /// Removes a subscriber's down track.
    pub fn remove_down(&self, subscriber_id: &str) -> Option<Arc<DownTrack>> {
        let mut downs = self.downs.write().unwrap_or_else(|e| e.into_inner());
        let i = downs.iter().position(|d| d.subscriber_id == subscriber_id)?;
        Some(downs.remove(i))
    }

    /// The down tracks.
    pub fn downs(&self) -> Vec<Arc<DownTrack>> {
        self.downs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the hand-off down track.
    pub fn set_handoff(&self, d: Option<Arc<DownTrack>>) {
        *self.handoff.write().unwrap_or_else(|e| e.into_inner()) = d;
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
        let h = self.handoff.read().unwrap_or_else(|e| e.into_inner()).clone()?;
        h.map_sender_report(ssrc, layer, rtp_time, sample)
    }

    /// Forwards one packet from the publisher to every down track. Returns the layers whose
    /// keyframe some down track is waiting for.
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
            let mut changed = st.meters[layer].add(pkt.payload.len() + 12, now);
            if keyframe
                && self.codec == Some(VideoCodec::Vp8)
                && let Some((_, h)) = vp8_keyframe_size(&pkt.payload)
                && st.layers[layer].height != h
            {
                st.layers[layer].height = h;
                changed = true;
            }
            let before: Vec<bool> = st.layers.iter().map(|l| l.bitrate_bps > 0).collect();
            for i in 0..st.layers.len() {
                st.layers[i].bitrate_bps = st.meters[i].bps(now);
            }
            changed |= st.layers.iter().map(|l| l.bitrate_bps > 0).ne(before);
            (layer, st.layers.clone(), changed)
        };
        let meta = PacketMeta { video: self.video, layer, keyframe, layers: &layers, layers_changed };
        let mut want = None;
        for d in self.downs.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let (k, _) = d.forward(pkt, &meta, now);
            if k {
                want = Some(lock(&d.state).selector.target());
            }
        }
        if let Some(h) = self.handoff.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let (k, sample) = h.forward(pkt, &meta, now);
            if k {
                want = Some(lock(&h.state).selector.target());
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
    use super::*;
    use bytes::Bytes;

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

    #[test]
    fn simulcast_fan_out_switches_at_keyframes_with_continuous_numbers() {
        let f = TrackForwarder::new("video/VP8", vec!["q".into(), "h".into(), "f".into()]);
        for (l, s) in [(0, 10), (1, 20), (2, 30)] {
            f.set_layer_ssrc(s, l);
        }
        let (tx, mut rx) = mpsc::channel(10_000);
        let d = Arc::new(DownTrack::new("sub".into(), 777, 100, 90_000, Output::Queue(tx)));
        f.add_down(Arc::clone(&d));
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
}

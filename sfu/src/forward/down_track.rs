//! One subscriber's copy of a published track (or the hand-off's): which layer it gets, the
//! rewriting into its own stream, and what it forwarded and dropped.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::rtp;

use super::{Output, PT_UNKNOWN};
use crate::core::{LayerInfo, LayerSelector, SelectorAction, StreamRewriter};
use crate::sync::lock;

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
    /// Whether its consumer wants media now (the hand-off's: whether a program runs); `None`:
    /// always.
    wanted: Option<Box<dyn Fn() -> bool + Send + Sync>>,
    /// Packets its output refused (a full queue, a connection not ready to send).
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
            wanted: None,
            dropped: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            forwarded_bytes: AtomicU64::new(0),
        }
    }

    /// Tells whether its consumer wants media now (see `DownTrack::wants_media`): relayed
    /// tracks are only pulled from their node while someone wants them.
    pub fn with_wanted(mut self, wanted: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.wanted = Some(Box::new(wanted));
        self
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

    /// Packets its output refused so far (a full queue, a connection not ready to send).
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

    /// Whether it takes media now (not paused; the hand-off's gate is checked by its output).
    pub(super) fn wants_media(&self) -> bool {
        !self.paused.load(Ordering::Relaxed) && self.wanted.as_ref().is_none_or(|w| w())
    }

    /// The layer it forwards now, and the one it would choose among `layers` with its
    /// bandwidth and size limits (without changing its state).
    pub(super) fn layers_wanted(&self, layers: &[LayerInfo]) -> (Option<usize>, usize) {
        let st = lock(&self.state);
        let mut choice = st.selector.clone();
        drop(st);
        let bw = self.bandwidth.load(Ordering::Relaxed);
        choice.set_bandwidth((bw > 0).then_some(bw));
        let h = self.max_height.load(Ordering::Relaxed);
        choice.set_max_height((h > 0).then_some(h as u32));
        let current = choice.current();
        choice.update(layers);
        (current, choice.target())
    }

    /// The layer this down track switches to (or stays on).
    pub(super) fn target_layer(&self) -> usize {
        lock(&self.state).selector.target()
    }

    /// Forwards one packet. Returns whether this down track needs a keyframe on its target
    /// layer (the caller requests one from the publisher, rate limited), and, when the packet
    /// went on, its (input, output) RTP timestamps.
    pub(super) fn forward(&self, pkt: &rtp::Packet, meta: &PacketMeta<'_>, now: Instant) -> (bool, Option<(u32, u32)>) {
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

/// What the forwarder knows about a packet, the same for every down track.
pub(super) struct PacketMeta<'a> {
    pub(super) video: bool,
    pub(super) layer: usize,
    pub(super) keyframe: bool,
    pub(super) layers: &'a [LayerInfo],
    pub(super) layers_changed: bool,
}

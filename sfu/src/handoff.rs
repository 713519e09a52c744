//! In-process hand-off from the SFU to a media consumer (the compositor), decoupled so a busy
//! consumer never slows forwarding: events go through a bounded queue to a dedicated thread;
//! when the queue is full, RTP packets are dropped (and counted), control events never are.
//!
//! There are several such lanes (a queue and its thread), one per core, and each room's events
//! all go through one of them (chosen by the room's name), in order: forwarding threads handing
//! over different rooms' packets never share a lock, and one room's busy program delays only
//! the rooms of its lane.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::mpsc;

use crate::sync::{lock, wait};

/// What a published track is: who, what kind, which RTP parameters the consumer receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Room name.
    pub room: String,
    /// Participant id, unique in the room.
    pub participant_id: String,
    /// Participant display name.
    pub participant_name: String,
    /// The application's identity for the participant (from its token), if it has one.
    pub participant_identity: Option<String>,
    /// Track id, unique in the room.
    pub track_id: String,
    /// `audio`, `camera` or `screen`.
    pub source: TrackSource,
    /// MIME type, e.g. `video/VP8`, `video/H264`, `audio/opus`.
    pub mime_type: String,
    /// Payload type of the packets handed over.
    pub payload_type: u8,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Audio channels (0 for video).
    pub channels: u16,
    /// fmtp line of the codec.
    pub fmtp: String,
    /// SSRC of the packets handed over (stable for the track's life; simulcast layers are
    /// rewritten into this one stream with continuous sequence numbers and timestamps).
    pub ssrc: u32,
}

/// Where a track comes from on the publisher's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackSource {
    /// Microphone (or any audio).
    Audio,
    /// Camera video.
    Camera,
    /// Screen share.
    Screen,
}

/// An RTCP sender report of a handed-over track, already in the handed-over SSRC/timestamp
/// space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReportInfo {
    /// SSRC (the [`TrackInfo::ssrc`]).
    pub ssrc: u32,
    /// 64-bit NTP time.
    pub ntp_time: u64,
    /// RTP time matching `ntp_time`.
    pub rtp_time: u32,
    /// Packets sent by the publisher.
    pub packet_count: u32,
    /// Payload octets sent by the publisher.
    pub octet_count: u32,
}

/// The way back: ask the publisher of a track for a keyframe (rate limited by the SFU), and
/// say whether its packets are wanted at all.
#[derive(Clone, Debug)]
pub struct KeyframeRequester {
    pub(crate) tx: mpsc::UnboundedSender<()>,
    pub(crate) gate: MediaGate,
}

impl KeyframeRequester {
    /// Requests a keyframe; never blocks. Returns false once the track is gone.
    pub fn request(&self) -> bool {
        self.tx.send(()).is_ok()
    }

    /// Whether the track's RTP is handed over (open when published).
    pub fn media(&self) -> &MediaGate {
        &self.gate
    }
}

/// Whether a track's RTP packets go to the hand-off. Closed, the SFU does not even serialize
/// them: a room without a program costs its publishers' packets nothing beyond forwarding.
/// Sender reports and track events pass either way.
#[derive(Clone, Debug)]
pub struct MediaGate(Arc<AtomicBool>);

impl Default for MediaGate {
    fn default() -> Self {
        MediaGate(Arc::new(AtomicBool::new(true)))
    }
}

impl MediaGate {
    pub fn open(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn close(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
    pub fn is_open(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Implemented by the binary to receive the room's media. Called on the hand-off threads:
/// each room's calls on one thread, in order; different rooms' calls may run at once (one
/// thread per core, at most 8). A slow implementation only loses RTP packets, it never slows
/// the SFU.
pub trait MediaHandoff: Send + Sync + 'static {
    /// A track was published (called before its first packet).
    fn track_published(&self, track: &TrackInfo, keyframes: KeyframeRequester);
    /// A track ended (participant left, unpublished, or the connection failed).
    fn track_unpublished(&self, track: &TrackInfo);
    /// A track ended because its publisher was lost without leaving (the node hosting it
    /// died): it may well come back. By default the same as [`Self::track_unpublished`].
    fn track_lost(&self, track: &TrackInfo) {
        self.track_unpublished(track);
    }
    /// One RTP packet of a track (serialized, ready for a depayloader).
    fn rtp(&self, track_id: &str, packet: &[u8]);
    /// An RTCP sender report of a track (for lip sync).
    fn sender_report(&self, track_id: &str, report: &SenderReportInfo);
    /// The room's active speaker changed (`None`: nobody).
    fn active_speaker(&self, _room: &str, _participant_id: Option<&str>) {}
}

pub(crate) enum HandoffEvent {
    Published(TrackInfo, KeyframeRequester),
    Unpublished(TrackInfo),
    Lost(TrackInfo),
    Rtp(Arc<str>, Vec<u8>),
    SenderReport(Arc<str>, SenderReportInfo),
    Speaker(String, Option<String>),
}

struct Queue {
    items: VecDeque<HandoffEvent>,
    media: usize,
}

/// The lanes in front of a [`MediaHandoff`]: each room's events go through one of them.
pub(crate) struct HandoffDispatcher {
    lanes: Vec<Arc<HandoffLane>>,
}

impl HandoffDispatcher {
    /// `lanes` queues (and threads) of `capacity` media events each, in front of `sink`.
    pub(crate) fn start(sink: Arc<dyn MediaHandoff>, capacity: usize, lanes: usize) -> Arc<Self> {
        let lanes = (0..lanes.max(1)).map(|i| HandoffLane::start(Arc::clone(&sink), capacity, i)).collect();
        Arc::new(Self { lanes })
    }

    /// The lane of `room`'s events.
    pub(crate) fn lane(&self, room: &str) -> &Arc<HandoffLane> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        room.hash(&mut h);
        &self.lanes[(h.finish() % self.lanes.len() as u64) as usize]
    }

    /// Enqueues one of `room`'s events without blocking (see [`HandoffLane::push`]).
    pub(crate) fn push(&self, room: &str, ev: HandoffEvent) {
        self.lane(room).push(ev);
    }

    /// RTP packets and reports dropped because the consumer was behind.
    pub(crate) fn dropped(&self) -> u64 {
        self.lanes.iter().map(|l| l.dropped.load(Ordering::Relaxed)).sum()
    }

    /// Stops the threads once their queues are drained.
    pub(crate) fn close(&self) {
        for l in &self.lanes {
            l.close();
        }
    }
}

/// One bounded, non-blocking queue and the thread that empties it into the [`MediaHandoff`].
pub(crate) struct HandoffLane {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    dropped: AtomicU64,
    closed: AtomicBool,
}

impl HandoffLane {
    fn start(sink: Arc<dyn MediaHandoff>, capacity: usize, index: usize) -> Arc<Self> {
        let d = Arc::new(Self {
            queue: Mutex::new(Queue { items: VecDeque::new(), media: 0 }),
            ready: Condvar::new(),
            capacity,
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let worker = Arc::clone(&d);
        let spawned = std::thread::Builder::new().name(format!("sfu-handoff-{index}")).spawn(move || {
            worker.run(sink);
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start a hand-off thread: {e}");
        }
        d
    }

    fn run(&self, sink: Arc<dyn MediaHandoff>) {
        loop {
            let ev = {
                let mut q = lock(&self.queue);
                loop {
                    if let Some(ev) = q.items.pop_front() {
                        if matches!(ev, HandoffEvent::Rtp(..) | HandoffEvent::SenderReport(..)) {
                            q.media -= 1;
                        }
                        break ev;
                    }
                    if self.closed.load(Ordering::Acquire) {
                        return;
                    }
                    q = wait(&self.ready, q);
                }
            };
            match ev {
                HandoffEvent::Published(t, k) => sink.track_published(&t, k),
                HandoffEvent::Unpublished(t) => sink.track_unpublished(&t),
                HandoffEvent::Lost(t) => sink.track_lost(&t),
                HandoffEvent::Rtp(id, p) => sink.rtp(&id, &p),
                HandoffEvent::SenderReport(id, sr) => sink.sender_report(&id, &sr),
                HandoffEvent::Speaker(room, p) => sink.active_speaker(&room, p.as_deref()),
            }
        }
    }

    /// Enqueues without blocking; media beyond the capacity is dropped.
    pub(crate) fn push(&self, ev: HandoffEvent) {
        let media = matches!(ev, HandoffEvent::Rtp(..) | HandoffEvent::SenderReport(..));
        let mut q = lock(&self.queue);
        if media {
            if q.media >= self.capacity {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            q.media += 1;
        }
        q.items.push_back(ev);
        drop(q);
        self.ready.notify_one();
    }
}

impl HandoffLane {
    /// Stops the thread once the queue is drained.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_all();
    }
}

//! A published track: its forwarder (every subscriber's copy is made there), the publisher's
//! receivers keyframe requests go to, and its hand-off to the room's program.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use tokio::sync::mpsc;

use crate::core::KeyframeRequestLimiter;
use crate::forward::TrackForwarder;
use crate::handoff::{HandoffEvent, SenderReportInfo, TrackInfo, TrackSource};
use crate::local_publisher::LocalSource;
use crate::room::Room;
use crate::signal::TrackPublished;
use crate::sync::lock;
use crate::transport::Connection;

/// A published track.
///
/// Lock order: `receivers` and `handoff_info` are leaves, each held for one statement.
pub struct PublishedTrack {
    /// Server track id.
    pub id: String,
    /// Owner.
    pub participant_id: String,
    /// What it is.
    pub source: TrackSource,
    /// Codec as negotiated with the publisher.
    pub codec: RTCRtpCodec,
    /// Publisher's payload type.
    pub payload_type: u8,
    /// The forwarding state.
    pub forwarder: TrackForwarder,
    pub(crate) muted: AtomicBool,
    /// Where its layers are received (keyframe requests go there).
    pub(crate) receivers: Mutex<Vec<(Weak<Connection>, RTCRtpReceiverId)>>,
    pub(crate) keyframe_tx: mpsc::UnboundedSender<usize>,
    pub(crate) handoff_info: Mutex<Option<TrackInfo>>,
    /// For another node's track: the link its layers arrive on (keyframe requests go there).
    pub(crate) relayed_from: Option<crate::cascade::RelaySource>,
    /// For a video track made in this process: where its keyframe requests go (see
    /// `local_publisher.rs`).
    pub(crate) local: Option<Arc<LocalSource>>,
    /// Published by a participant made in this process (the room's program), here or on
    /// another node: never handed off (the program must not composite itself), and
    /// subscribed to only by those who name its participant.
    pub(crate) in_process: bool,
}

impl PublishedTrack {
    pub(crate) fn info(&self) -> TrackPublished {
        TrackPublished {
            track_id: self.id.clone(),
            participant_id: self.participant_id.clone(),
            source: self.source,
            mime_type: self.codec.mime_type.clone(),
            layers: self.forwarder.layer_count(),
            muted: self.muted.load(Ordering::Relaxed),
            stream_id: self.id.clone(),
        }
    }

    /// Whether the publisher has muted it.
    pub fn is_muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    /// Asks the publisher for a keyframe of `layer` (rate limited).
    pub fn request_keyframe(&self, layer: usize) {
        let _ = self.keyframe_tx.send(layer);
    }
}

impl PublishedTrack {
    pub(crate) fn forwarder_is_video(&self) -> bool {
        self.codec.mime_type.to_ascii_lowercase().starts_with("video/")
    }

    pub(crate) fn on_sender_report(&self, sr: &SenderReport, room: &Room) {
        let Some(h) = room.sfu.upgrade().and_then(|s| s.handoff.clone()) else { return };
        let Some(info) = lock(&self.handoff_info).clone() else { return };
        let Some(rtp_time) = self.forwarder.handoff_sender_report_time(sr.ssrc, sr.rtp_time) else { return };
        h.push(
            &room.name,
            HandoffEvent::SenderReport(
                Arc::from(self.id.as_str()),
                SenderReportInfo {
                    ssrc: info.ssrc,
                    ntp_time: sr.ntp_time,
                    rtp_time,
                    packet_count: sr.packet_count,
                    octet_count: sr.octet_count,
                },
            ),
        );
    }
}

/// Sends rate-limited PLIs to the publisher for the requested layers.
pub(crate) fn spawn_keyframe_requests(
    track: Weak<PublishedTrack>,
    mut rx: mpsc::UnboundedReceiver<usize>,
    interval: Duration,
) {
    tokio::spawn(async move {
        let mut limiters: HashMap<usize, KeyframeRequestLimiter> = HashMap::new();
        while let Some(layer) = rx.recv().await {
            let Some(t) = track.upgrade() else { return };
            let receiver = lock(&t.receivers).iter().find_map(|(c, id)| c.upgrade().map(|c| (c, *id)));
            // The connection's clock (or the transport's, for a track made in this process):
            // the wall clock, or a test network's.
            let now = match (&receiver, &t.local) {
                (Some((c, _)), _) => c.now(),
                (None, Some(local)) => local.now(),
                (None, None) => Instant::now(),
            };
            if !limiters.entry(layer).or_insert_with(|| KeyframeRequestLimiter::new(interval)).allow(now) {
                continue;
            }
            let Some(ssrc) = t.forwarder.layer_ssrc(layer) else { continue };
            if let Some(source) = &t.relayed_from {
                source.request_keyframe(ssrc);
            } else if let Some(local) = &t.local {
                local.request_keyframe();
            } else if let Some((conn, id)) = receiver {
                conn.write_receiver_rtcp(
                    id,
                    vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc })],
                );
            }
        }
    });
}

/// Our media engine's payload type for a MIME type (used for the hand-off stream).
pub(crate) fn default_pt(mime: &str) -> u8 {
    match mime.to_ascii_lowercase().as_str() {
        "audio/opus" => 111,
        "video/vp8" => 96,
        "video/vp9" => 98,
        "video/h264" => 102,
        "video/av1" => 41,
        _ => 96,
    }
}

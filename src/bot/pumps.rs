//! The media tasks of a session: GStreamer's packets out on our tracks, keyframe requests
//! back to the encoder, and the subscribed tracks received and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::shared::marshal::Unmarshal;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::bot::media::{PacketRx, SyntheticMedia};
use crate::bot::pacer::{self, Pacer};

/// Packet counters shared with the pump tasks.
#[derive(Default)]
pub struct Counters {
    pub video: AtomicU64,
    pub audio: AtomicU64,
    pub received: AtomicU64,
    pub keyframe_requests: AtomicU64,
}

/// Sends GStreamer's RTP packets on `track` with our SSRC and the negotiated payload type;
/// audio (the track with a `level`) carries its RFC 6464 audio level; a `pacer` spreads the
/// packets over time.
pub async fn pump(
    track: Arc<webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP>,
    mut rx: PacketRx,
    ssrc: u32,
    payload_type: u8,
    level: Option<AudioLevelExtension>,
    mut pacer: Option<Pacer>,
    counters: Arc<Counters>,
) {
    while let Some(bytes) = rx.recv().await {
        if let Some(p) = &mut pacer {
            let now = std::time::Instant::now();
            let due = p.due(bytes.len(), now);
            if due > now + pacer::SLACK {
                tokio::time::sleep(due - now).await;
            }
        }
        let mut buf = &bytes[..];
        let Ok(mut packet) = rtc::rtp::Packet::unmarshal(&mut buf) else { continue };
        packet.header.ssrc = ssrc;
        packet.header.payload_type = payload_type;
        let sent = match &level {
            Some(ext) => track.write_rtp_with_extensions(packet, &[HeaderExtension::AudioLevel(*ext)]).await,
            None => track.write_rtp(packet).await,
        };
        match sent {
            Ok(()) => {
                let counter = if level.is_some() { &counters.audio } else { &counters.video };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(%e, "packet not sent"),
        }
    }
}

/// Turns the server's PLI/FIR about our video into keyframes.
pub async fn keyframes(
    track: Arc<webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP>,
    media: Arc<SyntheticMedia>,
    counters: Arc<Counters>,
) {
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else { continue };
        let wants_keyframe = packets.iter().any(|p| {
            let any = p.as_any();
            any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
        });
        if wants_keyframe {
            counters.keyframe_requests.fetch_add(1, Ordering::Relaxed);
            media.request_keyframe();
        }
    }
}

/// Receives (and counts) a subscribed track, as a browser's decoder would consume it.
pub async fn drain(track: Arc<dyn TrackRemote>, counters: Arc<Counters>) {
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(_) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

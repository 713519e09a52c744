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

use crate::bot::BotError;
use crate::bot::media::{MediaOptions, PacketRx, SyntheticMedia};
use crate::bot::pacer::{self, Pacer};
use crate::bot::packet_log::{Kind, PacketLog};
use crate::bot::peer::LocalTrack;

/// Packet counters shared with the pump tasks, and the `--packet-log` if there is one.
#[derive(Default)]
pub struct Counters {
    pub video: AtomicU64,
    pub audio: AtomicU64,
    pub received: AtomicU64,
    pub keyframe_requests: AtomicU64,
    pub log: Option<PacketLog>,
}

/// Starts publishing on a connected publish connection, the same way whatever the server (a
/// Tessera room or a Janus VideoRoom): the video pump (paced with `--pace-factor`) and its
/// keyframe responder, then the audio pump with its RFC 6464 audio level. Returns the tasks.
pub async fn start_publishing(
    opts: &MediaOptions,
    media: &Arc<SyntheticMedia>,
    video: Option<(&LocalTrack, PacketRx)>,
    audio: (&LocalTrack, PacketRx),
    counters: &Arc<Counters>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, BotError> {
    let mut tasks = Vec::new();
    if let Some((v, rx)) = video {
        let pt = v.payload_type().await?;
        let pacer = opts.pace_factor.map(|f| Pacer::new(opts.bitrate_kbps, f));
        tasks.push(tokio::spawn(pump(Arc::clone(&v.track), rx, v.ssrc, pt, None, pacer, Arc::clone(counters))));
        tasks.push(tokio::spawn(keyframes(Arc::clone(&v.track), Arc::clone(media), Arc::clone(counters))));
        media.request_keyframe();
    }
    // RFC 6464: a steady tone is "voice" at -10 dBov; silence is 127.
    let level = opts.tone.map_or(127, |_| 10);
    let ext = AudioLevelExtension { level, voice: level < 127 };
    let (a, rx) = audio;
    let pt = a.payload_type().await?;
    tasks.push(tokio::spawn(pump(Arc::clone(&a.track), rx, a.ssrc, pt, Some(ext), None, Arc::clone(counters))));
    Ok(tasks)
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
        if let Some(log) = &counters.log {
            log.record(if level.is_some() { Kind::Audio } else { Kind::Video }, &packet.payload);
        }
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
    let kind = match track.kind().await {
        rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video => Kind::Video,
        _ => Kind::Audio,
    };
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
                if let Some(log) = &counters.log {
                    log.record(kind, &packet.payload);
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

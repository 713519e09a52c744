//! What a test client publishes: its tracks' negotiation (offer, the SFU's answer, trickled
//! candidates) and their packets, paced and sent through its publish connection.

use std::time::Instant;

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};

use super::Client;
use super::peer::Peer;
use crate::codecs::codec_list;
use crate::harness::media::{Media, Pace, Stream, next_packet};
use crate::peer::AUDIO_LEVEL_URI;
use crate::signal::{Candidate, Target, TrackDecl};
use crate::sync::random_u32;

const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// A track the client publishes: its sender, streams (one per layer) and negotiated numbers.
pub(super) struct Outgoing {
    media: Media,
    sender: RTCRtpSenderId,
    streams: Vec<Stream>,
    pace: Pace,
    pt: Option<u8>,
    /// Extension ids: MID (with the m-section's mid), RID, audio level.
    mid: Option<(u8, String)>,
    rid: Option<u8>,
    level: Option<u8>,
}

impl Client {
    /// Adds `media` to its publish connection and negotiates it (offer, the SFU's answer).
    pub(crate) async fn publish(&mut self, media: Vec<Media>, now: Instant) {
        let base = self.base;
        let gathered = !self.trickle;
        let new = self.publish.is_none();
        let peer = self.publish.get_or_insert_with(|| Peer::new(base, now, publisher_codecs(), gathered));
        let mut decls = Vec::new();
        for m in media {
            let kind = if m.is_video() { RtpCodecKind::Video } else { RtpCodecKind::Audio };
            let mime = if m.is_video() { "video/VP8" } else { "audio/opus" };
            let codec = codec_list()
                .into_iter()
                .find(|(c, _)| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                .map(|(c, _)| c.rtp_codec)
                .expect("codec");
            let rids: Vec<Option<String>> =
                if m.is_video() { m.layers.iter().map(|l| l.rid.clone()).collect() } else { vec![None] };
            let streams: Vec<Stream> = rids
                .iter()
                .map(|_| Stream { ssrc: random_u32(), seq: 1, timestamp: random_u32(), keyframe_due: true })
                .collect();
            let encodings = rids
                .iter()
                .zip(&streams)
                .map(|(rid, s)| RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: rid.clone().unwrap_or_default(),
                        ssrc: Some(s.ssrc),
                        ..Default::default()
                    },
                    codec: codec.clone(),
                    ..Default::default()
                })
                .collect();
            let track = MediaStreamTrack::new(self.name.clone(), m.id.clone(), m.id.clone(), kind, encodings);
            let sender = peer.pc.add_track(track).expect("add track");
            decls.push(TrackDecl { track_id: m.id.clone(), source: m.source });
            let pace = Pace { next: now, every: m.spacing() };
            self.tracks.push(Outgoing { media: m, sender, streams, pace, pt: None, mid: None, rid: None, level: None });
        }
        let offer = peer.pc.create_offer(None).expect("publish offer");
        peer.pc.set_local_description(now, offer).expect("local offer");
        let sdp = peer.pc.local_description().expect("offer").sdp;
        let answer =
            self.participant.publish_offer(sdp.clone(), decls).await.expect("the SFU answers the publish offer");
        let answer = RTCSessionDescription::answer(answer).expect("answer SDP");
        peer.pc.set_remote_description(now, answer).expect("the SFU's answer applies");
        if new && !gathered {
            let c = peer.gather();
            // As a browser names it: the first m-section (the connection is bundled).
            let c = Candidate { candidate: c.candidate, sdp_mid: Some("0".to_owned()), sdp_mline_index: Some(0) };
            self.participant.add_candidate(Target::Publish, c).await.expect("the SFU takes the candidate");
            let end = Candidate { candidate: String::new(), sdp_mid: None, sdp_mline_index: None };
            self.participant.add_candidate(Target::Publish, end).await.expect("end of candidates");
        }
        for t in &mut self.tracks {
            let Some(mut s) = peer.pc.rtp_sender(t.sender) else { continue };
            let params = s.get_parameters();
            t.pt = params.rtp_parameters.codecs.first().map(|c| c.payload_type);
            let ext =
                |uri: &str| params.rtp_parameters.header_extensions.iter().find(|e| e.uri == uri).map(|e| e.id as u8);
            t.mid = ext(MID_URI).zip(mid_of(&sdp, &t.media.id));
            t.rid = ext(RID_URI);
            t.level = ext(AUDIO_LEVEL_URI);
        }
    }

    /// Sends every packet due at `now` (once its publish connection is up); returns how many.
    pub(crate) fn send_due(&mut self, now: Instant) -> usize {
        let Some(peer) = self.publish.as_mut().filter(|p| p.connected() && self.active) else { return 0 };
        let mut sent = 0;
        for t in &mut self.tracks {
            let Some(pt) = t.pt else { continue };
            while t.pace.due(now) {
                for (layer, s) in t.streams.iter_mut().enumerate() {
                    let mut p = next_packet(&t.media, layer, s, pt);
                    if let Some((id, mid)) = &t.mid {
                        let _ = p.header.set_extension(*id, Bytes::from(mid.clone().into_bytes()));
                    }
                    if let (Some(id), Some(rid)) = (t.rid, t.media.layers.get(layer).and_then(|l| l.rid.clone())) {
                        let _ = p.header.set_extension(id, Bytes::from(rid.into_bytes()));
                    }
                    if let Some(id) = t.level {
                        let _ = p.header.set_extension(id, Bytes::from(vec![0x80 | self.audio_level.min(127)]));
                    }
                    if let Some(mut sender) = peer.pc.rtp_sender(t.sender) {
                        match sender.write_rtp(now, p) {
                            Ok(()) => sent += 1,
                            Err(e) => tracing::debug!("client write: {e}"),
                        }
                    }
                }
            }
        }
        sent
    }

    /// When it sends its next packet (none before its publish connection is up).
    pub(crate) fn next_send(&self) -> Option<Instant> {
        if !self.active || !self.publish.as_ref().is_some_and(Peer::connected) {
            return None;
        }
        self.tracks.iter().filter(|t| t.pt.is_some()).map(|t| t.pace.next).min()
    }

    /// The SSRC it sends a layer of one of its tracks with.
    pub fn ssrc_of(&self, media_id: &str, layer: usize) -> Option<u32> {
        self.tracks.iter().find(|t| t.media.id == media_id)?.streams.get(layer).map(|s| s.ssrc)
    }

    /// Its publish connection was asked for a keyframe of `ssrc`: the stream sends one next.
    pub(super) fn keyframe_requested(&mut self, ssrc: u32) {
        for s in self.tracks.iter_mut().flat_map(|t| t.streams.iter_mut()) {
            if s.ssrc == ssrc {
                s.keyframe_due = true;
            }
        }
    }
}

/// Opus, VP8 and VP8's RTX on payload types other than the SFU's (Firefox's numbers), so that
/// what reaches a subscriber shows the SFU rewrote them. A client receives on the SFU's.
fn publisher_codecs() -> MediaEngine {
    let mut me = MediaEngine::default();
    for (mut c, kind) in codec_list() {
        let (pt, fmtp) = match (c.rtp_codec.mime_type.to_ascii_lowercase().as_str(), c.payload_type) {
            ("audio/opus", _) => (109, None),
            ("video/vp8", _) => (120, None),
            ("video/rtx", 97) => (124, Some("apt=120")),
            _ => continue,
        };
        c.payload_type = pt;
        if let Some(f) = fmtp {
            c.rtp_codec.sdp_fmtp_line = f.to_owned();
        }
        me.register_codec(c, kind).expect("codec");
    }
    me
}

/// The `a=mid` of the m-section whose `a=msid` names `track_id`.
fn mid_of(sdp: &str, track_id: &str) -> Option<String> {
    sdp.split("\nm=").find_map(|section| {
        let lines = || section.lines().map(str::trim);
        lines()
            .any(|l| l.strip_prefix("a=msid:").and_then(|m| m.split_whitespace().nth(1)) == Some(track_id))
            .then_some(())?;
        lines().find_map(|l| l.strip_prefix("a=mid:")).map(str::to_owned)
    })
}

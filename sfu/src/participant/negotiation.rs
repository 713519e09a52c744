//! Offer/answer on the participant's two connections: its publish offers answered, our
//! subscribe offers made one at a time (changes meanwhile wait for the answer), trickled
//! candidates, and the SDP checks before anything reaches the WebRTC stack.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::RTCRtpSenderId;

use super::Participant;
use crate::codecs::same_format;
use crate::core::OnChange;
use crate::error::{Error, Result};
use crate::forward::DownTrack;
use crate::peer::advertise_public_ips;
use crate::signal::{Candidate, ServerMessage, Target, TrackDecl};
use crate::sync::lock;
use crate::track::PublishedTrack;
use crate::transport::Connection;

impl Participant {
    /// Our SDP as the client should see it (public addresses in the candidates).
    pub(crate) fn advertised(&self, sdp: &str) -> String {
        match self.config() {
            Some(cfg) => advertise_public_ips(sdp, &cfg),
            None => sdp.to_owned(),
        }
    }

    /// Handles a publish offer: returns the answer SDP (with all server candidates).
    pub async fn publish_offer(self: &Arc<Self>, sdp: String, decls: Vec<TrackDecl>) -> Result<String> {
        if self.is_closed() {
            return Err(Error::Conflict("participant has left".into()));
        }
        if !self.may_publish.load(Ordering::Relaxed) {
            return Err(Error::Forbidden("this participant's token does not allow publishing".into()));
        }
        validate_sdp(&sdp)?;
        {
            let mut d = lock(&self.decls);
            for t in decls {
                d.insert(t.track_id, t.source);
            }
        }
        *lock(&self.publish_sdp) = sdp.clone();
        let pc = self.peer(Target::Publish).await?;
        let answer = pc.answer(sdp)?;
        Ok(self.advertised(&answer))
    }

    /// Adds a trickled remote candidate.
    pub async fn add_candidate(self: &Arc<Self>, target: Target, c: Candidate) -> Result<()> {
        let pc = match target {
            Target::Publish => self.publish_pc.lock().await.clone(),
            Target::Subscribe => self.subscribe_pc.lock().await.clone(),
        };
        let pc = pc.ok_or_else(|| Error::BadRequest("candidate before offer/answer".into()))?;
        if c.candidate.is_empty() {
            return Ok(());
        }
        pc.add_remote_candidate(RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: None,
            url: None,
        })
    }

    /// Applies the client's answer to our subscribe offer.
    pub async fn subscribe_answer(self: &Arc<Self>, sdp: String) -> Result<()> {
        validate_sdp(&sdp)?;
        let pc =
            self.subscribe_pc.lock().await.clone().ok_or_else(|| Error::BadRequest("no subscribe offer".into()))?;
        let mut neg = self.negotiation.lock().await;
        let dirty = neg.on_answer().map_err(|_| Error::BadRequest("no subscribe offer outstanding".into()))?;
        let applied = pc.accept_answer(sdp);
        drop(neg);
        applied?;
        self.resolve_payload_types(&pc);
        if dirty {
            self.renegotiate().await?;
        }
        Ok(())
    }

    pub(crate) fn resolve_payload_types(&self, pc: &Connection) {
        type Entry = (Arc<DownTrack>, RTCRtpSenderId, Option<Arc<PublishedTrack>>);
        let subs: Vec<Entry> =
            lock(&self.subs).values().map(|s| (Arc::clone(&s.down), s.sender, s.track.upgrade())).collect();
        for (down, sender, track) in subs {
            let Some(track) = track else { continue };
            let codecs = pc.sender_codecs(sender);
            let codecs = &codecs;
            let same_mime = |c: &&rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters| {
                c.rtp_codec.mime_type.eq_ignore_ascii_case(&track.codec.mime_type)
            };
            // A subscriber's first video section negotiates every video codec (see
            // `subscribe_to`): the track's own format, matched as `rtc` matches it, before
            // any other of its MIME type.
            let pt = codecs
                .iter()
                .filter(same_mime)
                .find(|c| c.rtp_codec.sdp_fmtp_line == track.codec.sdp_fmtp_line)
                .or_else(|| codecs.iter().find(|c| same_format(&c.rtp_codec, &track.codec)))
                .or_else(|| codecs.iter().find(same_mime))
                .map(|c| c.payload_type);
            if let Some(pt) = pt {
                down.payload_type.store(pt, Ordering::Relaxed);
            }
        }
    }

    /// Creates and sends a new subscribe offer (or marks one as due when an offer is out).
    pub(crate) async fn renegotiate(self: &Arc<Self>) -> Result<()> {
        if !self.subscribes || self.is_closed() {
            return Ok(());
        }
        let pc = self.peer(Target::Subscribe).await?;
        let mut neg = self.negotiation.lock().await;
        if neg.on_change() == OnChange::Wait {
            return Ok(());
        }
        let offer = pc.offer()?;
        neg.offered();
        drop(neg);
        self.send(ServerMessage::SubscribeOffer { sdp: self.advertised(&offer) });
        Ok(())
    }
}

/// Cheap structural checks before an SDP reaches the WebRTC stack.
pub(crate) fn validate_sdp(sdp: &str) -> Result<()> {
    if sdp.len() > 64 * 1024 {
        return Err(Error::BadRequest("SDP larger than 64 KiB".into()));
    }
    let t = sdp.trim_start();
    if !t.starts_with("v=0") {
        return Err(Error::BadRequest("SDP must start with v=0".into()));
    }
    if !sdp.lines().any(|l| l.starts_with("m=")) {
        return Err(Error::BadRequest("SDP has no media section".into()));
    }
    Ok(())
}

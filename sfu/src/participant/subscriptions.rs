//! The others' tracks a participant receives: which it wants, subscribing and unsubscribing
//! (each change renegotiated), and the receive bandwidth its video layers are chosen from.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};

use super::{Participant, Subscription};
use crate::error::{Error, Result};
use crate::forward::{DownTrack, Output, PT_UNKNOWN};
use crate::signal::Target;
use crate::sync::{lock, random_u32};
use crate::track::PublishedTrack;

impl Participant {
    /// Whether it receives `track`: everyone's but its own by default, or those of the
    /// participants it named. A track made in this process (the room's program) only when its
    /// participant is named: by default a client would get everyone's voices back, its own
    /// among them, and pay for a second copy of the room's video.
    pub(crate) fn wants(&self, track: &PublishedTrack) -> bool {
        let publisher = &track.participant_id;
        self.subscribes
            && *publisher != self.id
            && lock(&self.filter).as_ref().map_or(!track.in_process, |f| f.contains(publisher))
    }

    /// Subscribes to `track` (adds a sender to the subscribe connection). Returns whether
    /// renegotiation is due.
    pub(crate) async fn subscribe_to(self: &Arc<Self>, track: &Arc<PublishedTrack>) -> Result<bool> {
        if !self.wants(track) || lock(&self.subs).contains_key(&track.id) {
            return Ok(false);
        }
        let pc = self.peer(Target::Subscribe).await?;
        let ssrc = random_u32();
        let kind = if track.forwarder_is_video() { RtpCodecKind::Video } else { RtpCodecKind::Audio };
        let local = MediaStreamTrack::new(
            track.id.clone(),
            track.id.clone(),
            format!("{}-{}", track.participant_id, track.id),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    // Video retransmissions go on their own SSRC (RFC 4588 RTX) when the
                    // subscriber accepts RTX; otherwise they are resent as they were.
                    rtx: (kind == RtpCodecKind::Video).then(|| RTCRtpRtxParameters { ssrc: random_u32() }),
                    ..Default::default()
                },
                codec: track.codec.clone(),
                ..Default::default()
            }],
        );
        let sender = pc.add_track(local)?;
        // The first video section a connection negotiates fixes its video codecs for good
        // (`rtc` 0.21 takes later tracks only in codecs negotiated there): it offers every
        // video codec the SFU forwards, the track's first, so that a VP8 camera received
        // first does not keep a later H.264 track (the program, an encoder's WHIP) from this
        // subscriber, nor the reverse. Later sections offer their track's codec only.
        if kind == RtpCodecKind::Video && !self.video_offered.swap(true, Ordering::Relaxed) {
            let codecs = crate::codecs::video_codecs_first(&track.codec);
            if let Err(e) = pc.set_codec_preferences(sender, codecs) {
                tracing::debug!(participant = %self.id, "the first video section offers its codec only: {e}");
            }
        }
        let arrivals = self.room.upgrade().and_then(|r| r.sfu.upgrade()).and_then(|s| s.delay_probe.log(ssrc));
        let conn = Arc::clone(&pc);
        let output = Output::Callback(Box::new(move |p, arrived| {
            if let Some(log) = &arrivals {
                log.arrived(p.header.sequence_number, arrived);
            }
            conn.write_rtp(sender, p)
        }));
        let down = Arc::new(DownTrack::new(self.id.clone(), ssrc, PT_UNKNOWN, track.codec.clock_rate, output));
        if let Some(h) = lock(&self.video_sizes).get(&track.id) {
            down.set_max_height(*h);
        }
        lock(&self.subs)
            .insert(track.id.clone(), Subscription { down: Arc::clone(&down), sender, track: Arc::downgrade(track) });
        self.apply_bandwidth(Instant::now());
        track.forwarder.add_down(Arc::clone(&down));
        track.request_keyframe(0);
        Ok(true)
    }

    pub(crate) async fn unsubscribe_from(self: &Arc<Self>, track_id: &str) -> bool {
        let sub = lock(&self.subs).remove(track_id);
        let Some(sub) = sub else { return false };
        if let Some(t) = sub.track.upgrade() {
            t.forwarder.remove_down(&self.id);
        }
        let pc = self.subscribe_pc.lock().await.clone();
        if let Some(pc) = pc {
            pc.remove_track(sub.sender);
        }
        true
    }

    /// Subscribes to every wanted track in the room, then renegotiates once.
    pub async fn sync_subscriptions(self: &Arc<Self>) -> Result<()> {
        let Some(room) = self.room.upgrade() else { return Ok(()) };
        // A token without the subscribe grant receives nothing (no subscribe offers).
        if !self.may_subscribe.load(Ordering::Relaxed) {
            return Ok(());
        }
        let _one_at_a_time = self.sync_lock.lock().await;
        let mut changed = false;
        let tracks = room.all_tracks();
        let live: HashSet<String> = tracks.iter().map(|t| t.id.clone()).collect();
        for t in &tracks {
            if self.wants(t) {
                // One track this connection cannot take (e.g. a codec it did not negotiate)
                // must not keep the others from this subscriber.
                match self.subscribe_to(t).await {
                    Ok(c) => changed |= c,
                    Err(e) => {
                        tracing::warn!(participant = %self.id, track = %t.id, mime = %t.codec.mime_type, "cannot forward this track: {e}")
                    }
                }
            }
        }
        let stale: Vec<String> = lock(&self.subs)
            .iter()
            .filter(|(id, s)| !live.contains(*id) || s.track.upgrade().is_none_or(|t| !self.wants(&t)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            changed |= self.unsubscribe_from(&id).await;
        }
        if changed {
            self.renegotiate().await?;
        }
        Ok(())
    }

    /// Chooses whose tracks to receive (`None`: everyone).
    /// The join's `subscribe` filter: set before the first subscription (no offer yet).
    pub(crate) fn set_initial_subscriptions(&self, participants: Vec<String>) {
        *lock(&self.filter) = Some(participants.into_iter().collect());
    }

    pub async fn set_subscriptions(self: &Arc<Self>, participants: Option<Vec<String>>) -> Result<()> {
        if !self.may_subscribe.load(Ordering::Relaxed) {
            return Err(Error::Forbidden("this participant's token does not allow subscribing".into()));
        }
        *lock(&self.filter) = participants.map(|v| v.into_iter().collect());
        self.sync_subscriptions().await
    }

    /// Caps this participant's receive bitrate (0: no cap), shared among its video tracks.
    pub fn set_max_bitrate(&self, bps: u64) {
        self.max_bitrate.store(bps, Ordering::Relaxed);
        self.apply_bandwidth(Instant::now());
    }

    /// A receiver report arrived on this participant's subscribe connection: loss is what
    /// tells a slow link from a busy receiver (see [`BandwidthEstimator`]). Audio and video
    /// share the connection's path, and Chromium reports each stream on its own schedule
    /// (its audio far more regularly under loss), so any of its streams counts.
    ///
    /// [`BandwidthEstimator`]: crate::core::BandwidthEstimator
    pub(crate) fn on_receiver_report(&self, rr: &ReceiverReport, now: Instant) {
        let lost = {
            let subs = lock(&self.subs);
            rr.reports.iter().filter(|b| subs.values().any(|s| s.down.ssrc == b.ssrc)).map(|b| b.fraction_lost).max()
        };
        if let Some(lost) = lost {
            lock(&self.remb).on_loss(lost, now);
        }
    }

    /// A REMB estimate (bit/s) arrived on this participant's subscribe connection.
    pub(crate) fn on_remb(&self, bitrate: f32, now: Instant) {
        let bps = if bitrate.is_finite() && bitrate > 0.0 { bitrate.min(u64::MAX as f32) as u64 } else { 0 };
        // What the SFU sent this subscriber (RTP headers counted as 12 bytes, SRTP and RTCP
        // not at all: close enough to tell congestion from an estimate that fits).
        let sent: u64 = lock(&self.subs).values().map(|s| s.down.forwarded_bytes() + 12 * s.down.forwarded()).sum();
        lock(&self.remb).on_remb(bps, sent, now);
        self.apply_bandwidth(now);
    }

    /// The receive bandwidth its layers are chosen from (bit/s, 0: no limit): the smaller of
    /// the cap the client set and the limit its REMB estimates set (see
    /// [`BandwidthEstimator`]: only congestion limits, and the top layer is probed again).
    ///
    /// [`BandwidthEstimator`]: crate::core::BandwidthEstimator
    pub fn effective_bandwidth(&self, now: Instant) -> u64 {
        lock(&self.remb).effective(self.max_bitrate.load(Ordering::Relaxed), now)
    }

    /// Shares [`Self::effective_bandwidth`] among the video tracks this participant receives.
    pub(crate) fn apply_bandwidth(&self, now: Instant) {
        let bps = self.effective_bandwidth(now);
        let subs = lock(&self.subs);
        let videos: Vec<&Subscription> =
            subs.values().filter(|s| s.track.upgrade().is_some_and(|t| t.forwarder_is_video())).collect();
        let share = crate::core::bandwidth::video_share(bps, videos.len());
        for s in videos {
            s.down.set_bandwidth(share);
        }
    }

    /// Sets the preferred maximum height of one subscribed video track.
    pub fn set_video_size(&self, track_id: &str, max_height: Option<u32>) {
        let h = max_height.unwrap_or(0);
        lock(&self.video_sizes).insert(track_id.to_owned(), h);
        if let Some(s) = lock(&self.subs).get(track_id) {
            s.down.set_max_height(h);
        }
    }

    /// RTCP from this subscriber about the track it receives as `track_id`: keyframe requests
    /// go to the publisher (rate limited there); receiver reports and REMB estimates (for the
    /// whole connection, delivered with whichever track they name first) set the bandwidth of
    /// all its video tracks.
    pub(crate) fn on_subscriber_rtcp(&self, track_id: &str, pkts: &[Box<dyn rtcp::Packet>]) {
        let Some((track, down)) = lock(&self.subs).get(track_id).map(|s| (s.track.clone(), Arc::clone(&s.down))) else {
            return;
        };
        let now = Instant::now();
        let mut keyframe = false;
        for p in pkts {
            let a = p.as_any();
            if let Some(remb) = a.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                self.on_remb(remb.bitrate, now);
            } else if let Some(rr) = a.downcast_ref::<ReceiverReport>() {
                self.on_receiver_report(rr, now);
            } else if a.is::<PictureLossIndication>() || a.is::<FullIntraRequest>() {
                keyframe = true;
            }
        }
        if keyframe && let Some(t) = track.upgrade() {
            t.request_keyframe(down.current_layer().unwrap_or(0));
        }
    }
}

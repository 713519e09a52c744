//! Outputs of a running program: attached to the encoders' tees (a keyframe asked for at
//! once), finished with EOS, kept until their recording sink has stored everything, and torn
//! down on failure without touching the rest. Viewers' keyframe requests (an RTP output's)
//! force keyframes of the one encode, coalesced.

use super::*;
use crate::keyframe::KeyframeRequestThrottle;
use crate::rtp_output::RtpOutputInfo;

/// At most one keyframe forced for viewers a second, however many ask: each costs every
/// output several frames' worth of bits.
pub(super) const VIEWER_KEYFRAME_INTERVAL: Duration = Duration::from_secs(1);

pub(super) fn viewer_keyframes() -> Mutex<KeyframeRequestThrottle> {
    Mutex::new(KeyframeRequestThrottle::new(VIEWER_KEYFRAME_INTERVAL))
}

impl Program {
    pub fn attach_output(&self, spec: OutputSpec) -> Result<OutputId> {
        self.inner.attach_output(spec)
    }

    /// Finishes an output with EOS (the muxer writes its index) and removes it.
    pub fn detach_output(&self, id: OutputId) -> Result<OutputStats> {
        self.inner.detach_output(id, Duration::from_secs(10))
    }

    pub fn output_stats(&self, id: OutputId) -> Option<OutputStats> {
        lock(&self.inner.outputs).get(&id).map(|o| o.stats())
    }

    /// A viewer needs a keyframe (a PLI or FIR on an RTP output's video): forces an IDR with
    /// SPS and PPS in the program's encode, at most one a second however many ask (later
    /// requests within the second are coalesced into it). Returns whether this one forced it.
    /// Never blocks; any thread. Every output gets the keyframe, and the encoder's 2 s cadence
    /// starts again from it.
    pub fn request_keyframe(&self) -> bool {
        if !self.inner.running.load(Ordering::SeqCst) {
            return false;
        }
        let now = self.inner.started.elapsed();
        if !lock(&self.inner.viewer_keyframes).should_request(now) {
            return false;
        }
        self.inner.force_keyframe();
        true
    }
}

impl Inner {
    /// Attaches an output to the program's own rendition.
    pub(super) fn attach_output(&self, spec: OutputSpec) -> Result<OutputId> {
        if !self.running.load(Ordering::SeqCst) {
            return Err(CompositorError::NotRunning);
        }
        // Before the topology lock: it may wait for the encoder's first frame.
        let rtp = match &spec {
            OutputSpec::Rtp(rtp) => Some(self.describe_rtp_output(rtp)?),
            _ => None,
        };
        let _t = lock(&self.topology);
        self.attach_output_locked(&self.primary, spec, rtp)
    }

    /// Attaches an output to `rendition`'s video (and the program's audio); an RTP output
    /// comes described. Called under `topology`.
    pub(super) fn attach_output_locked(
        &self,
        rendition: &Rendition,
        spec: OutputSpec,
        rtp: Option<RtpOutputInfo>,
    ) -> Result<OutputId> {
        if !self.running.load(Ordering::SeqCst) {
            return Err(CompositorError::NotRunning);
        }
        let id = OutputId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let timeline = spec.timeline();
        // An RTP output encodes the raw mix to Opus; the others take the AAC.
        let ((bin, sinks), audio_tee) = match (spec, &rtp) {
            (OutputSpec::Rtp(spec), Some(info)) => (rtp_bin::build_bin(id, &spec, info)?, &self.backbone.raw_audio_tee),
            (OutputSpec::Hls(spec), _) => (hls_bin::build_bin(id, &spec)?, &self.backbone.audio_tee),
            (spec, _) => {
                let (bin, sink) = output_bin::build_bin(id, spec)?;
                ((bin, vec![sink]), &self.backbone.audio_tee)
            }
        };
        let sink = sinks.first().cloned().ok_or(CompositorError::Gst("output without a sink".into()))?;
        let counters = Arc::new(output_bin::OutputCounters::default());
        output_bin::install_start_probes(&bin, &counters, timeline);
        output_bin::watch_overruns(&bin, &counters);
        let eos = output_bin::eos_watch(&sinks);
        self.pipeline.add(&bin)?;
        bin.sync_state_with_parent()?;
        let mut tee_pads = Vec::new();
        for (tee, kind) in [(&rendition.video.video_tee, "video"), (audio_tee, "audio")] {
            let tee_pad = tee.request_pad_simple("src_%u").ok_or(CompositorError::Gst("tee refused a pad".into()))?;
            let sink_pad = bin.static_pad(kind).ok_or(CompositorError::Gst("no output pad".into()))?;
            tee_pad.link(&sink_pad)?;
            tee_pads.push(tee_pad);
        }
        let audio_tee_pad = tee_pads.pop().ok_or(CompositorError::Gst("no audio pad".into()))?;
        let video_tee_pad = tee_pads.pop().ok_or(CompositorError::Gst("no video pad".into()))?;
        // Start the new output promptly.
        force_keyframe(rendition);
        let rtp_ssrcs = rtp.as_ref().map(|r| (r.video.ssrc, r.audio.ssrc));
        let output = Output { bin, sink, video_tee_pad, audio_tee_pad, counters, eos, rtp, rendition: rendition.id };
        lock(&self.outputs).insert(id, output);
        tracing::info!(output = %id, rendition = %rendition.id, ?rtp_ssrcs, "output attached");
        Ok(id)
    }

    /// Asks the program's own encoder for a keyframe with SPS/PPS (an IDR: the GOPs are
    /// closed).
    pub(super) fn force_keyframe(&self) {
        force_keyframe(&self.primary);
    }

    pub(super) fn detach_output(&self, id: OutputId, timeout: Duration) -> Result<OutputStats> {
        let (out, completion) = {
            let _t = lock(&self.topology);
            let out = lock(&self.outputs).remove(&id).ok_or(CompositorError::UnknownOutput(id.0))?;
            // A sink that reports when its storage has the whole recording is kept until it
            // says so (registered before EOS so the report cannot be missed).
            let completion = output_bin::completion_timeout(&out.sink).map(|t| {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let now = Instant::now();
                let mut draining = lock(&self.draining);
                // Sinks that never reported are forgotten after their deadline.
                draining.retain(|_, (_, deadline)| *deadline > now);
                draining.insert(id, (tx, now + timeout + t));
                (rx, t)
            });
            self.unhook_output(&out, true);
            self.remove_rendition_if_unused_locked(out.rendition);
            (out, completion)
        };
        // Waiting happens outside the topology lock: tracks and other outputs carry on.
        let stats = out.stats();
        let finished = out.eos.recv_timeout(timeout).is_ok();
        match completion {
            Some((done, wait)) if finished => {
                let (pipeline, bin) = (self.pipeline.clone(), out.bin.clone());
                std::thread::spawn(move || {
                    let reported = done.recv_timeout(wait).is_ok();
                    tracing::debug!(output = %id, reported, "output's sink finished storing");
                    remove_bin(&pipeline, &bin);
                });
            }
            _ => {
                lock(&self.draining).remove(&id);
                self.remove_bin(&out.bin);
            }
        }
        tracing::info!(output = %id, finished, frames = stats.video_frames, "output detached");
        if finished { Ok(stats) } else { Err(CompositorError::Timeout("the output to finish")) }
    }

    /// A sink inside output `id` reported that its storage is done with the recording.
    pub(super) fn output_stored(&self, id: OutputId) {
        if let Some((tx, _)) = lock(&self.draining).remove(&id) {
            let _ = tx.try_send(());
        }
    }

    /// Tears an output down after it failed (no EOS: its sink is already broken).
    pub(super) fn drop_failed_output(&self, id: OutputId) {
        let _t = lock(&self.topology);
        let Some(out) = lock(&self.outputs).remove(&id) else { return };
        self.unhook_output(&out, false);
        self.remove_bin(&out.bin);
        self.remove_rendition_if_unused_locked(out.rendition);
    }

    /// Unlinks an output from the tees it hangs off; with `finish`, sends it EOS so its muxer
    /// writes its last bytes.
    pub(super) fn unhook_output(&self, out: &Output, finish: bool) {
        for (tee_pad, kind) in [(&out.video_tee_pad, "video"), (&out.audio_tee_pad, "audio")] {
            if let Some(sink_pad) = out.bin.static_pad(kind) {
                let _ = tee_pad.unlink(&sink_pad);
                if finish {
                    sink_pad.send_event(gst::event::Eos::new());
                }
            }
            // The encoded audio's tee, or the raw mix's for an RTP output.
            if let Some(tee) = tee_pad.parent_element() {
                tee.release_request_pad(tee_pad);
            }
        }
    }
}

/// Asks a rendition's encoder for a keyframe with SPS/PPS (an IDR: the GOPs are closed).
fn force_keyframe(rendition: &Rendition) {
    if let Some(pad) = rendition.video.encoder.static_pad("src") {
        let ev = gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
        pad.send_event(ev);
    }
}

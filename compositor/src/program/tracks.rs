//! Tracks and participants of a running program: each published track's input branch
//! (depayloader, decoder, the compositor's or audio mixer's pad), the name cards of
//! participants without video, lip sync from sender reports, and keyframe requests going back
//! to the publisher.

use super::*;

impl Program {
    /// Adds a participant (shown as a name card until they publish video). Adding a track adds
    /// its participant too.
    pub fn add_participant(&self, identity: &str, name: &str) -> Result<()> {
        if identity.is_empty() {
            return Err(CompositorError::InvalidTrack("participant identity is empty".into()));
        }
        let _t = lock(&self.inner.topology);
        for r in self.inner.all_renditions() {
            lock(&r.scene).ensure_participant(identity, name);
        }
        self.inner.refresh_placeholders()
    }

    /// Removes a participant and all their tracks.
    pub fn remove_participant(&self, identity: &str) -> Result<()> {
        let ids: Vec<TrackId> =
            read(&self.inner.tracks).values().filter(|t| t.params.participant == identity).map(|t| t.id).collect();
        for id in ids {
            self.remove_track(id)?;
        }
        let _t = lock(&self.inner.topology);
        for r in self.inner.all_renditions() {
            lock(&r.scene).remove_participant(identity);
        }
        self.inner.refresh_placeholders()
    }

    /// Adds an input track; RTP for it may be pushed as soon as this returns.
    pub fn add_track(&self, params: TrackParams) -> Result<TrackId> {
        params.validate()?;
        let inner = &self.inner;
        let _t = lock(&inner.topology);
        if params.kind != TrackKind::Audio {
            let source = tile_source(params.kind);
            let exists = read(&inner.tracks)
                .values()
                .any(|t| t.params.participant == params.participant && t.params.kind == params.kind);
            if exists {
                return Err(CompositorError::InvalidTrack(format!(
                    "{} already publishes a {:?} track",
                    params.participant, source
                )));
            }
        }
        let id = TrackId(inner.next_id.fetch_add(1, Ordering::Relaxed));
        let track = Arc::new(TrackInput::build(id, params.clone(), &inner.config, &inner.pipeline)?);
        Inner::connect_track(inner, &track);
        inner.pipeline.add(&track.bin)?;
        let renditions = inner.all_renditions();
        for r in &renditions {
            lock(&r.scene).ensure_participant(&params.participant, &params.name);
        }
        if track.is_video() {
            // One branch per rendition, each hidden until its next layout pass places it: a new
            // input never flashes full-frame.
            for r in &renditions {
                if let Err(e) = inner.link_tile(r, &track) {
                    inner.unlink_video_track(&track);
                    return Err(e);
                }
            }
            let source = tile_source(params.kind);
            for r in &renditions {
                lock(&r.scene).set_video(&params.participant, source, Some(VideoSize { width: 0, height: 0 }));
            }
        } else {
            let src = track.src_pad().ok_or(CompositorError::Gst("track bin has no src".into()))?;
            let mixer = &inner.backbone.audiomixer;
            let mixer_pad =
                mixer.request_pad_simple("sink_%u").ok_or(CompositorError::Gst("mixer refused a sink pad".into()))?;
            if let Err(e) = src.link(&mixer_pad) {
                mixer.release_request_pad(&mixer_pad);
                let _ = inner.pipeline.remove(&track.bin);
                return Err(e.into());
            }
        }
        lock(&inner.sync).add_track(id, &params.participant);
        write(&inner.tracks).insert(id, track.clone());
        track.bin.sync_state_with_parent()?;
        inner.refresh_placeholders()?;
        if track.is_video() {
            // Joining mid-stream: nothing decodes until the next keyframe, so ask for one now.
            inner.request_keyframe(&track);
        }
        tracing::info!(track = %id, participant = %params.participant, kind = ?params.kind, codec = ?params.codec, "track added");
        Ok(id)
    }

    /// Removes a track; its tile disappears (or becomes a name card) on the next frame.
    pub fn remove_track(&self, id: TrackId) -> Result<()> {
        let _t = lock(&self.inner.topology);
        self.inner.remove_track_locked(id)
    }

    /// Pushes one RTP packet of a track. Never blocks; malformed packets are rejected.
    pub fn push_rtp(&self, id: TrackId, packet: &[u8]) -> Result<()> {
        let track = read(&self.inner.tracks).get(&id).cloned();
        track.ok_or(CompositorError::UnknownTrack(id.0))?.push_rtp(packet)
    }

    /// Pushes an RTCP sender report of a track (used for lip sync).
    pub fn push_sender_report(&self, id: TrackId, sr: &SenderReport) -> Result<()> {
        let track = read(&self.inner.tracks).get(&id).cloned();
        track.ok_or(CompositorError::UnknownTrack(id.0))?.push_sender_report(sr)
    }

    pub fn track_stats(&self, id: TrackId) -> Option<TrackStats> {
        read(&self.inner.tracks).get(&id).map(|t| t.stats())
    }
}

impl Inner {
    pub(super) fn connect_track(inner: &Arc<Inner>, track: &Arc<TrackInput>) {
        let id = track.id;
        // Keyframe requests from depayloader and decoder travel upstream to the jitter buffer;
        // they end here and go to the SFU instead.
        if let Some(pad) = track.jitterbuffer.static_pad("src") {
            let weak = Arc::downgrade(inner);
            let weak_track = Arc::downgrade(track);
            pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                let Some(gst::PadProbeData::Event(ev)) = &info.data else {
                    return gst::PadProbeReturn::Ok;
                };
                if !gst_video::ForceKeyUnitEvent::is(ev) {
                    return gst::PadProbeReturn::Ok;
                }
                if let (Some(inner), Some(track)) = (weak.upgrade(), weak_track.upgrade()) {
                    inner.request_keyframe(&track);
                }
                output_bin::drop_data(info)
            });
        }
        // Sender reports: align this participant's tracks.
        let weak = Arc::downgrade(inner);
        track.jitterbuffer.connect("handle-sync", false, move |args| {
            let inner = weak.upgrade()?;
            let s = args.get(1)?.get::<gst::Structure>().ok()?;
            let obs = input::parse_handle_sync(&s)?;
            let changes = lock(&inner.sync).observe(id, obs);
            inner.apply_ts_offsets(&changes);
            None
        });
        // The decoded size drives `contain`/`cover` geometry in every rendition.
        if let Some(pad) = track.decoded.as_ref().and_then(|t| t.static_pad("sink")) {
            let weak = Arc::downgrade(inner);
            let participant = track.params.participant.clone();
            let source = tile_source(track.params.kind);
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let Some(gst::PadProbeData::Event(ev)) = &info.data
                    && let gst::EventView::Caps(c) = ev.view()
                    && let Ok(vi) = gst_video::VideoInfo::from_caps(c.caps())
                    && let Some(inner) = weak.upgrade()
                {
                    let size = VideoSize { width: vi.width(), height: vi.height() };
                    for r in inner.all_renditions() {
                        lock(&r.scene).update_video_size(&participant, source, size);
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }
    }

    pub(super) fn apply_ts_offsets(&self, changes: &[(TrackId, i64)]) {
        if changes.is_empty() {
            return;
        }
        let tracks = read(&self.tracks);
        for (id, offset) in changes {
            if let Some(t) = tracks.get(id) {
                tracing::debug!(track = %id, offset_ms = *offset as f64 / 1e6, "lip sync offset");
                t.jitterbuffer.set_property("ts-offset", *offset);
            }
        }
    }

    pub(super) fn request_keyframe(&self, track: &TrackInput) {
        let now = self.started.elapsed();
        if !lock(&track.limiter).should_request(now) {
            return;
        }
        let handler = read(&self.keyframe_handler).clone();
        if let Some(h) = handler {
            h(track.id);
        }
    }

    pub(super) fn remove_track_locked(&self, id: TrackId) -> Result<()> {
        let track = write(&self.tracks).remove(&id).ok_or(CompositorError::UnknownTrack(id.0))?;
        let changes = lock(&self.sync).remove_track(id);
        self.apply_ts_offsets(&changes);
        track.close();
        if track.is_video() {
            let source = tile_source(track.params.kind);
            for r in self.all_renditions() {
                let mut scene = lock(&r.scene);
                scene.set_video(&track.params.participant, source, None);
                scene.unregister_pad(&track.params.participant, source);
            }
            self.unlink_video_track(&track);
        } else {
            self.detach_source(&track.bin, None, &self.backbone.audiomixer);
        }
        tracing::info!(track = %id, participant = %track.params.participant, "track removed");
        self.refresh_placeholders()
    }

    /// Takes a video track's branches out of every rendition, then the track out of the
    /// pipeline.
    fn unlink_video_track(&self, track: &TrackInput) {
        for r in self.all_renditions() {
            let branch = lock(&r.tiles).remove(&track.id);
            if let Some(branch) = branch {
                self.unlink_tile(&r, branch, None);
            }
        }
        self.remove_bin(&track.bin);
    }

    /// Unlinks a source bin from its mixer and shuts it down without disturbing the mixer.
    pub(super) fn detach_source(&self, bin: &gst::Bin, mixer_pad: Option<gst::Pad>, mixer: &gst::Element) {
        if let Some(src) = bin.static_pad("src") {
            // Nothing more reaches the mixer, and nothing upstream sees "not linked".
            src.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, |_, info| {
                output_bin::drop_data(info)
            });
            let peer = mixer_pad.or_else(|| src.peer());
            if let Some(peer) = peer {
                let _ = src.unlink(&peer);
                mixer.release_request_pad(&peer);
            }
        }
        self.remove_bin(bin);
    }

    /// Keeps a name card for every participant without camera video, in every rendition.
    pub(super) fn refresh_placeholders(&self) -> Result<()> {
        for r in self.all_renditions() {
            self.refresh_placeholders_in(&r)?;
        }
        Ok(())
    }

    pub(super) fn refresh_placeholders_in(&self, r: &rendition::Rendition) -> Result<()> {
        let wanted: BTreeMap<String, String> = lock(&r.scene)
            .participants()
            .filter(|p| p.camera.is_none())
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect();
        let mut placeholders = lock(&r.placeholders);
        let stale: Vec<String> = placeholders.keys().filter(|k| !wanted.contains_key(*k)).cloned().collect();
        for id in stale {
            if let Some(bin) = placeholders.remove(&id) {
                let pad = lock(&r.scene).unregister_pad(&id, TileSource::Placeholder);
                self.detach_source(&bin, pad, &r.video.compositor);
            }
        }
        for (id, name) in wanted {
            if placeholders.contains_key(&id) {
                continue;
            }
            let n = self.next_id.fetch_add(1, Ordering::Relaxed);
            let bin = input::placeholder_bin(n, &name, &r.config)?;
            self.pipeline.add(&bin)?;
            let pad = r
                .video
                .compositor
                .request_pad_simple("sink_%u")
                .ok_or(CompositorError::Gst("compositor refused a sink pad".into()))?;
            let src = bin.static_pad("src").ok_or(CompositorError::Gst("no src".into()))?;
            src.link(&pad)?;
            pad.set_property("alpha", 0.0f64);
            lock(&r.scene).register_pad(&id, TileSource::Placeholder, pad, None, None);
            bin.sync_state_with_parent()?;
            placeholders.insert(id, bin);
        }
        Ok(())
    }
}

pub(super) fn tile_source(kind: TrackKind) -> TileSource {
    match kind {
        TrackKind::Screen => TileSource::Screen,
        _ => TileSource::Camera,
    }
}

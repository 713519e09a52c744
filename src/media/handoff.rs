//! The SFU's side of the seam: published tracks, their RTP and sender reports, and the active
//! speaker reach the room's program through [`ProgramHub`]'s [`MediaHandoff`]. The SFU calls
//! these on its hand-off threads (each room's in order on one of them), so nothing here can
//! slow forwarding.

use tessera_compositor::{Codec, Program, SenderReport, TrackId, TrackKind, TrackParams};
use tessera_sfu::{KeyframeRequester, MediaHandoff, SenderReportInfo, TrackInfo, TrackSource};

use std::time::Instant;

use super::placeholders::PLACEHOLDER_FOR;
use super::{KeyframeRoutes, ProgramHub, Track};
use crate::error::Result;
use crate::locks::lock;

/// What the compositor needs to know about an SFU track; `participant` is its id in the
/// program.
pub fn track_params(info: &TrackInfo, participant: &str) -> Option<TrackParams> {
    let codec = match info.mime_type.to_ascii_lowercase().as_str() {
        "video/vp8" => Codec::Vp8,
        "video/h264" => Codec::H264,
        "audio/opus" => Codec::Opus,
        _ => return None,
    };
    let kind = match info.source {
        TrackSource::Audio => TrackKind::Audio,
        TrackSource::Camera => TrackKind::Camera,
        TrackSource::Screen => TrackKind::Screen,
    };
    Some(TrackParams {
        participant: participant.to_owned(),
        name: info.participant_name.clone(),
        kind,
        codec,
        payload_type: info.payload_type,
        clock_rate: info.clock_rate,
        ssrc: info.ssrc,
    })
}

/// Adds a track to a program and asks its publisher for a keyframe to start decoding.
pub(super) fn add_input(
    program: &Program,
    info: &TrackInfo,
    participant: &str,
    keyframes: &KeyframeRequester,
    routes: &KeyframeRoutes,
) -> Result<TrackId> {
    let params = track_params(info, participant).ok_or_else(|| {
        tessera_compositor::CompositorError::InvalidTrack(format!("{} cannot be composited", info.mime_type))
    })?;
    program.add_participant(&params.participant, &params.name)?;
    let input = program.add_track(params)?;
    lock(routes).insert(input, keyframes.clone());
    keyframes.request();
    Ok(input)
}

impl ProgramHub {
    /// A track is gone from the program; with the participant's last one, the participant too,
    /// unless they were `lost`: then their tile stays as a placeholder (`placeholders.rs`).
    fn track_ended(&self, track: &TrackInfo, lost: bool) {
        self.inputs().remove(&track.track_id);
        let mut rooms = self.lock();
        let Some(media) = rooms.get_mut(&track.room) else { return };
        let removed = media.tracks.remove(&track.track_id);
        let still_there = media.tracks.values().any(|t| t.info.participant_id == track.participant_id);
        if let (Some(program), Some(Track { input: Some(input), program_id, .. })) = (&media.program, removed) {
            lock(&media.keyframe_routes).remove(&input);
            let _ = program.remove_track(input);
            if !still_there && lost {
                tracing::info!(room = %track.room, participant = %program_id, "lost: its tile waits for it");
                media.placeholders.lost(&program_id, Instant::now());
                self.expire_placeholders_later(&track.room);
            } else if !still_there {
                let _ = program.remove_participant(&program_id);
            }
        }
        if media.tracks.is_empty() && media.program.is_none() {
            rooms.remove(&track.room);
        }
    }

    /// Removes the room's placeholders whose time is up, once [`PLACEHOLDER_FOR`] has passed.
    fn expire_placeholders_later(&self, room: &str) {
        let (hub, name) = (self.clone(), room.to_owned());
        let spawned = std::thread::Builder::new().name("placeholders".into()).spawn(move || {
            std::thread::sleep(PLACEHOLDER_FOR);
            let room = name;
            let mut rooms = hub.lock();
            let Some(media) = rooms.get_mut(&room) else { return };
            let gone = media.placeholders.expire(Instant::now());
            if let Some(program) = &media.program {
                for id in gone.iter().filter(|id| !media.tracks.values().any(|t| &t.program_id == *id)) {
                    tracing::info!(room, participant = %id, "did not come back: its tile goes");
                    let _ = program.remove_participant(id);
                }
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(room, "cannot time a placeholder: {e}");
        }
    }
}

impl MediaHandoff for ProgramHub {
    fn track_published(&self, track: &TrackInfo, keyframes: KeyframeRequester) {
        let mut rooms = self.lock();
        let media = rooms.entry(track.room.clone()).or_default();
        let program_id = media.program_id_for(track);
        // Back after being lost: the tile kept for them is theirs again.
        media.placeholders.returned(&program_id);
        let mut input = None;
        // Without a program (or a place in it) the SFU need not hand over, or even serialize,
        // this track's RTP.
        if media.program.is_none() {
            keyframes.media().close();
        }
        if let Some(program) = &media.program {
            match add_input(program, track, &program_id, &keyframes, &media.keyframe_routes) {
                Ok(id) => {
                    input = Some(id);
                    self.inputs().insert(track.track_id.clone(), program.clone(), id);
                }
                Err(e) => {
                    keyframes.media().close();
                    tracing::warn!(room = %track.room, track = %track.track_id, error = %e, "track cannot join the program")
                }
            }
        }
        let seq = media.next_seq;
        media.next_seq += 1;
        media.tracks.insert(track.track_id.clone(), Track { info: track.clone(), keyframes, input, seq, program_id });
    }

    fn track_unpublished(&self, track: &TrackInfo) {
        self.track_ended(track, false);
    }

    fn track_lost(&self, track: &TrackInfo) {
        self.track_ended(track, true);
    }

    fn rtp(&self, track_id: &str, packet: &[u8]) {
        let target = self.inputs().get(track_id);
        if let Some((program, input)) = target
            && let Err(e) = program.push_rtp(input, packet)
        {
            tracing::debug!(track = track_id, error = %e, "RTP packet refused by the program");
        }
    }

    fn sender_report(&self, track_id: &str, report: &SenderReportInfo) {
        let target = self.inputs().get(track_id);
        if let Some((program, input)) = target {
            let sr = SenderReport {
                ssrc: report.ssrc,
                ntp_time: report.ntp_time,
                rtp_time: report.rtp_time,
                packet_count: report.packet_count,
                octet_count: report.octet_count,
            };
            let _ = program.push_sender_report(input, &sr);
        }
    }

    fn active_speaker(&self, room: &str, participant_id: Option<&str>) {
        let program = {
            let mut rooms = self.lock();
            let Some(media) = rooms.get_mut(room) else { return };
            media.active_speaker = participant_id.map(str::to_owned);
            media.program.clone().map(|p| (p, media.speaker_ranking()))
        };
        if let Some((program, ranking)) = program {
            program.set_active_speakers(&ranking);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(mime: &str, source: TrackSource, clock_rate: u32) -> TrackInfo {
        TrackInfo {
            room: "r".into(),
            participant_id: "PA_1".into(),
            participant_name: "Alice".into(),
            participant_identity: None,
            track_id: "TR_1".into(),
            source,
            mime_type: mime.into(),
            payload_type: 96,
            clock_rate,
            channels: 0,
            fmtp: String::new(),
            ssrc: 1234,
        }
    }

    #[test]
    fn sfu_tracks_map_to_program_inputs() {
        let p = track_params(&info("video/VP8", TrackSource::Camera, 90_000), "alice").unwrap();
        assert_eq!((p.codec, p.kind, p.ssrc, p.payload_type), (Codec::Vp8, TrackKind::Camera, 1234, 96));
        assert_eq!((p.participant.as_str(), p.name.as_str()), ("alice", "Alice"));
        p.validate().unwrap();
        let s = track_params(&info("video/H264", TrackSource::Screen, 90_000), "a").unwrap();
        assert_eq!((s.codec, s.kind), (Codec::H264, TrackKind::Screen));
        let a = track_params(&info("audio/opus", TrackSource::Audio, 48_000), "a").unwrap();
        assert_eq!((a.codec, a.kind), (Codec::Opus, TrackKind::Audio));
        a.validate().unwrap();
    }

    #[test]
    fn codecs_the_compositor_cannot_decode_stay_out() {
        assert!(track_params(&info("video/VP9", TrackSource::Camera, 90_000), "a").is_none());
        assert!(track_params(&info("video/AV1", TrackSource::Camera, 90_000), "a").is_none());
    }
}

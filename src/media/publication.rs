//! The room's program published into the room: an RTP output of the program (its one H.264
//! encode, the mix in Opus) feeds an in-process participant of the SFU with identity
//! `program`. It is there while someone wants it: the application (`PATCH /v1/rooms/{room}`
//! `{"publish_program": true}`, MCU mode: clients receive it by naming it) or a WHEP viewer
//! (`POST /whep/{room}`); the program stops once nobody does and nothing else uses it.
//! Keyframe requests of its viewers reach the program's encoder, at most one a second (the
//! compositor coalesces them).

use std::sync::{Arc, OnceLock, Weak};

use tessera_compositor::layout::Layout;
use tessera_compositor::{OutputId, OutputSpec, Program, ProgramConfig, RtpSink};
use tessera_sfu::{LocalPublisher, LocalTrackSpec, Sfu};

use super::ProgramHub;
use crate::error::{Error, Result};

/// The identity of the program's participant (reserved: no token may carry it).
pub const PROGRAM_IDENTITY: &str = "program";
/// Its name, as clients show it.
const PROGRAM_NAME: &str = "Program";

/// A room's program as a participant: the output that feeds it, the participant, and who
/// uses it. It lasts while the application asked for it or a viewer watches it.
pub(super) struct Publication {
    program: Arc<Program>,
    output: OutputId,
    publisher: Arc<LocalPublisher>,
    /// `PATCH` `{"publish_program": true}` (until `false`).
    asked: bool,
    /// WHEP viewers (`POST /whep/{room}`) watching it now.
    viewers: usize,
}

impl Publication {
    fn in_use(&self) -> bool {
        self.asked || self.viewers > 0
    }
}

/// Hands the RTP output's packets to the participant once it exists (the first packets,
/// made before the SFU knows the streams, are dropped: a viewer starts at a keyframe anyway).
#[derive(Default)]
struct PublisherSink {
    publisher: OnceLock<Weak<LocalPublisher>>,
}

impl PublisherSink {
    fn push(&self, index: usize, packet: &[u8]) {
        if let Some(p) = self.publisher.get().and_then(Weak::upgrade) {
            p.push_rtp(index, packet);
        }
    }
}

impl RtpSink for PublisherSink {
    fn video(&self, packet: &[u8]) {
        self.push(0, packet);
    }

    fn audio(&self, packet: &[u8]) {
        self.push(1, packet);
    }
}

/// Who wants a room's program in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramUser {
    /// The application (`publish_program`).
    Application,
    /// One more WHEP viewer.
    Viewer,
}

impl ProgramHub {
    /// Publishes `room`'s program into the room for `user`, starting the program (from
    /// `config` and `layout`) if it does not run; the program participant's id. Blocking
    /// (attaching waits for the encoder's first caps), inside the Tokio runtime (the SFU's
    /// participant lives there).
    pub fn publish_program(
        &self,
        sfu: &Sfu,
        room: &str,
        config: ProgramConfig,
        layout: Layout,
        user: ProgramUser,
    ) -> Result<String> {
        // A publication ended between making sure of it and counting its user (the last
        // user left meanwhile) is made again; twice is enough in any real interleaving.
        for _ in 0..3 {
            if !self.has_publication(room) {
                let made = self.make_publication(sfu, room, config.clone(), layout.clone())?;
                let mut rooms = self.lock();
                let media = rooms.entry(room.to_owned()).or_default();
                if media.publication.is_none() {
                    media.publication = Some(made);
                } else {
                    // Made twice at once: the first one stays.
                    drop(rooms);
                    self.end_publication(room, made);
                }
            }
            let mut rooms = self.lock();
            if let Some(p) = rooms.get_mut(room).and_then(|m| m.publication.as_mut()) {
                match user {
                    ProgramUser::Application => p.asked = true,
                    ProgramUser::Viewer => p.viewers += 1,
                }
                return Ok(p.publisher.participant_id().to_owned());
            }
        }
        Err(Error::Conflict(format!("room {room}'s program was taken out of the room while it was being published")))
    }

    /// `user` no longer wants the program in the room; once nobody does, the participant
    /// leaves and the program stops if nothing else uses it. Blocking (the output is
    /// finished).
    pub fn unpublish_program(&self, room: &str, user: ProgramUser) {
        let ended = {
            let mut rooms = self.lock();
            let Some(media) = rooms.get_mut(room) else { return };
            let Some(p) = media.publication.as_mut() else { return };
            match user {
                ProgramUser::Application => p.asked = false,
                ProgramUser::Viewer => p.viewers = p.viewers.saturating_sub(1),
            }
            if p.in_use() { None } else { media.publication.take() }
        };
        if let Some(p) = ended {
            self.end_publication(room, p);
        }
    }

    /// Whether the application asked for `room`'s program in the room.
    pub fn is_program_published(&self, room: &str) -> bool {
        self.lock().get(room).and_then(|m| m.publication.as_ref()).is_some_and(|p| p.asked)
    }

    /// WHEP viewers of `room`'s program now.
    pub fn program_viewers(&self, room: &str) -> usize {
        self.lock().get(room).and_then(|m| m.publication.as_ref()).map_or(0, |p| p.viewers)
    }

    fn has_publication(&self, room: &str) -> bool {
        self.lock().get(room).is_some_and(|m| m.publication.is_some())
    }

    /// An RTP output of the room's program (started if needed) feeding a new program
    /// participant, with no user yet.
    fn make_publication(&self, sfu: &Sfu, room: &str, config: ProgramConfig, layout: Layout) -> Result<Publication> {
        let sink = Arc::new(PublisherSink::default());
        let (program, output) = self.with_program(room, config, layout, |program, _| {
            let output = program.attach_output(OutputSpec::rtp(Arc::clone(&sink) as Arc<dyn RtpSink>))?;
            Ok((Arc::clone(program), output))
        })?;
        let published = program
            .rtp_output(output)
            .ok_or(Error::Program(tessera_compositor::CompositorError::UnknownOutput(output.0)))
            .and_then(|info| {
                let tracks = vec![
                    LocalTrackSpec::h264(&info.video.fmtp, info.video.payload_type, info.video.ssrc),
                    LocalTrackSpec::opus(info.audio.payload_type, info.audio.ssrc),
                ];
                Ok(sfu.publish_local(room, PROGRAM_IDENTITY, PROGRAM_NAME, tracks)?)
            });
        let publisher = match published {
            Ok(p) => Arc::new(p),
            Err(e) => {
                let _ = program.detach_output(output);
                self.stop_if_idle(room);
                return Err(e);
            }
        };
        let encoder = Arc::downgrade(&program);
        publisher.on_keyframe_request(move || {
            if let Some(p) = encoder.upgrade() {
                p.request_keyframe();
            }
        });
        let _ = sink.publisher.set(Arc::downgrade(&publisher));
        tracing::info!(room, participant = publisher.participant_id(), "program published into the room");
        Ok(Publication { program, output, publisher, asked: false, viewers: 0 })
    }

    /// The participant leaves (clients see its tracks go), then the output is finished.
    fn end_publication(&self, room: &str, p: Publication) {
        drop(p.publisher);
        if let Err(e) = p.program.detach_output(p.output) {
            tracing::debug!(room, error = %e, "the program's RTP output did not finish cleanly");
        }
        tracing::info!(room, "program taken out of the room");
        self.stop_if_idle(room);
    }
}

//! The room's program published into the room (MCU mode, `PATCH /v1/rooms/{room}`
//! `{"publish_program": true}`): an RTP output of the program (its one H.264 encode, the mix
//! in Opus) feeds an in-process participant of the SFU with identity `program`, which clients
//! receive by naming it. The program runs while it is published; keyframe requests of its
//! viewers reach the program's encoder, at most one a second (the compositor coalesces them).

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

/// A room's program as a participant: the output that feeds it and the participant.
pub(super) struct Publication {
    program: Arc<Program>,
    output: OutputId,
    publisher: Arc<LocalPublisher>,
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

impl ProgramHub {
    /// Publishes `room`'s program into the room, starting the program (from `config` and
    /// `layout`) if it does not run. Blocking (attaching waits for the encoder's first
    /// caps), inside the Tokio runtime (the SFU's participant lives there). Already
    /// published: nothing to do.
    pub fn publish_program(&self, sfu: &Sfu, room: &str, config: ProgramConfig, layout: Layout) -> Result<()> {
        if self.is_program_published(room) {
            return Ok(());
        }
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
        let replaced = self.set_publication(room, Some(Publication { program, output, publisher }));
        // Two requests at once: the first one's publication goes.
        if let Some(old) = replaced {
            self.end_publication(room, old);
        }
        Ok(())
    }

    /// Takes the program out of the room; the program stops if nothing else uses it.
    /// Blocking (the output is finished). Not published: nothing to do.
    pub fn unpublish_program(&self, room: &str) {
        if let Some(p) = self.set_publication(room, None) {
            self.end_publication(room, p);
        }
    }

    /// Whether `room`'s program is published into the room.
    pub fn is_program_published(&self, room: &str) -> bool {
        self.lock().get(room).is_some_and(|m| m.publication.is_some())
    }

    /// Sets the room's publication; the one it had, if any.
    fn set_publication(&self, room: &str, publication: Option<Publication>) -> Option<Publication> {
        let mut rooms = self.lock();
        match publication {
            Some(p) => rooms.entry(room.to_owned()).or_default().publication.replace(p),
            None => rooms.get_mut(room).and_then(|m| m.publication.take()),
        }
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

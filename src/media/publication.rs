//! The room's program published into the room: an RTP output of the program (its one H.264
//! encode, the mix in Opus) feeds an in-process participant of the SFU with identity
//! `program`. It is there while someone wants it: the application (`PATCH /v1/rooms/{room}`
//! `{"publish_program": true}`, MCU mode: clients receive it by naming it) or a WHEP viewer
//! (`POST /whep/{room}`); the program stops once nobody does and nothing else uses it.
//! Keyframe requests of its viewers reach the program's encoder, at most one a second (the
//! compositor coalesces them).

use std::collections::BTreeMap;
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
    /// WHEP viewers served by other nodes of a cluster (through the relay), by node: what each
    /// last said (`PUT /v1/rooms/{room}/program-viewers/{node}`).
    remote_viewers: BTreeMap<String, usize>,
}

impl Publication {
    fn in_use(&self) -> bool {
        self.asked || self.viewers > 0 || self.remote_viewers.values().any(|n| *n > 0)
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
        self.publish_for(sfu, room, config, layout, |p| match user {
            ProgramUser::Application => p.asked = true,
            ProgramUser::Viewer => p.viewers += 1,
        })
    }

    /// Another node of the cluster serves `count` WHEP viewers of `room`'s program (relayed
    /// from here): publishes it while any node has viewers, like local ones. `Ok(None)` once
    /// `count` is 0 (the publication ends if nobody else uses it).
    pub fn set_remote_program_viewers(
        &self,
        sfu: &Sfu,
        room: &str,
        node: &str,
        count: usize,
        config: ProgramConfig,
        layout: Layout,
    ) -> Result<Option<String>> {
        if count == 0 {
            self.unpublish_with(room, |p| {
                p.remote_viewers.remove(node);
            });
            return Ok(None);
        }
        let node = node.to_owned();
        self.publish_for(sfu, room, config, layout, move |p| {
            p.remote_viewers.insert(node.clone(), count);
        })
        .map(Some)
    }

    /// Forgets the viewers of nodes that are gone (`keep` says which are still up): a node that
    /// died never says its viewers left. A publication that ends with them is finished off the
    /// caller's thread (the cascade's task).
    pub fn retain_remote_program_viewers(&self, keep: impl Fn(&str) -> bool + Send + 'static) {
        let rooms: Vec<String> = {
            let rooms = self.lock();
            rooms
                .iter()
                .filter(|(_, m)| m.publication.as_ref().is_some_and(|p| p.remote_viewers.keys().any(|n| !keep(n))))
                .map(|(r, _)| r.clone())
                .collect()
        };
        if rooms.is_empty() {
            return;
        }
        let hub = self.clone();
        std::thread::spawn(move || {
            for room in rooms {
                tracing::info!(%room, "WHEP viewers of a node that is gone no longer keep the program");
                hub.unpublish_with(&room, |p| p.remote_viewers.retain(|n, _| keep(n)));
            }
        });
    }

    /// WHEP viewers on other nodes of the cluster, by node.
    pub fn remote_program_viewers(&self, room: &str) -> BTreeMap<String, usize> {
        self.lock().get(room).and_then(|m| m.publication.as_ref()).map(|p| p.remote_viewers.clone()).unwrap_or_default()
    }

    /// Makes sure `room`'s program is published and records its new user with `apply`.
    fn publish_for(
        &self,
        sfu: &Sfu,
        room: &str,
        config: ProgramConfig,
        layout: Layout,
        apply: impl Fn(&mut Publication),
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
                apply(p);
                return Ok(p.publisher.participant_id().to_owned());
            }
        }
        Err(Error::Conflict(format!("room {room}'s program was taken out of the room while it was being published")))
    }

    /// `user` no longer wants the program in the room; once nobody does, the participant
    /// leaves and the program stops if nothing else uses it. Blocking (the output is
    /// finished).
    pub fn unpublish_program(&self, room: &str, user: ProgramUser) {
        self.unpublish_with(room, |p| match user {
            ProgramUser::Application => p.asked = false,
            ProgramUser::Viewer => p.viewers = p.viewers.saturating_sub(1),
        });
    }

    /// Records with `apply` that a user left; ends the publication once nobody uses it.
    fn unpublish_with(&self, room: &str, apply: impl FnOnce(&mut Publication)) {
        let ended = {
            let mut rooms = self.lock();
            let Some(media) = rooms.get_mut(room) else { return };
            let Some(p) = media.publication.as_mut() else { return };
            apply(p);
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
        Ok(Publication { program, output, publisher, asked: false, viewers: 0, remote_viewers: BTreeMap::new() })
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

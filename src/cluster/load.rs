//! What this node carries, for its heartbeat.

use tessera_cluster::NodeLoad;

use crate::recordings::RecordingStatus;
use crate::server::Media;
use crate::streams::StreamStatus;

/// Rooms, participants and programs as of now (the CPU is measured by the heartbeat).
pub fn of(media: &Media) -> NodeLoad {
    let rooms = media.sfu.rooms();
    // This node's own participants (another node's, relayed here, count there).
    let participants: usize = rooms
        .iter()
        .filter_map(|r| media.sfu.get_room(r))
        .map(|r| r.participants().iter().filter(|p| p.node().is_none() && !p.is_in_process()).count())
        .sum();
    let mut names: std::collections::BTreeSet<String> = rooms.into_iter().collect();
    let programs = media.hub.rooms();
    let program_count = programs.len();
    names.extend(programs);
    NodeLoad { rooms: names.len() as u32, participants: participants as u32, programs: program_count as u32, cpu: 0.0 }
}

/// Whether anything of `room` runs here: participants, a program, a running recording or
/// stream.
pub fn hosts(media: &Media, room: &str) -> bool {
    media.sfu.get_room(room).is_some_and(|r| r.participants().iter().any(|p| p.node().is_none()))
        || media.hub.program(room).is_some()
        || media.recordings.list(Some(room)).iter().any(|r| {
            matches!(r.status, RecordingStatus::Starting | RecordingStatus::Recording | RecordingStatus::Stopping)
        })
        || media.streams.list(Some(room)).iter().any(|s| s.status == StreamStatus::Active)
}

/// The rooms something runs in here (see [`hosts`]).
pub fn rooms(media: &Media) -> Vec<String> {
    let mut names: std::collections::BTreeSet<String> = media.sfu.rooms().into_iter().collect();
    names.extend(media.hub.rooms());
    names.into_iter().filter(|room| hosts(media, room)).collect()
}

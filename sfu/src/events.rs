//! Who is in which room, told to the application as it happens: every participant that joins
//! or leaves, whether it publishes, subscribes or both (the media hand-off only sees
//! publishers' tracks).

/// A participant as the application knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantEvent {
    pub room: String,
    /// The SFU's id for the participant (unique in the room).
    pub participant_id: String,
    /// The identity its token carries, if any.
    pub identity: Option<String>,
    /// Its display name.
    pub name: String,
}

/// Implemented by the binary (webhooks, room lifecycle). Called synchronously from joins and
/// leaves, once each per participant, a participant's `joined` always before its `left`:
/// implementations must return quickly and never call back into the SFU.
pub trait RoomObserver: Send + Sync + 'static {
    fn participant_joined(&self, participant: &ParticipantEvent);
    fn participant_left(&self, participant: &ParticipantEvent);
}

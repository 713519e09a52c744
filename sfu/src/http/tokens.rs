//! What the application's tokens decide: who may join a room, as whom, and what they may do.

/// Decides whether a token may join a room. Implemented for `Fn(&str, &str) -> bool`
/// (room, token). Tokens are never logged.
pub trait TokenValidator: Send + Sync + 'static {
    /// True when `token` grants access to `room`.
    fn validate(&self, room: &str, token: &str) -> bool;

    /// The participant identity a valid `token` carries, if the application's tokens name
    /// one (shown by [`crate::Participant::identity`]). None by default.
    fn identity(&self, _room: &str, _token: &str) -> Option<String> {
        None
    }

    /// What a valid `token` allows; everything by default.
    fn grants(&self, _room: &str, _token: &str) -> Grants {
        Grants::default()
    }
}

/// What a participant's token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants {
    /// May publish tracks (WebSocket `publish_offer`, WHIP).
    pub publish: bool,
    /// May receive the others' tracks.
    pub subscribe: bool,
}

impl Default for Grants {
    fn default() -> Self {
        Grants { publish: true, subscribe: true }
    }
}

impl<F: Fn(&str, &str) -> bool + Send + Sync + 'static> TokenValidator for F {
    fn validate(&self, room: &str, token: &str) -> bool {
        self(room, token)
    }
}

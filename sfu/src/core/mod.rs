//! The forwarding core: plain state machines that take time as an argument and touch no
//! sockets, so every rule is unit-tested on its own. The peer-connection layer feeds them.

pub mod bandwidth;
pub mod keyframe;
pub mod limiter;
pub mod negotiation;
pub mod resend_budget;
pub mod rewrite;
pub mod simulcast;
pub mod speaker;

pub use bandwidth::BandwidthEstimator;
pub use keyframe::is_keyframe;
pub use limiter::KeyframeRequestLimiter;
pub use negotiation::{OnChange, SubscribeNegotiation};
pub use resend_budget::ResendBudget;
pub use rewrite::StreamRewriter;
pub use simulcast::{LayerInfo, LayerSelector, SelectorAction};
pub use speaker::{ActiveSpeakerDetector, parse_audio_level};

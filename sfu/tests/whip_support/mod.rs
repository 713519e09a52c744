//! What `whip.rs` is made of besides its checks: the publisher, the hand-off consumer, HTTP.

pub mod handoff;
pub mod http;
pub mod publisher;

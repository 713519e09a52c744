//! What `whip.rs` is made of besides its checks and the test kit's publisher
//! (`tessera_testkit::whip`): the hand-off consumer, decoding what it got, HTTP.

pub mod decode;
pub mod handoff;
pub mod http;

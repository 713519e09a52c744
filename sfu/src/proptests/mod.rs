//! Property tests of what the SFU parses from the network or from a client: RTP and RTCP (as
//! `rtc` parses them, then what the SFU reads from them), whole datagrams into a peer
//! connection, ICE-TCP framing, the SDP checks and helpers, and signalling messages. Each test
//! runs a bounded number of cases and asserts no panic and, for what is refused, a clear error.
//!
//! The STUN username reader and the RTCP compound splitter are private to their modules and
//! are tested there (`transport/stun/proptests.rs`, `peer/proptests.rs`), with the strategies
//! and mutations of this module.

pub(crate) mod mutate;
pub(crate) mod rtcp;

mod datagrams;
mod rtp;
mod sdp;
mod signal;
mod tcp_framing;

use proptest::test_runner::Config;

/// `cases` cases and no regression files (they would land in `sfu/proptest-regressions`; a
/// failure prints its minimal input, which belongs in a unit test).
pub(crate) fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, ..Config::default() }
}

//! Tessera's test kit: the harnesses the four crates' integration tests share, one idea per
//! module. A dev-dependency only (`publish = false`), and it depends on none of Tessera's crates,
//! so any of them can use it without a cycle; a helper that needs a crate's own types stays in
//! that crate's tests.
//!
//! Servers are real programs started on free loopback ports and stopped when their handle is
//! dropped. A missing program fails the test with the command that installs it
//! (`scripts/install-deps --with-test-servers`); nothing is skipped.

pub mod analysis;
pub mod bot;
pub mod cdp;
pub mod chromium;
pub mod files;
pub mod http;
pub mod lossy_relay;
pub mod poll;
pub mod ports;
pub mod process;
pub mod redis;
pub mod rtmp;
pub mod s3;
pub mod sync_marks;
pub mod tessera;
pub mod tls;
pub mod turn;
pub mod webhook;
pub mod whip;

//! Property tests of what the server parses from users: participant tokens and the TOML
//! config file (request bodies: `server/routes/proptests.rs`, next to their private types).
//! Each runs a bounded number of cases and asserts no panic and a clear error.

mod config;
mod tokens;

use proptest::test_runner::Config;

/// `cases` cases and no regression files (a failure prints its minimal input, which belongs
/// in a unit test).
pub(crate) fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, ..Config::default() }
}

//! One module per `tessera` subcommand; each returns the process exit code.

pub mod bot;
pub mod layouts;
pub mod serve;

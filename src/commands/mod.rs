//! One module per `tessera` subcommand; each returns the process exit code.

pub mod layouts;
pub mod serve;

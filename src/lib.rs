//! The `tessera` binary's library: command line, configuration and the HTTP server.
//!
//! Kept as a library so tests (and later issues) can build the HTTP app in-process with
//! [`server::app`] instead of only through the binary.

pub mod api_key;
pub mod bot;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod error;
pub mod hls;
pub mod http_client;
pub mod ids;
pub mod json_store;
mod locks;
pub mod logging;
pub mod media;
#[cfg(test)]
mod proptests;
pub mod recordings;
pub mod room_events;
pub mod server;
pub mod streams;
pub mod time;
pub mod tokens;
pub mod turn;
pub mod webhooks;

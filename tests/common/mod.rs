//! Helpers shared by the binary's integration tests.
#![allow(dead_code)]

pub mod bot;
pub mod camera;
pub mod http;
pub mod poll;
pub mod server;
pub mod turn;
pub mod webhooks;

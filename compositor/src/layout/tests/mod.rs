//! Tests of the layout module (no GStreamer).

mod builtins;
mod engine;
mod fixtures;
mod parse;
mod properties;

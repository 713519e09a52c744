//! Tests of the layout module (no GStreamer).

mod builtins;
mod engine;
mod fixtures;
mod hostile;
mod parse;
mod properties;

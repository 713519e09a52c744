//! Live-streaming destinations: RTMP(S) URLs whose stream keys never leave this module in
//! full, and the per-destination connection state machine (connecting, live, reconnecting,
//! failed) with exponential backoff. Plain logic: time is an argument, so tests need no clock.

mod state;
mod url;

pub use state::{DestinationState, DestinationStatus, ReconnectPolicy};
pub use url::{RtmpUrl, UrlError};

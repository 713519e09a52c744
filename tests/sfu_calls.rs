//! What the signalling protocol and the SFU do for the others in a call, end to end with
//! headless Chromium on the built-in web client and `tessera bot`s, against the whole app in
//! process: events (joined, published, mute from the page's button, active speaker, left),
//! active speaker smoothing with two browsers talking in turns, selective subscription, a
//! screen share reaching a subscriber and the room's program (from the API and from the page's
//! share button through `getDisplayMedia`), and VP9 passing through to a browser while the
//! program carries on without it. One module per concern, in `calls/`.

mod calls;
mod common;

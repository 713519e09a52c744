//! Tessera GStreamer elements.

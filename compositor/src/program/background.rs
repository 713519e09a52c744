//! The program's background picture: one solid-colour frame, repeated by a live `imagefreeze`.
//!
//! The frame is drawn once per colour; a colour change pushes one new frame, which the freeze
//! shows from its next output on (`allow-replace`). The freeze sends the same memory out at the
//! program's frame rate, on the clock: a live source for the compositor, so it composes each
//! frame when it is due, not a latency later. (`videotestsrc` filled a new 1.4 MB frame from
//! its cache 30 times a second for a picture that almost never changes.)

use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::elements::{live_src_pad, make};
use crate::error::{CompositorError, Result};
use crate::locks::lock;

/// The colour the background should show (`0xAARRGGBB`), applied to the next frames.
#[derive(Clone)]
pub(crate) struct BackgroundColor {
    picture: Arc<BackgroundPicture>,
}

impl BackgroundColor {
    /// Shows `argb` from the next output frame on. The alpha channel is ignored: the background
    /// is the opaque bottom layer.
    pub fn set(&self, argb: u32) {
        self.picture.show(argb);
    }
}

struct BackgroundPicture {
    /// The pad and the colour it shows; the lock also serialises pushes.
    state: Mutex<PictureState>,
    info: gst_video::VideoInfo,
}

struct PictureState {
    pad: gst::Pad,
    /// The freeze's sink pad, linked at `start` (once the freeze is in the program).
    sink: gst::Pad,
    shown: Option<u32>,
    wanted: u32,
}

/// The live background source (an `imagefreeze` fed by a pad of our own) and the handle that
/// sets its colour; it shows `argb` once `start`ed.
pub(crate) fn background_source(caps: &gst::Caps, argb: u32, name: &str) -> Result<(gst::Element, BackgroundColor)> {
    let freeze = make("imagefreeze", Some(name))?;
    freeze.set_property("is-live", true);
    freeze.set_property("allow-replace", true);
    let src = freeze.static_pad("src").ok_or(CompositorError::Gst("imagefreeze without src pad".into()))?;
    // A live imagefreeze reports a maximum latency of a few frames, less than the mixers' minimum
    // (jitter buffer + mixer latency), which fails latency configuration for the whole program.
    // It holds one picture and can send it any time: it has no maximum.
    src.add_probe(gst::PadProbeType::QUERY_UPSTREAM | gst::PadProbeType::PULL, |_, info| {
        if let Some(gst::PadProbeData::Query(q)) = info.data.as_mut()
            && let gst::QueryViewMut::Latency(l) = q.view_mut()
        {
            let (live, min, _) = l.result();
            l.set(live, min, gst::ClockTime::NONE);
        }
        gst::PadProbeReturn::Ok
    });
    let sink = freeze.static_pad("sink").ok_or(CompositorError::Gst("imagefreeze without sink pad".into()))?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(CompositorError::glib("background caps"))?;
    let pad = live_src_pad(name, name, caps)?;
    let picture = BackgroundPicture { state: Mutex::new(PictureState { pad, sink, shown: None, wanted: argb }), info };
    Ok((freeze, BackgroundColor { picture: Arc::new(picture) }))
}

impl BackgroundColor {
    /// Links the pad and pushes the first frame: call once the program plays (the freeze refuses
    /// data before).
    pub fn start(&self) -> Result<()> {
        let mut state = self.picture.lock();
        if !state.pad.is_linked() {
            state.pad.link(&state.sink)?;
        }
        let argb = state.wanted;
        self.picture.push(&mut state, argb)
    }

    /// Unlinks the pad: the program is stopping.
    pub fn close(&self) {
        let state = self.picture.lock();
        if let Some(peer) = state.pad.peer() {
            let _ = state.pad.unlink(&peer);
        }
        let _ = state.pad.set_active(false);
    }
}

impl BackgroundPicture {
    fn lock(&self) -> std::sync::MutexGuard<'_, PictureState> {
        lock(&self.state)
    }

    fn show(&self, argb: u32) {
        let mut state = self.lock();
        state.wanted = argb;
        // Before `start`, the first frame will carry the wanted colour.
        if state.shown.is_some_and(|shown| shown != argb & 0x00ff_ffff)
            && let Err(e) = self.push(&mut state, argb)
        {
            tracing::warn!(error = %e, "the background colour could not be changed");
        }
    }

    fn push(&self, state: &mut PictureState, argb: u32) -> Result<()> {
        // Untimed: the freeze stamps what it sends on.
        let buffer = solid_frame(&self.info, argb)?;
        state.pad.push(buffer).map_err(CompositorError::flow("pushing the background frame"))?;
        state.shown = Some(argb & 0x00ff_ffff);
        Ok(())
    }
}

/// One frame of `info` (I420) filled with `argb`, converted with the BT.601 limited-range
/// matrix the program's caps declare.
fn solid_frame(info: &gst_video::VideoInfo, argb: u32) -> Result<gst::Buffer> {
    if info.format() != gst_video::VideoFormat::I420 {
        return Err(CompositorError::Gst(format!("background format {:?} is not I420", info.format())));
    }
    let (y, u, v) = bt601_limited(argb);
    let buffer =
        gst::Buffer::with_size(info.size()).map_err(CompositorError::glib("allocating the background frame"))?;
    let mut frame = gst_video::VideoFrame::from_buffer_writable(buffer, info)
        .map_err(|_| CompositorError::Gst("mapping the background frame".into()))?;
    for (plane, value) in [(0u32, y), (1, u), (2, v)] {
        let data = frame.plane_data_mut(plane).map_err(CompositorError::glib("mapping the background frame"))?;
        data.fill(value);
    }
    Ok(frame.into_buffer())
}

/// Y'CbCr of an sRGB colour, BT.601 with limited range (16..235, 16..240).
fn bt601_limited(argb: u32) -> (u8, u8, u8) {
    let [_, r, g, b] = argb.to_be_bytes().map(|c| c as f64 / 255.0);
    let y = 16.0 + 65.481 * r + 128.553 * g + 24.966 * b;
    let cb = 128.0 - 37.797 * r - 74.203 * g + 112.0 * b;
    let cr = 128.0 + 112.0 * r - 93.786 * g - 18.214 * b;
    let q = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    (q(y), q(cb), q(cr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_and_greys_convert_to_bt601_limited_range() {
        assert_eq!(bt601_limited(0xff00_0000), (16, 128, 128));
        assert_eq!(bt601_limited(0xffff_ffff), (235, 128, 128));
        assert_eq!(bt601_limited(0xffff_0000), (81, 90, 240));
        assert_eq!(bt601_limited(0xff00_ff00), (145, 54, 34));
        assert_eq!(bt601_limited(0xff00_00ff), (41, 240, 110));
        // Alpha does not change the picture.
        assert_eq!(bt601_limited(0x00ff_0000), bt601_limited(0xffff_0000));
    }

    #[test]
    fn a_solid_frame_fills_every_plane() {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 64, 36).build().unwrap();
        let buffer = solid_frame(&info, 0xff00_00ff).unwrap();
        let frame = gst_video::VideoFrame::from_buffer_readable(buffer, &info).unwrap();
        assert!(frame.plane_data(0).unwrap().iter().all(|&p| p == 41));
        assert!(frame.plane_data(1).unwrap().iter().all(|&p| p == 240));
        assert!(frame.plane_data(2).unwrap().iter().all(|&p| p == 110));
    }
}

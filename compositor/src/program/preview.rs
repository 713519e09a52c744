//! The live preview: a cheap branch on the composited raw video, before the encoder, that keeps
//! the latest still as a small JPEG. `leaky queue → videorate (2 fps, drop only) → videoscale →
//! jpegenc → appsink`: the queue holds one frame and drops the older one when the branch is
//! behind, so the preview can never slow the encoder or the outputs. The branch is attached on
//! the first request and taken off again when nobody has asked for a still for a while.

use super::elements::{add_chain, capsfilter, make};
use crate::error::{CompositorError, Result};
use crate::locks::{lock, wait_timeout};
use gst::prelude::*;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Stills a second.
pub const PREVIEW_FPS: i32 = 2;
/// The longer side of a still, in pixels (never more than the program's).
pub const PREVIEW_MAX_SIDE: u32 = 640;
/// A branch nobody asked a still from for this long is detached.
pub(crate) const PREVIEW_IDLE: Duration = Duration::from_secs(30);

/// One still of the program.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// A baseline JPEG.
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Program running time of the frame.
    pub position: Duration,
    /// Counts stills since the branch was attached (changes with every new still).
    pub sequence: u64,
}

/// The still size for a program canvas: the longer side at most [`PREVIEW_MAX_SIDE`], both
/// even (the encoder's chroma subsampling), the aspect ratio kept.
pub fn preview_size(width: u32, height: u32) -> (u32, u32) {
    let longer = width.max(height).max(1);
    let scale = (PREVIEW_MAX_SIDE as f64 / longer as f64).min(1.0);
    let even = |v: u32| ((v as f64 * scale / 2.0).round() as u32 * 2).max(2);
    (even(width), even(height))
}

#[derive(Default)]
struct Latest {
    still: Option<Preview>,
    requested: Option<Instant>,
}

/// What the branch's sink and the callers share.
pub(crate) struct Shared {
    latest: Mutex<Latest>,
    arrived: Condvar,
    idle_after: Duration,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Latest> {
        lock(&self.latest)
    }

    /// Notes a request; the branch stays attached while requests keep coming.
    pub fn touch(&self) {
        self.lock().requested = Some(Instant::now());
    }

    pub fn idle(&self) -> bool {
        self.lock().requested.is_none_or(|t| t.elapsed() >= self.idle_after)
    }

    /// The latest still, waiting up to `timeout` for the first one.
    pub fn wait(&self, timeout: Duration) -> Result<Preview> {
        let deadline = Instant::now() + timeout;
        let mut latest = self.lock();
        loop {
            if let Some(p) = &latest.still {
                return Ok(p.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CompositorError::Timeout("the first preview still"));
            }
            latest = wait_timeout(&self.arrived, latest, left);
        }
    }

    fn store(&self, still: Preview) {
        self.lock().still = Some(still);
        self.arrived.notify_all();
    }
}

pub(crate) struct PreviewBranch {
    pub bin: gst::Bin,
    pub tee_pad: gst::Pad,
    pub shared: Arc<Shared>,
}

/// Builds the branch (not yet in the pipeline). `on_still` runs on the branch's streaming
/// thread after each still, e.g. to notice the branch went idle.
pub(crate) fn build_bin(
    program_width: u32,
    program_height: u32,
    idle_after: Duration,
    on_still: impl Fn(&Shared) + Send + Sync + 'static,
) -> Result<(gst::Bin, Arc<Shared>)> {
    let bin = gst::Bin::builder().name("preview").build();
    let queue = make("queue", Some("preview-queue"))?;
    queue.set_property("max-size-buffers", 1u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    queue.set_property_from_str("leaky", "downstream");
    let rate = make("videorate", Some("preview-rate"))?;
    rate.set_property("drop-only", true);
    let (w, h) = preview_size(program_width, program_height);
    let caps = gst::Caps::builder("video/x-raw")
        .field("width", w as i32)
        .field("height", h as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .field("framerate", gst::Fraction::new(PREVIEW_FPS, 1))
        .build();
    let jpeg = make("jpegenc", Some("preview-jpeg"))?;
    jpeg.set_property("quality", 80i32);
    let sink = make("appsink", Some("preview-sink"))?;
    sink.set_property("sync", false);
    sink.set_property("async", false);
    sink.set_property("max-buffers", 1u32);
    sink.set_property("drop", true);
    add_chain(&bin, &[queue.clone(), rate, make("videoscale", None)?, capsfilter(caps)?, jpeg, sink.clone()])?;
    let target = queue.static_pad("sink").ok_or_else(|| CompositorError::Gst("queue without sink".into()))?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&target)?.name("sink").build())?;

    let shared = Arc::new(Shared { latest: Mutex::default(), arrived: Condvar::new(), idle_after });
    let appsink = sink.downcast::<gst_app::AppSink>().map_err(|_| CompositorError::Gst("appsink".into()))?;
    let store = shared.clone();
    let mut sequence = 0u64;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some((jpeg, position)) = still_of(&sample) {
                    sequence += 1;
                    store.store(Preview { jpeg, width: w, height: h, position, sequence });
                    on_still(&store);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok((bin, shared))
}

/// The JPEG bytes of a sample and its program running time.
fn still_of(sample: &gst::Sample) -> Option<(Vec<u8>, Duration)> {
    let buffer = sample.buffer()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?.clone();
    let position =
        buffer.pts().and_then(|pts| segment.to_running_time(pts)).map(|t| Duration::from_nanos(t.nseconds()));
    let jpeg = buffer.map_readable().ok()?.to_vec();
    Some((jpeg, position.unwrap_or_default()))
}

// The program's side: attaching the branch on demand and detaching it when idle.
use super::{Inner, Program};
use std::sync::atomic::Ordering;

impl Program {
    /// The latest still of the composited program (a JPEG at most 640 pixels on its longer
    /// side, renewed [`PREVIEW_FPS`] times a second). The first call attaches the preview
    /// branch and waits up to `timeout` for its first still; the branch is detached again
    /// when nobody asked for 30 s. The preview never keeps a program running (see
    /// [`Program::is_idle`]) and never slows its outputs.
    pub fn preview(&self, timeout: Duration) -> Result<Preview> {
        Inner::preview(&self.inner)?.wait(timeout)
    }

    /// How long the preview branch stays without requests (30 s by default; applies to the
    /// next attachment).
    pub fn set_preview_idle_timeout(&self, idle: Duration) {
        *lock(&self.inner.preview_idle) = idle;
    }

    /// Whether the preview branch is attached.
    pub fn preview_attached(&self) -> bool {
        lock(&self.inner.preview).is_some()
    }
}

impl Inner {
    /// The preview branch's shared state, attaching the branch if needed.
    pub(super) fn preview(inner: &Arc<Inner>) -> Result<Arc<Shared>> {
        if !inner.running.load(Ordering::SeqCst) {
            return Err(CompositorError::NotRunning);
        }
        let _t = lock(&inner.topology);
        let mut slot = lock(&inner.preview);
        if let Some(branch) = slot.as_ref() {
            branch.shared.touch();
            return Ok(branch.shared.clone());
        }
        let weak = Arc::downgrade(inner);
        let (bin, shared) =
            build_bin(inner.config.width, inner.config.height, *lock(&inner.preview_idle), move |shared| {
                if shared.idle()
                    && let Some(inner) = weak.upgrade()
                {
                    // Not from the streaming thread: detaching stops this very thread.
                    let weak = Arc::downgrade(&inner);
                    inner.pipeline.call_async(move |_| {
                        if let Some(inner) = weak.upgrade() {
                            inner.detach_idle_preview();
                        }
                    });
                }
            })?;
        shared.touch();
        inner.pipeline.add(&bin)?;
        bin.sync_state_with_parent()?;
        let linked = inner
            .primary
            .video
            .raw_tee
            .request_pad_simple("src_%u")
            .ok_or(CompositorError::Gst("tee refused a pad".into()))
            .and_then(|tee_pad| {
                let sink = bin.static_pad("sink").ok_or(CompositorError::Gst("no preview pad".into()))?;
                match tee_pad.link(&sink) {
                    Ok(_) => Ok(tee_pad),
                    Err(e) => {
                        inner.primary.video.raw_tee.release_request_pad(&tee_pad);
                        Err(e.into())
                    }
                }
            });
        let tee_pad = match linked {
            Ok(p) => p,
            Err(e) => {
                inner.remove_bin(&bin);
                return Err(e);
            }
        };
        tracing::info!("preview attached");
        *slot = Some(PreviewBranch { bin, tee_pad, shared: shared.clone() });
        Ok(shared)
    }

    pub(super) fn detach_idle_preview(&self) {
        let _t = lock(&self.topology);
        let mut slot = lock(&self.preview);
        if !slot.as_ref().is_some_and(|b| b.shared.idle()) {
            return;
        }
        let Some(branch) = slot.take() else { return };
        if let Some(sink) = branch.bin.static_pad("sink") {
            let _ = branch.tee_pad.unlink(&sink);
        }
        self.primary.video.raw_tee.release_request_pad(&branch.tee_pad);
        self.remove_bin(&branch.bin);
        tracing::info!("preview detached (idle)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stills_keep_the_aspect_ratio_within_640() {
        assert_eq!(preview_size(1280, 720), (640, 360));
        assert_eq!(preview_size(1920, 1080), (640, 360));
        assert_eq!(preview_size(720, 1280), (360, 640));
        assert_eq!(preview_size(640, 480), (640, 480));
        assert_eq!(preview_size(320, 240), (320, 240));
        assert_eq!(preview_size(852, 480), (640, 360));
    }
}

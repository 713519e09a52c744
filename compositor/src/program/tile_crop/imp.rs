use crate::layout::Rect;
use crate::locks::lock;
use gst::glib;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::{VideoFormat, VideoFrameFlags, VideoInfo, VideoMeta};
use std::sync::{LazyLock, Mutex};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("tesseratilecrop", gst::DebugColorFlags::empty(), Some("Tessera tile crop"))
});

/// Planar formats whose planes can start anywhere: the decoders' outputs.
const FORMATS: &[VideoFormat] = &[
    VideoFormat::I420,
    VideoFormat::Yv12,
    VideoFormat::Y42b,
    VideoFormat::Y444,
    VideoFormat::Nv12,
    VideoFormat::Nv21,
    VideoFormat::I42010le,
];

/// What the negotiated caps do: set in `set_caps`, read per buffer.
#[derive(Default)]
struct Negotiated {
    input: Option<VideoInfo>,
    /// The crop in effect (already aligned to the chroma grid), None when passing through.
    crop: Option<Rect>,
}

/// Lock order: `wanted` and `negotiated` are leaves, never held together.
#[derive(Default)]
pub struct TileCrop {
    /// What the scene asked for; any thread.
    pub(super) wanted: Mutex<Option<Rect>>,
    negotiated: Mutex<Negotiated>,
}

/// The crop moved onto the chroma grid of `info`'s format, if it fits inside the frame.
fn fit(crop: Rect, info_w: u32, info_h: u32, format: VideoFormat) -> Option<Rect> {
    let finfo = gst_video::VideoFormatInfo::from_format(format);
    // Chroma subsampling of the most subsampled component: the crop origin must sit on it.
    let w_sub = finfo.w_sub().iter().copied().max().unwrap_or(0);
    let h_sub = finfo.h_sub().iter().copied().max().unwrap_or(0);
    let x = u32::try_from(crop.x).ok()? >> w_sub << w_sub;
    let y = u32::try_from(crop.y).ok()? >> h_sub << h_sub;
    let inside = crop.width > 0
        && crop.height > 0
        && x.checked_add(crop.width)? <= info_w
        && y.checked_add(crop.height)? <= info_h;
    let whole = crop.width == info_w && crop.height == info_h;
    (inside && !whole).then_some(Rect { x: x as i32, y: y as i32, width: crop.width, height: crop.height })
}

fn size_of(s: &gst::StructureRef) -> Option<(u32, u32, VideoFormat)> {
    let w = u32::try_from(s.get::<i32>("width").ok()?).ok()?;
    let h = u32::try_from(s.get::<i32>("height").ok()?).ok()?;
    let f = VideoFormat::from_string(s.get::<&str>("format").ok()?);
    Some((w, h, f))
}

#[glib::object_subclass]
impl ObjectSubclass for TileCrop {
    const NAME: &'static str = "TesseraTileCrop";
    type Type = super::TileCrop;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for TileCrop {}
impl GstObjectImpl for TileCrop {}

impl ElementImpl for TileCrop {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Tessera tile crop",
                "Filter/Effect/Video",
                "Crops raw video without copying (plane offsets in the video meta)",
                "Tessera",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new().format_list(FORMATS.iter().copied()).build();
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .filter_map(|dir| {
                    let name = if dir == gst::PadDirection::Src { "src" } else { "sink" };
                    gst::PadTemplate::new(name, dir, gst::PadPresence::Always, &caps).ok()
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for TileCrop {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let wanted = *lock(&self.wanted);
        let mut out = caps.clone();
        for s in out.make_mut().iter_mut() {
            if direction == gst::PadDirection::Sink {
                // A fixed input size maps to the crop's size; anything else passes as it is.
                if let (Some(c), Some((w, h, f))) = (wanted, size_of(s))
                    && let Some(c) = fit(c, w, h, f)
                {
                    s.set("width", c.width as i32);
                    s.set("height", c.height as i32);
                }
            } else {
                // Any input at least as large could be cropped to this.
                s.set("width", gst::IntRange::new(1, i32::MAX));
                s.set("height", gst::IntRange::new(1, i32::MAX));
            }
        }
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let input = VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "input caps are not raw video: {incaps}"))?;
        let output = VideoInfo::from_caps(outcaps)
            .map_err(|_| gst::loggable_error!(CAT, "output caps are not raw video: {outcaps}"))?;
        let crop = if (input.width(), input.height()) == (output.width(), output.height()) {
            None
        } else {
            // The scene may have changed its mind since the caps were chosen: keep its origin
            // where it still fits, the size is the one negotiated.
            let wanted = lock(&self.wanted).unwrap_or_default();
            let x = wanted.x.clamp(0, (input.width() - output.width().min(input.width())) as i32);
            let y = wanted.y.clamp(0, (input.height() - output.height().min(input.height())) as i32);
            let r = Rect { x, y, width: output.width(), height: output.height() };
            Some(fit(r, input.width(), input.height(), input.format()).ok_or_else(|| {
                gst::loggable_error!(CAT, "cannot crop {}x{} to {outcaps}", input.width(), input.height())
            })?)
        };
        gst::debug!(CAT, imp = self, "crop {crop:?} of {}x{}", input.width(), input.height());
        *lock(&self.negotiated) = Negotiated { input: Some(input), crop };
        Ok(())
    }

    fn propose_allocation(
        &self,
        decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        self.parent_propose_allocation(decide_query, query)?;
        // A crop is plane offsets in the video meta, so frames laid out any way work: the decoder
        // can hand over its own memory (libvpx's frame, with its borders) instead of copying it
        // into a tightly packed buffer.
        query.add_allocation_meta::<VideoMeta>(None);
        Ok(())
    }

    fn prepare_output_buffer(
        &self,
        inbuf: gst_base::subclass::base_transform::InputBuffer,
    ) -> Result<gst_base::subclass::base_transform::PrepareOutputBufferSuccess, gst::FlowError> {
        use gst_base::prelude::BaseTransformExt;
        use gst_base::subclass::base_transform::{InputBuffer, PrepareOutputBufferSuccess};
        if self.obj().is_passthrough() {
            return Ok(PrepareOutputBufferSuccess::InputBuffer);
        }
        // A new buffer object sharing the memory: its video meta is ours to change, while the
        // decoder's pooled buffer (and its locked meta) stays as it was.
        let buf = match inbuf {
            InputBuffer::Readable(b) => b.copy(),
            InputBuffer::Writable(b) => b.copy(),
        };
        Ok(PrepareOutputBufferSuccess::Buffer(buf))
    }

    fn transform(&self, _inbuf: &gst::Buffer, outbuf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let neg = lock(&self.negotiated);
        let (Some(info), Some(crop)) = (neg.input.as_ref(), neg.crop) else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let n = info.n_planes() as usize;
        // The frame's layout: from the decoder's meta if it has one, else the caps' default.
        let (mut offsets, strides, flags) = match outbuf.meta::<VideoMeta>() {
            Some(m) => (m.offset()[..n].to_vec(), m.stride()[..n].to_vec(), m.video_frame_flags()),
            None => (info.offset()[..n].to_vec(), info.stride()[..n].to_vec(), VideoFrameFlags::empty()),
        };
        let finfo = info.format_info();
        for (plane, offset) in offsets.iter_mut().enumerate() {
            // The first component stored in this plane gives its subsampling and pixel size.
            let Some(c) = (0..finfo.n_components() as usize).find(|&c| finfo.plane()[c] as usize == plane) else {
                continue;
            };
            let row = (crop.y as u32 >> finfo.h_sub()[c]) as usize * strides[plane].max(0) as usize;
            let col = (crop.x as u32 >> finfo.w_sub()[c]) as usize * finfo.pixel_stride()[c].max(0) as usize;
            *offset += row + col;
        }
        if let Some(m) = outbuf.meta_mut::<VideoMeta>() {
            m.remove().map_err(|_| {
                gst::error!(CAT, imp = self, "cannot replace a locked video meta");
                gst::FlowError::Error
            })?;
        }
        VideoMeta::add_full(outbuf, flags, info.format(), crop.width, crop.height, &offsets, &strides).map_err(
            |e| {
                gst::error!(CAT, imp = self, "cannot add the crop's video meta: {e}");
                gst::FlowError::Error
            },
        )?;
        Ok(gst::FlowSuccess::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst::prelude::*;
    use gst_video::prelude::*;

    #[test]
    fn fit_aligns_to_chroma_and_rejects_what_does_not_fit() {
        gst::init().expect("GStreamer");
        let r = |x, y, width, height| Rect { x, y, width, height };
        assert_eq!(fit(r(7, 5, 100, 50), 640, 360, VideoFormat::I420), Some(r(6, 4, 100, 50)));
        assert_eq!(fit(r(7, 5, 100, 50), 640, 360, VideoFormat::Y444), Some(r(7, 5, 100, 50)));
        assert_eq!(fit(r(6, 6, 628, 348), 640, 360, VideoFormat::I420), Some(r(6, 6, 628, 348)));
        assert_eq!(fit(r(6, 6, 640, 348), 640, 360, VideoFormat::I420), None, "too wide");
        assert_eq!(fit(r(-2, 0, 100, 100), 640, 360, VideoFormat::I420), None, "negative");
        assert_eq!(fit(r(0, 0, 640, 360), 640, 360, VideoFormat::I420), None, "the whole frame");
        assert_eq!(fit(r(0, 0, 0, 10), 640, 360, VideoFormat::I420), None, "empty");
    }

    /// An I420 frame whose luma is the column and whose chroma planes are the row (of their
    /// own grids), so any sample tells where it came from.
    fn gradient_frame(info: &VideoInfo) -> gst::Buffer {
        let mut buf = gst::Buffer::with_size(info.size()).expect("buffer");
        {
            let b = buf.get_mut().expect("writable");
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(b, info).expect("map");
            for plane in 0..3u32 {
                let stride = frame.plane_stride()[plane as usize] as usize;
                let (w, h) =
                    if plane == 0 { (info.width(), info.height()) } else { (info.width() / 2, info.height() / 2) };
                let data = frame.plane_data_mut(plane).expect("plane");
                for y in 0..h as usize {
                    for x in 0..w as usize {
                        data[y * stride + x] = if plane == 0 { x as u8 } else { y as u8 };
                    }
                }
            }
        }
        buf
    }

    #[test]
    fn crops_without_copying_and_follows_changes() {
        gst::init().expect("GStreamer");
        let crop = super::super::TileCrop::new("crop");
        let mut h = gst_check::Harness::with_element(&crop.upcast_element(), Some("sink"), Some("src"));
        let info = VideoInfo::builder(VideoFormat::I420, 200, 100).build().expect("info");
        h.set_src_caps(info.to_caps().expect("caps"));
        crop.set_crop(Some(Rect { x: 21, y: 10, width: 120, height: 60 }));
        let input = gradient_frame(&info);
        let in_mem = input.peek_memory(0).as_ptr();
        h.push(input).expect("push");
        let out = h.pull().expect("pull");
        let caps = h.sinkpad().and_then(|p| p.current_caps()).expect("output caps");
        let out_info = VideoInfo::from_caps(&caps).expect("output info");
        assert_eq!((out_info.width(), out_info.height()), (120, 60));
        assert_eq!(out.peek_memory(0).as_ptr(), in_mem, "same memory: nothing copied");
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(out.as_ref(), &out_info).expect("map");
        // x 21 -> 20 (the chroma grid); rows of the chroma planes start at 10 / 2.
        assert_eq!(frame.plane_data(0).expect("y")[0], 20);
        assert_eq!(frame.plane_data(0).expect("y")[119], 139);
        let ystride = frame.plane_stride()[0] as usize;
        assert_eq!(frame.plane_data(0).expect("y")[59 * ystride], 20);
        assert_eq!(frame.plane_data(1).expect("u")[0], 5);
        assert_eq!(frame.plane_data(2).expect("v")[frame.plane_stride()[2] as usize * 29], 34);
        drop(frame);

        // No crop: the whole frame passes through; a crop larger than the frame does too.
        for wanted in [None, Some(Rect { x: 0, y: 0, width: 400, height: 100 })] {
            crop.set_crop(wanted);
            h.push(gradient_frame(&info)).expect("push");
            let _ = h.pull().expect("pull");
            let caps = h.sinkpad().and_then(|p| p.current_caps()).expect("output caps");
            let out_info = VideoInfo::from_caps(&caps).expect("output info");
            assert_eq!((out_info.width(), out_info.height()), (200, 100), "{wanted:?}");
        }
    }
}

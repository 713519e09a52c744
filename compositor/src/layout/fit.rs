//! Fitting a source picture into a cell: `cover` crops, `contain` letterboxes.
//! Sizes are rounded to even pixels (I420 and friends subsample chroma by 2).

use super::geometry::{Rect, VideoSize, floor_even, round_even};

/// True if the source is strictly wider (width/height) than the cell.
fn source_is_wider(source: VideoSize, cell: Rect) -> bool {
    u64::from(source.width) * u64::from(cell.height) > u64::from(source.height) * u64::from(cell.width)
}

/// `v` rounded to even, kept within `1..=limit` (preferring 2 over 1).
fn even_within(v: f64, limit: u32) -> u32 {
    let limit = i64::from(limit);
    let v = round_even(v).clamp(limit.min(2), limit);
    u32::try_from(v).unwrap_or(0)
}

/// `(outer - inner) / 2` floored to even: centres with even offsets.
fn centred_offset(outer: u32, inner: u32) -> i32 {
    let offset = floor_even((i64::from(outer) - i64::from(inner)).max(0) / 2);
    i32::try_from(offset).unwrap_or(0)
}

/// The centred source rectangle with the cell's aspect ratio, or `None` when
/// that is the whole frame. `source` and `cell` must be non-empty.
pub(crate) fn cover_crop(source: VideoSize, cell: Rect) -> Option<Rect> {
    if let Some(crop) = near_size_crop(source, cell) {
        return Some(crop);
    }
    let (sw, sh) = (f64::from(source.width), f64::from(source.height));
    let (cw, ch) = (f64::from(cell.width), f64::from(cell.height));
    let crop = if source_is_wider(source, cell) {
        let width = even_within(sh * cw / ch, source.width);
        Rect { x: centred_offset(source.width, width), y: 0, width, height: source.height }
    } else {
        let height = even_within(sw * ch / cw, source.height);
        Rect { x: 0, y: centred_offset(source.height, height), width: source.width, height }
    };
    (crop.width != source.width || crop.height != source.height).then_some(crop)
}

/// A source at most 5% larger than the cell in both directions is shown at 1:1, its middle
/// cropped to the cell, rather than scaled down by a few percent: scaling I420 is the
/// compositor's most expensive step (about 0.035 core per 640x360 tile on GStreamer 1.22),
/// and a grid's padding makes every 640x360 camera a little larger than its cell.
fn near_size_crop(source: VideoSize, cell: Rect) -> Option<Rect> {
    let fits = |s: u32, c: u32| s >= c && f64::from(s) <= f64::from(c) * 1.05;
    if !(fits(source.width, cell.width) && fits(source.height, cell.height)) {
        return None;
    }
    if source.width == cell.width && source.height == cell.height {
        return None;
    }
    Some(Rect {
        x: centred_offset(source.width, cell.width),
        y: centred_offset(source.height, cell.height),
        width: cell.width,
        height: cell.height,
    })
}

/// The largest rectangle with the source's aspect ratio centred inside `cell`.
/// `source` and `cell` must be non-empty.
pub(crate) fn contain_rect(source: VideoSize, cell: Rect) -> Rect {
    let (sw, sh) = (f64::from(source.width), f64::from(source.height));
    let (cw, ch) = (f64::from(cell.width), f64::from(cell.height));
    let (width, height) = if source_is_wider(source, cell) {
        (cell.width, even_within(cw * sh / sw, cell.height))
    } else {
        (even_within(ch * sw / sh, cell.width), cell.height)
    };
    Rect {
        x: cell.x + centred_offset(cell.width, width),
        y: cell.y + centred_offset(cell.height, height),
        width,
        height,
    }
}

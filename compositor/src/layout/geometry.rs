//! Pixel geometry and the even-pixel rounding video formats prefer.

/// Output canvas size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
}

/// A decoded video frame size; `0x0` means "not known yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSize {
    pub width: u32,
    pub height: u32,
}

impl VideoSize {
    /// `None` while the size is unknown (a zero dimension).
    pub(crate) fn known(self) -> Option<VideoSize> {
        (self.width > 0 && self.height > 0).then_some(self)
    }
}

/// A pixel rectangle (canvas or source-frame coordinates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn right(&self) -> i64 {
        i64::from(self.x) + i64::from(self.width)
    }

    pub fn bottom(&self) -> i64 {
        i64::from(self.y) + i64::from(self.height)
    }

    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// True if `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x && other.y >= self.y && other.right() <= self.right() && other.bottom() <= self.bottom()
    }

    /// True if the two rectangles share any area (touching edges do not count).
    pub fn overlaps(&self, other: &Rect) -> bool {
        i64::from(self.x) < other.right()
            && i64::from(other.x) < self.right()
            && i64::from(self.y) < other.bottom()
            && i64::from(other.y) < self.bottom()
    }
}

/// Pixel rectangle with `i64` edges, for arithmetic without overflow worries.
/// Only built from canvas-bounded values, so converting back is lossless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Box64 {
    pub x0: i64,
    pub y0: i64,
    pub x1: i64,
    pub y1: i64,
}

impl Box64 {
    pub fn width(&self) -> i64 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> i64 {
        self.y1 - self.y0
    }

    pub fn inset(&self, by: i64) -> Box64 {
        Box64 { x0: self.x0 + by, y0: self.y0 + by, x1: self.x1 - by, y1: self.y1 - by }
    }

    pub fn to_rect(self) -> Rect {
        Rect {
            x: clamp_i32(self.x0),
            y: clamp_i32(self.y0),
            width: clamp_u32(self.width()),
            height: clamp_u32(self.height()),
        }
    }
}

fn clamp_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// Nearest even integer (ties away from zero), for non-negative values.
pub(crate) fn round_even(v: f64) -> i64 {
    ((v / 2.0).round() as i64) * 2
}

/// Largest even integer `<= v`, for non-negative values.
pub(crate) fn floor_even(v: i64) -> i64 {
    v - v.rem_euclid(2)
}

//! Arranging a region's tiles in a grid of cells.

use super::geometry::{Box64, Rect, floor_even, round_even};

/// Aspect ratio used to compare grid shapes when a region sets no `cell_aspect`:
/// most cameras send 16:9.
const DEFAULT_TILE_ASPECT: f64 = 16.0 / 9.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GridShape {
    pub rows: u32,
    pub cols: u32,
}

/// How a region lays out its cells.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GridSpec {
    /// Area inside the region's padding.
    pub area: Box64,
    /// Space between cells.
    pub gap: i64,
    pub max_rows: u32,
    pub max_cols: u32,
    /// Fixed cell aspect (cells shrink to it), or `None` to stretch cells.
    pub cell_aspect: Option<f64>,
}

impl GridSpec {
    /// Cell size in pixels for a shape: equal cells, even sizes.
    fn cell_size(&self, shape: GridShape) -> (i64, i64) {
        let side = |total: i64, count: u32| {
            let count = i64::from(count);
            floor_even((total - (count - 1) * self.gap) / count).max(0)
        };
        let (w, h) = (side(self.area.width(), shape.cols), side(self.area.height(), shape.rows));
        match self.cell_aspect {
            Some(aspect) if w as f64 > h as f64 * aspect => (round_even(h as f64 * aspect).min(w), h),
            Some(aspect) => (w, round_even(w as f64 / aspect).min(h)),
            None => (w, h),
        }
    }

    /// Chooses rows x cols for `n` tiles (`1 <= n <= max_rows * max_cols`).
    ///
    /// Candidates have no empty row or column: `cols <= n` and
    /// `rows = ceil(n / cols)`, so only the last row can be short (by fewer than
    /// `cols` tiles). Among them, the winner maximises the area of the largest
    /// picture of the tile aspect (`cell_aspect`, else 16:9) that fits a cell;
    /// ties go to fewer empty slots, then more columns (side by side reads
    /// more naturally than stacked).
    pub fn choose_shape(&self, n: usize) -> GridShape {
        let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        let aspect = self.cell_aspect.unwrap_or(DEFAULT_TILE_ASPECT);
        let mut best: Option<(GridShape, f64, u32)> = None;
        for cols in 1..=self.max_cols.min(n) {
            let rows = n.div_ceil(cols);
            if rows > self.max_rows {
                continue;
            }
            let shape = GridShape { rows, cols };
            let (w, h) = self.cell_size(shape);
            let (w, h) = (w as f64, h as f64);
            let score = if w > h * aspect { h * aspect * h } else { w * w / aspect };
            let empty = rows * cols - n;
            let better = match best {
                None => true,
                Some((_, best_score, best_empty)) => {
                    // Relative tolerance: equal areas computed differently still tie.
                    let tolerance = best_score.abs() * 1e-9;
                    score > best_score + tolerance || ((score - best_score).abs() <= tolerance && empty <= best_empty)
                }
            };
            if better {
                best = Some((shape, score, empty));
            }
        }
        // Unreachable for valid input (cols = max_cols always fits); be safe anyway.
        best.map_or(GridShape { rows: self.max_rows, cols: self.max_cols }, |(shape, _, _)| shape)
    }

    /// Cells for `n` tiles, row-major. The block of cells is centred in the area
    /// and each row within it (so a short last row is centred horizontally).
    /// Cells may be empty (zero-sized) when the area is too small; callers skip
    /// those.
    pub fn cells(&self, n: usize) -> Vec<Rect> {
        if n == 0 {
            return Vec::new();
        }
        let shape = self.choose_shape(n);
        let (cw, ch) = self.cell_size(shape);
        let (cols, rows) = (i64::from(shape.cols), i64::from(shape.rows));
        let block_h = rows * ch + (rows - 1) * self.gap;
        let top = self.area.y0 + floor_even((self.area.height() - block_h).max(0) / 2);
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        (0..n)
            .map(|i| {
                let (row, col) = (i / cols, i % cols);
                let in_row = (n - row * cols).min(cols);
                // Each row is centred on its own, so a short last row is too.
                let row_w = in_row * cw + (in_row - 1) * self.gap;
                let left = self.area.x0 + floor_even((self.area.width() - row_w).max(0) / 2);
                let x0 = left + col * (cw + self.gap);
                let y0 = top + row * (ch + self.gap);
                Box64 { x0, y0, x1: x0 + cw, y1: y0 + ch }.to_rect()
            })
            .collect()
    }
}

//! Property tests: random rooms x every built-in layout x the canvases in
//! `fixtures::CANVASES`.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::fixtures::{CANVASES, builtin, size};
use crate::layout::{Canvas, Fit, Layout, LayoutEngine, ParticipantView, Rect, Tile, TileSource, VideoSize};

/// Absent (mostly for screens), known size, or `0x0` (not decoded yet).
fn video(absent_weight: u32) -> impl Strategy<Value = Option<VideoSize>> {
    prop_oneof![
        absent_weight => Just(None),
        1 => Just(Some(size(0, 0))),
        4 => (2u32..=3840, 2u32..=2160).prop_map(|(w, h)| Some(size(w, h))),
    ]
}

/// 0..=20 participants with increasing join orders (ids `p0..`), random
/// cameras, screens, speaker ranks (duplicates allowed) and pins.
fn room() -> impl Strategy<Value = Vec<ParticipantView>> {
    let member = (video(1), video(6), prop::option::weighted(0.5, 0u32..8), prop::bool::weighted(0.15), 1u64..50);
    prop::collection::vec(member, 0..=20).prop_map(|members| {
        let mut join_order = 0;
        members
            .into_iter()
            .enumerate()
            .map(|(i, (camera, screen, speaker_rank, pinned, gap))| {
                join_order += gap;
                ParticipantView {
                    id: format!("p{i}"),
                    name: format!("Person {i}"),
                    join_order,
                    speaker_rank,
                    pinned,
                    camera,
                    screen,
                }
            })
            .collect()
    })
}

fn all_builtins() -> Vec<Layout> {
    Layout::builtin_names().iter().map(|n| builtin(n)).collect()
}

fn canvas_rect(canvas: Canvas) -> Rect {
    Rect { x: 0, y: 0, width: canvas.width, height: canvas.height }
}

fn is_even(r: &Rect) -> bool {
    [i64::from(r.x), i64::from(r.y), i64::from(r.width), i64::from(r.height)].iter().all(|v| v % 2 == 0)
}

fn source_size(room: &[ParticipantView], tile: &Tile) -> Option<VideoSize> {
    let p = room.iter().find(|p| p.id == tile.participant)?;
    match tile.source {
        TileSource::Camera => p.camera,
        TileSource::Screen => p.screen,
        TileSource::Placeholder => None,
    }
    .filter(|s| s.width > 0 && s.height > 0)
}

/// `a / b` matches `c / d` to within `slack` pixels on one derived side.
fn same_aspect(a: u32, b: u32, c: u32, d: u32, slack: f64) -> bool {
    let (a, b, c, d) = (f64::from(a), f64::from(b), f64::from(c), f64::from(d));
    (a - b * c / d).abs() <= slack || (b - a * d / c).abs() <= slack
}

/// Invariants every layout's output satisfies.
fn check_tiles(layout: &Layout, room: &[ParticipantView], canvas: Canvas, tiles: &[Tile]) -> Result<(), TestCaseError> {
    let whole = canvas_rect(canvas);
    let mut cameras = BTreeSet::new();
    let mut screens = BTreeSet::new();
    let mut zorders = BTreeSet::new();
    for t in tiles {
        let region = &layout.regions()[t.region];
        prop_assert!(!t.cell.is_empty() && !t.rect.is_empty(), "{t:?}");
        prop_assert!(whole.contains(&t.cell), "cell off canvas: {t:?}");
        prop_assert!(t.cell.contains(&t.rect), "rect outside its cell: {t:?}");
        prop_assert!(is_even(&t.cell) && is_even(&t.rect), "odd pixels: {t:?}");
        prop_assert!(t.zorder > 0 && zorders.insert(t.zorder), "zorder: {t:?}");

        let p = room.iter().find(|p| p.id == t.participant);
        prop_assert!(p.is_some(), "unknown participant {t:?}");
        let Some(p) = p else { continue };
        let once = match t.source {
            TileSource::Camera => p.camera.is_some() && cameras.insert(&p.id),
            TileSource::Placeholder => p.camera.is_none() && cameras.insert(&p.id),
            TileSource::Screen => p.screen.is_some() && screens.insert(&p.id),
        };
        prop_assert!(once, "source placed twice or absent: {t:?}");
        prop_assert_eq!(&t.label, &region.shows_labels(layout.labels()).then(|| p.name.clone()));

        let fit = if t.source == TileSource::Screen { region.screen_fit } else { region.fit };
        match (source_size(room, t), fit) {
            (None, _) => prop_assert!(t.rect == t.cell && t.crop.is_none(), "{t:?}"),
            (Some(_), Fit::Contain) => prop_assert!(t.crop.is_none()),
            (Some(s), Fit::Cover) => {
                prop_assert_eq!(t.rect, t.cell);
                if let Some(c) = t.crop {
                    let frame = Rect { x: 0, y: 0, width: s.width, height: s.height };
                    prop_assert!(!c.is_empty() && frame.contains(&c), "crop {c:?} outside {s:?}");
                    prop_assert!(
                        same_aspect(c.width, c.height, t.cell.width, t.cell.height, 2.0),
                        "crop {c:?} not the aspect of {t:?}"
                    );
                }
            }
        }
        if let (Some(s), Fit::Contain) = (source_size(room, t), fit) {
            let r = t.rect;
            prop_assert!(same_aspect(r.width, r.height, s.width, s.height, 2.0), "{r:?} vs {s:?}");
            // As large as fits: it touches the cell on two opposite sides.
            prop_assert!(r.width == t.cell.width || r.height == t.cell.height, "{t:?}");
            let (left, right) = (r.x - t.cell.x, t.cell.right() - r.right());
            let (top, bottom) = (r.y - t.cell.y, t.cell.bottom() - r.bottom());
            prop_assert!(
                (i64::from(left) - right).abs() <= 2 && (i64::from(top) - bottom).abs() <= 2,
                "not centred: {t:?}"
            );
        }
    }

    let mut by_region: BTreeMap<usize, Vec<&Tile>> = BTreeMap::new();
    for t in tiles {
        by_region.entry(t.region).or_default().push(t);
    }
    for (index, region_tiles) in by_region {
        prop_assert!(region_tiles.len() <= layout.regions()[index].capacity());
        for (i, a) in region_tiles.iter().enumerate() {
            for b in &region_tiles[i + 1..] {
                prop_assert!(!a.cell.overlaps(&b.cell), "overlap: {a:?} {b:?}");
            }
        }
    }
    Ok(())
}

/// Grid shape invariants for a single-region grid layout holding `n` tiles.
fn check_grid_shape(layout: &Layout, room: &[ParticipantView], tiles: &[Tile]) -> Result<(), TestCaseError> {
    let region = &layout.regions()[0];
    let expected = room.len().min(region.capacity());
    prop_assert_eq!(tiles.len(), expected);
    // Join order, row-major, and the earliest joiners when over capacity.
    let ids: Vec<&str> = tiles.iter().map(|t| t.participant.as_str()).collect();
    let earliest: Vec<&str> = room.iter().take(expected).map(|p| p.id.as_str()).collect();
    prop_assert_eq!(ids, earliest);
    if tiles.is_empty() {
        return Ok(());
    }
    let mut rows: BTreeMap<i32, Vec<&Tile>> = BTreeMap::new();
    for t in tiles {
        rows.entry(t.cell.y).or_default().push(t);
    }
    let cols = rows.values().map(Vec::len).max().unwrap_or(0);
    let n = tiles.len();
    prop_assert!(rows.len() <= region.max_rows as usize && cols <= region.max_cols as usize);
    prop_assert!(cols <= n && rows.len() * cols - n < cols, "empty row or column: {} x {cols} for {n}", rows.len());
    let full_row = rows.values().next().map(|r| (r[0].cell.x, r[r.len() - 1].cell.right()));
    let row_count = rows.len();
    for (i, row) in rows.values().enumerate() {
        prop_assert!(row.len() == cols || i == row_count - 1, "short row before the last");
        prop_assert!(row.windows(2).all(|w| w[0].cell.right() <= i64::from(w[1].cell.x)));
        if let Some((left, right)) = full_row {
            let gap_left = i64::from(row[0].cell.x - left);
            let gap_right = right - row[row.len() - 1].cell.right();
            prop_assert!((gap_left - gap_right).abs() <= 2, "row not centred");
        }
    }
    Ok(())
}

proptest! {
    // No regression files: they would land in compositor/proptest-regressions,
    // outside this module. A failure prints the minimal input; add it as a unit test.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_builtin_keeps_its_invariants(room in room(), rotate in 0usize..20) {
        for layout in all_builtins() {
            for canvas in CANVASES {
                let tiles = LayoutEngine::compute(&layout, &room, canvas);
                check_tiles(&layout, &room, canvas, &tiles)?;
                // Deterministic, and independent of the input order.
                prop_assert_eq!(&LayoutEngine::compute(&layout, &room, canvas), &tiles);
                let mut shuffled = room.clone();
                shuffled.reverse();
                if !shuffled.is_empty() {
                    let k = rotate % shuffled.len();
                    shuffled.rotate_left(k);
                }
                prop_assert_eq!(&LayoutEngine::compute(&layout, &shuffled, canvas), &tiles);
            }
        }
    }

    #[test]
    fn grids_have_no_empty_rows_or_columns(room in room()) {
        for name in ["grid", "portrait-grid"] {
            let layout = builtin(name);
            for canvas in CANVASES {
                let tiles = LayoutEngine::compute(&layout, &room, canvas);
                check_grid_shape(&layout, &room, &tiles)?;
            }
        }
    }

    #[test]
    fn grids_do_not_move_when_people_speak_or_get_pinned(
        room in room(),
        ranks in prop::collection::vec(prop::option::of(0u32..8), 20),
        pins in prop::collection::vec(any::<bool>(), 20),
    ) {
        let mut talking = room.clone();
        for ((p, rank), pin) in talking.iter_mut().zip(ranks).zip(pins) {
            p.speaker_rank = rank;
            p.pinned = pin;
        }
        for name in ["grid", "portrait-grid"] {
            let layout = builtin(name);
            for canvas in CANVASES {
                prop_assert_eq!(
                    LayoutEngine::compute(&layout, &room, canvas),
                    LayoutEngine::compute(&layout, &talking, canvas)
                );
            }
        }
    }

    #[test]
    fn any_grid_region_tiles_without_gaps(
        n in 1usize..=40,
        max_rows in 1u32..=8,
        max_cols in 1u32..=8,
        width in 0.05f64..=1.0,
        height in 0.05f64..=1.0,
        padding in 0.0f64..=0.05,
        fixed_aspect in prop::option::of(0.5f64..=3.0),
        canvas_index in 0usize..4,
    ) {
        let mut doc = serde_json::json!({
            "name": "g",
            "regions": [{
                "x": 0, "y": 0, "width": width, "height": height, "padding": padding,
                "max_rows": max_rows, "max_cols": max_cols, "select": ["rest"]
            }]
        });
        if let Some(aspect) = fixed_aspect {
            doc["regions"][0]["cell_aspect"] = serde_json::json!(aspect);
        }
        let layout = Layout::from_value(&doc).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let room = super::fixtures::people(n);
        let canvas = CANVASES[canvas_index];
        let tiles = LayoutEngine::compute(&layout, &room, canvas);
        check_tiles(&layout, &room, canvas, &tiles)?;
        // Tiny regions may have empty cells, which are dropped; otherwise all shown.
        let roomy = tiles.iter().all(|t| t.cell.width >= 8 && t.cell.height >= 8);
        if roomy && tiles.len() == n.min(layout.regions()[0].capacity()) {
            check_grid_shape(&layout, &room, &tiles)?;
        }
    }
}

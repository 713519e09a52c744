//! The engine on hand-checked examples.

use super::fixtures::{HD, builtin, in_region, layout, people, person, placed, size};
use crate::layout::TileSource::{Camera, Placeholder, Screen};
use crate::layout::{Canvas, LayoutEngine, Rect, Tile};

fn rect(x: i32, y: i32, width: u32, height: u32) -> Rect {
    Rect { x, y, width, height }
}

fn cells(tiles: &[Tile]) -> Vec<Rect> {
    tiles.iter().map(|t| t.cell).collect()
}

#[test]
fn three_in_grid_use_2x2_with_the_last_tile_centred() {
    let tiles = LayoutEngine::compute(&builtin("grid"), &people(3), HD);
    // padding 0.01 of 720 = 7.2 -> 8 px around and between cells.
    assert_eq!(cells(&tiles), [rect(8, 8, 628, 348), rect(644, 8, 628, 348), rect(326, 364, 628, 348)]);
    assert_eq!(placed(&tiles), [("p0", Camera), ("p1", Camera), ("p2", Camera)]);
    let t = &tiles[0];
    assert_eq!(t.rect, t.cell, "cover fills the cell");
    // 1280x720 into 628x348 (wider than 16:9): keep width, crop height, centred.
    assert_eq!(t.crop, Some(rect(0, 4, 1280, 710)));
    assert_eq!(t.label.as_deref(), Some("Name of p0"));
    assert_eq!((t.region, t.zorder), (0, 1));
}

#[test]
fn two_in_a_wide_grid_sit_side_by_side() {
    let tiles = LayoutEngine::compute(&builtin("grid"), &people(2), HD);
    assert_eq!(cells(&tiles), [rect(8, 8, 628, 704), rect(644, 8, 628, 704)]);
}

#[test]
fn grid_is_in_join_order_whatever_the_input_order_and_speakers() {
    let mut room = people(5);
    room.reverse();
    room[0].speaker_rank = Some(0);
    room[0].pinned = true;
    let tiles = LayoutEngine::compute(&builtin("grid"), &room, HD);
    let ids: Vec<&str> = tiles.iter().map(|t| t.participant.as_str()).collect();
    assert_eq!(ids, ["p0", "p1", "p2", "p3", "p4"]);
}

#[test]
fn grid_overflow_shows_the_earliest_joiners() {
    let tiles = LayoutEngine::compute(&builtin("grid"), &people(20), HD);
    assert_eq!(tiles.len(), 16);
    assert!(tiles.iter().all(|t| t.participant != "p16" && t.participant != "p19"));
}

#[test]
fn empty_room_and_empty_canvas_have_no_tiles() {
    for name in crate::layout::Layout::builtin_names() {
        assert!(LayoutEngine::compute(&builtin(name), &[], HD).is_empty());
        let canvas = Canvas { width: 0, height: 0 };
        assert!(LayoutEngine::compute(&builtin(name), &people(3), canvas).is_empty());
    }
}

#[test]
fn single_prefers_pinned_then_speaker_then_first_joined() {
    let single = builtin("single");
    let shown = |room: &[crate::layout::ParticipantView]| {
        let tiles = LayoutEngine::compute(&single, room, HD);
        assert_eq!(tiles.len(), 1);
        tiles[0].participant.clone()
    };
    let mut room = people(3);
    assert_eq!(shown(&room), "p0");
    room[2].speaker_rank = Some(0);
    room[0].speaker_rank = Some(1);
    assert_eq!(shown(&room), "p2");
    room[1].pinned = true;
    assert_eq!(shown(&room), "p1");
    let tile = &LayoutEngine::compute(&single, &room, HD)[0];
    assert_eq!((tile.cell, tile.label.clone()), (rect(0, 0, 1280, 720), None));
}

#[test]
fn pip_shows_the_next_person_on_top() {
    let pip = builtin("pip");
    let mut room = people(3);
    room[2].speaker_rank = Some(0);
    room[1].speaker_rank = Some(1);
    let tiles = LayoutEngine::compute(&pip, &room, HD);
    assert_eq!(placed(&tiles), [("p2", Camera), ("p1", Camera)]);
    assert!(tiles[1].zorder > tiles[0].zorder);
    assert!(tiles[0].cell.contains(&tiles[1].cell));

    // Pinning p0 moves p0 to the main picture; the active speaker becomes the inset.
    room[0].pinned = true;
    let tiles = LayoutEngine::compute(&pip, &room, HD);
    assert_eq!(placed(&tiles), [("p0", Camera), ("p2", Camera)]);

    // Nobody has spoken: the first two joiners.
    let tiles = LayoutEngine::compute(&pip, &people(3), HD);
    assert_eq!(placed(&tiles), [("p0", Camera), ("p1", Camera)]);
}

#[test]
fn active_speaker_alone_fills_the_canvas() {
    let layout = builtin("active-speaker");
    let tiles = LayoutEngine::compute(&layout, &people(1), HD);
    assert_eq!(in_region(&layout, &tiles, "solo").len(), 1);
    assert_eq!(tiles[0].rect, rect(0, 0, 1280, 720));
}

#[test]
fn active_speaker_shows_a_screen_share_large_and_everyone_in_the_strip() {
    let layout = builtin("active-speaker");
    let mut room = people(3);
    room[0].screen = Some(size(1920, 1200));
    room[1].speaker_rank = Some(0);
    let tiles = LayoutEngine::compute(&layout, &room, HD);
    let main = in_region(&layout, &tiles, "main");
    assert_eq!(main.len(), 1);
    assert_eq!((main[0].participant.as_str(), main[0].source), ("p0", Screen));
    // screen_fit defaults to contain: whole 16:10 screen, pillarboxed.
    assert_eq!(main[0].crop, None);
    assert!(main[0].cell.contains(&main[0].rect) && main[0].rect.height == main[0].cell.height);
    assert!(main[0].rect.width < main[0].cell.width);
    let strip: Vec<&str> = in_region(&layout, &tiles, "strip").iter().map(|t| t.participant.as_str()).collect();
    assert_eq!(strip, ["p0", "p1", "p2"]);
}

#[test]
fn strip_admits_recent_speakers_first_but_keeps_join_order() {
    let layout = builtin("active-speaker");
    let mut room = people(10);
    room[9].speaker_rank = Some(0); // main
    room[8].speaker_rank = Some(1);
    room[7].speaker_rank = Some(2);
    let tiles = LayoutEngine::compute(&layout, &room, HD);
    let strip: Vec<&str> = in_region(&layout, &tiles, "strip").iter().map(|t| t.participant.as_str()).collect();
    assert_eq!(strip, ["p0", "p1", "p2", "p3", "p7", "p8"]);
}

#[test]
fn participants_without_camera_become_placeholders() {
    let mut room = people(2);
    room[1].camera = None;
    let tiles = LayoutEngine::compute(&builtin("grid"), &room, HD);
    assert_eq!(placed(&tiles), [("p0", Camera), ("p1", Placeholder)]);
    assert_eq!((tiles[1].rect, tiles[1].crop), (tiles[1].cell, None));
    assert_eq!(tiles[1].label.as_deref(), Some("Name of p1"));

    let video_only = layout(
        r#"{"name": "v", "regions": [
            {"x": 0, "y": 0, "width": 1, "height": 1, "max_cols": 4, "placeholders": false, "select": ["rest"]}
        ]}"#,
    );
    let tiles = LayoutEngine::compute(&video_only, &room, HD);
    assert_eq!(placed(&tiles), [("p0", Camera)]);
}

#[test]
fn unknown_source_size_fills_the_cell_uncropped() {
    let mut room = people(1);
    room[0].camera = Some(size(0, 0));
    for name in ["grid", "single"] {
        let tile = &LayoutEngine::compute(&builtin(name), &room, HD)[0];
        assert_eq!((tile.source, tile.rect, tile.crop), (Camera, tile.cell, None), "{name}");
    }
}

#[test]
fn contain_letterboxes_a_portrait_camera() {
    let mut room = people(1);
    room[0].camera = Some(size(720, 1280));
    let tile = &LayoutEngine::compute(&builtin("single"), &room, HD)[0];
    // 720 * 720 / 1280 = 405 -> 406 (even), centred at (1280 - 406) / 2 = 437 -> 436.
    assert_eq!(tile.rect, rect(436, 0, 406, 720));
    assert_eq!(tile.crop, None);
}

#[test]
fn cover_crops_to_the_cell_aspect() {
    let square =
        layout(r#"{"name": "sq", "regions": [{"x": 0, "y": 0, "width": 0.5625, "height": 1, "select": ["rest"]}]}"#);
    let tiles = LayoutEngine::compute(&square, &people(1), HD);
    assert_eq!(tiles[0].cell, rect(0, 0, 720, 720));
    assert_eq!(tiles[0].crop, Some(rect(280, 0, 720, 720)));
}

#[test]
fn select_mode_first_uses_fallbacks_and_all_concatenates() {
    let mut room = people(4);
    room[3].pinned = true;
    room[1].speaker_rank = Some(0);
    let make = |mode: &str| {
        layout(&format!(
            r#"{{"name": "m", "regions": [{{"x": 0, "y": 0, "width": 1, "height": 1, "max_cols": 4,
                "select_mode": "{mode}", "select": ["pinned", "speakers", "rest"]}}]}}"#
        ))
    };
    let ids = |tiles: Vec<Tile>| tiles.into_iter().map(|t| t.participant).collect::<Vec<_>>();
    assert_eq!(ids(LayoutEngine::compute(&make("first"), &room, HD)), ["p3"]);
    assert_eq!(ids(LayoutEngine::compute(&make("all"), &room, HD)), ["p0", "p1", "p2", "p3"]);
}

#[test]
fn identity_and_join_selectors() {
    let l = layout(
        r#"{"name": "ids", "regions": [
            {"x": 0, "y": 0, "width": 0.5, "height": 1, "select": [{"identity": "p2"}]},
            {"x": 0.5, "y": 0, "width": 0.5, "height": 1, "select": [{"join": 2}, {"join": 0}]}
        ]}"#,
    );
    let tiles = LayoutEngine::compute(&l, &people(3), HD);
    // join 2 is p2, already placed by region 0, so region 1 falls back to join 0.
    assert_eq!(placed(&tiles), [("p2", Camera), ("p0", Camera)]);
}

#[test]
fn screen_share_condition_switches_regions() {
    let l = layout(
        r#"{"name": "c", "regions": [
            {"name": "share", "when": {"screen_share": true}, "x": 0, "y": 0, "width": 1, "height": 1, "select": ["screen"]},
            {"name": "cams", "when": {"screen_share": false}, "x": 0, "y": 0, "width": 1, "height": 1, "max_cols": 4, "select": ["rest"]}
        ]}"#,
    );
    let mut room = people(2);
    assert_eq!(LayoutEngine::compute(&l, &room, HD).len(), 2);
    room[1].screen = Some(size(0, 0));
    let tiles = LayoutEngine::compute(&l, &room, HD);
    assert_eq!(placed(&tiles), [("p1", Screen)]);
}

#[test]
fn duplicate_ids_count_once() {
    let room = vec![person("a", 5), person("a", 1), person("b", 3)];
    let tiles = LayoutEngine::compute(&builtin("grid"), &room, HD);
    assert_eq!(placed(&tiles), [("a", Camera), ("b", Camera)]);
}

#[test]
fn fixed_cell_aspect_centres_the_strip() {
    let layout = builtin("active-speaker");
    let tiles = LayoutEngine::compute(&layout, &people(2), HD);
    let strip = in_region(&layout, &tiles, "strip");
    assert_eq!(strip.len(), 1);
    let cell = strip[0].cell;
    assert!((f64::from(cell.width) / f64::from(cell.height) - 16.0 / 9.0).abs() < 0.03, "{cell:?}");
    let centre = i64::from(cell.x) + i64::from(cell.width) / 2;
    assert!((centre - 640).abs() <= 2, "{cell:?}");
}

#[test]
fn labels_follow_the_region_override() {
    let l = layout(
        r#"{"name": "l", "labels": true, "regions": [
            {"x": 0, "y": 0, "width": 0.5, "height": 1, "labels": false, "select": [{"join": 0}]},
            {"x": 0.5, "y": 0, "width": 0.5, "height": 1, "select": ["rest"]}
        ]}"#,
    );
    let tiles = LayoutEngine::compute(&l, &people(2), HD);
    let labels: Vec<Option<&str>> = tiles.iter().map(|t| t.label.as_deref()).collect();
    assert_eq!(labels, [None, Some("Name of p1")]);
}

#[test]
fn five_in_grid_are_three_over_two() {
    let tiles = LayoutEngine::compute(&builtin("grid"), &people(5), HD);
    let rows: Vec<i32> = tiles.iter().map(|t| t.cell.y).collect();
    assert_eq!(rows, [8, 8, 8, 364, 364]);
}

#[test]
fn portrait_grid_stacks_up_to_four() {
    let portrait = Canvas { width: 720, height: 1280 };
    let tiles = LayoutEngine::compute(&builtin("portrait-grid"), &people(4), portrait);
    assert!(tiles.iter().all(|t| t.cell.x == tiles[0].cell.x), "one column: {tiles:?}");
    // Five: 2 + 2 + 1 (the last one centred).
    let tiles = LayoutEngine::compute(&builtin("portrait-grid"), &people(5), portrait);
    let rows: Vec<i32> = tiles.iter().map(|t| t.cell.y).collect();
    assert_eq!((rows[0], rows[2], rows[4]), (rows[1], rows[3], rows[4]));
    assert!(rows[0] < rows[2] && rows[2] < rows[4]);
    assert_eq!(tiles[4].cell.x, (720 - tiles[4].cell.width as i32) / 2);
}

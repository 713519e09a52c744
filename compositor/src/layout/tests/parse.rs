//! Parsing and validation: error paths and reasons.

use serde_json::json;

use crate::layout::{Fit, Layout, LayoutError, Rgba, SelectMode, Selector, validate_document};

fn minimal() -> serde_json::Value {
    json!({
        "name": "t",
        "regions": [{ "x": 0, "y": 0, "width": 1, "height": 1, "select": ["rest"] }]
    })
}

/// Applies `edit` to the minimal document and returns its first error.
fn error_of(edit: impl FnOnce(&mut serde_json::Value)) -> LayoutError {
    let mut doc = minimal();
    edit(&mut doc);
    match Layout::from_value(&doc) {
        Ok(layout) => panic!("expected an error, parsed {layout:?}"),
        Err(e) => e,
    }
}

fn assert_error(e: &LayoutError, path: &str, reason_part: &str) {
    assert_eq!(e.path, path, "{e}");
    assert!(e.reason.contains(reason_part), "reason {:?} lacks {reason_part:?}", e.reason);
}

#[test]
fn minimal_layout_gets_documented_defaults() {
    let layout = Layout::from_value(&minimal()).expect("valid");
    assert_eq!(layout.name(), "t");
    assert_eq!(layout.description(), None);
    assert_eq!(layout.background(), Rgba::BLACK);
    assert!(!layout.labels());
    let region = &layout.regions()[0];
    assert_eq!((region.z, region.fit, region.screen_fit), (0, Fit::Cover, Fit::Contain));
    assert_eq!((region.max, region.max_rows, region.max_cols), (1, 1, 1));
    assert_eq!(region.padding, 0.0);
    assert_eq!(region.select_mode, SelectMode::First);
    assert_eq!(region.select, vec![Selector::Rest]);
    assert!(region.placeholders);
    assert!(region.when.is_always());
}

#[test]
fn max_defaults_to_the_whole_grid() {
    let layout = Layout::from_value(&json!({
        "name": "t",
        "regions": [{ "x": 0, "y": 0, "width": 1, "height": 1, "max_rows": 3, "max_cols": 4, "select": ["rest"] }]
    }))
    .expect("valid");
    assert_eq!(layout.regions()[0].max, 12);
}

#[test]
fn all_selectors_parse() {
    let layout = Layout::from_value(&json!({
        "name": "t",
        "regions": [{
            "x": 0, "y": 0, "width": 1, "height": 1,
            "select": ["pinned", "speakers", "screen", "rest", {"speaker": 2}, {"identity": "alice"}, {"join": 3}]
        }]
    }))
    .expect("valid");
    assert_eq!(
        layout.regions()[0].select,
        vec![
            Selector::Pinned,
            Selector::Speakers,
            Selector::Screen,
            Selector::Rest,
            Selector::Speaker(2),
            Selector::Identity("alice".into()),
            Selector::Join(3),
        ]
    );
}

#[test]
fn syntax_error_has_root_path_and_position() {
    let e = Layout::from_json_str("{\n  \"name\": \"x\",\n  oops\n}").expect_err("invalid JSON");
    assert_error(&e, "", "line 3, column 3");
    let e = Layout::from_json_str("").expect_err("empty input");
    assert_error(&e, "", "invalid JSON");
}

#[test]
fn root_must_be_an_object() {
    let e = Layout::from_json_str("[1]").expect_err("array");
    assert_error(&e, "", "found an array");
}

#[test]
fn unknown_fields_are_named() {
    let e = error_of(|d| d["colour"] = json!("#fff"));
    assert_error(&e, "/colour", "unknown field `colour`");
    let e = error_of(|d| d["regions"][0]["widht"] = json!(1));
    assert_error(&e, "/regions/0/widht", "unknown field `widht`");
    let e = error_of(|d| d["regions"][0]["when"] = json!({"min": 1}));
    assert_error(&e, "/regions/0/when/min", "unknown field `min`");
}

#[test]
fn pointer_tokens_are_escaped() {
    let e = error_of(|d| d["a/b~c"] = json!(1));
    assert_eq!(e.path, "/a~1b~0c");
}

#[test]
fn missing_required_fields() {
    let e = error_of(|d| {
        d.as_object_mut().map(|o| o.remove("regions"));
    });
    assert_error(&e, "", "missing required field `regions`");
    let e = error_of(|d| {
        d["regions"][0].as_object_mut().map(|o| o.remove("select"));
    });
    assert_error(&e, "/regions/0", "missing required field `select`");
}

#[test]
fn wrong_types() {
    assert_error(&error_of(|d| d["name"] = json!(3)), "/name", "expected a string, found a number");
    assert_error(&error_of(|d| d["labels"] = json!("yes")), "/labels", "expected a boolean");
    assert_error(&error_of(|d| d["regions"][0]["x"] = json!("0")), "/regions/0/x", "expected a number");
    assert_error(&error_of(|d| d["regions"] = json!({})), "/regions", "expected an array");
    assert_error(&error_of(|d| d["regions"][0] = json!(1)), "/regions/0", "expected a region");
    assert_error(&error_of(|d| d["regions"][0]["max_rows"] = json!(1.5)), "/regions/0/max_rows", "non-integer");
    assert_error(&error_of(|d| d["regions"][0]["z"] = json!(-1)), "/regions/0/z", "negative");
}

#[test]
fn geometry_is_checked() {
    assert_error(&error_of(|d| d["regions"][0]["x"] = json!(0.5)), "/regions/0/width", "x + width = 1.5 exceeds 1");
    assert_error(&error_of(|d| d["regions"][0]["y"] = json!(0.25)), "/regions/0/height", "y + height");
    assert_error(&error_of(|d| d["regions"][0]["width"] = json!(-0.5)), "/regions/0/width", "negative");
    assert_error(&error_of(|d| d["regions"][0]["height"] = json!(0)), "/regions/0/height", "must be > 0");
    assert_error(&error_of(|d| d["regions"][0]["x"] = json!(1.5)), "/regions/0/x", "must be <= 1");
    assert_error(&error_of(|d| d["regions"][0]["padding"] = json!(0.3)), "/regions/0/padding", "<= 0.25");
    assert_error(&error_of(|d| d["regions"][0]["z"] = json!(1001)), "/regions/0/z", "0..=1000");
}

#[test]
fn decimal_sums_of_exactly_one_are_accepted() {
    // 0.7 + 0.3 is 1.0000000000000002 in binary floating point.
    let layout = Layout::from_value(&json!({
        "name": "t",
        "regions": [{ "x": 0.7, "y": 0.1, "width": 0.3, "height": 0.9, "select": ["rest"] }]
    }));
    assert!(layout.is_ok(), "{layout:?}");
}

#[test]
fn colours() {
    assert_error(&error_of(|d| d["background"] = json!("red")), "/background", "invalid colour \"red\"");
    assert_error(&error_of(|d| d["background"] = json!("#12345")), "/background", "#rrggbb");
    assert_error(&error_of(|d| d["background"] = json!("#gg0000")), "/background", "invalid colour");
    let parsed = |s: &str| s.parse::<Rgba>();
    assert_eq!(parsed("#102030"), Ok(Rgba { r: 0x10, g: 0x20, b: 0x30, a: 255 }));
    assert_eq!(parsed("#A0B0C080"), Ok(Rgba { r: 0xa0, g: 0xb0, b: 0xc0, a: 0x80 }));
    assert!(parsed("#é0000").is_err());
    let c = Rgba { r: 0x11, g: 0x22, b: 0x33, a: 0x44 };
    assert_eq!(c.argb_u32(), 0x4411_2233);
    assert_eq!(c.to_string(), "#11223344");
    assert_eq!(Rgba::BLACK.to_string(), "#000000");
    assert_eq!(Rgba::BLACK.argb_u32(), 0xff00_0000);
}

#[test]
fn regions_must_not_be_empty() {
    assert_error(&error_of(|d| d["regions"] = json!([])), "/regions", "at least one region");
}

#[test]
fn grid_limits() {
    assert_error(&error_of(|d| d["regions"][0]["max_rows"] = json!(0)), "/regions/0/max_rows", "1..=16");
    assert_error(&error_of(|d| d["regions"][0]["max_cols"] = json!(17)), "/regions/0/max_cols", "1..=16");
    assert_error(&error_of(|d| d["regions"][0]["max"] = json!(0)), "/regions/0/max", "1..=256");
    assert_error(
        &error_of(|d| d["regions"][0]["max"] = json!(2)),
        "/regions/0/max",
        "exceeds max_rows x max_cols = 1 x 1 = 1",
    );
    assert_error(&error_of(|d| d["regions"][0]["cell_aspect"] = json!(0)), "/regions/0/cell_aspect", ">= 0.1");
}

#[test]
fn duplicate_region_names() {
    let e = error_of(|d| {
        let region = json!({ "name": "a", "x": 0, "y": 0, "width": 1, "height": 1, "select": ["rest"] });
        d["regions"] = json!([region.clone(), region]);
    });
    assert_error(&e, "/regions/1/name", "duplicate region name \"a\" (also used by /regions/0)");
}

#[test]
fn selector_errors() {
    let select = |v: serde_json::Value| error_of(|d| d["regions"][0]["select"] = v);
    assert_error(&select(json!([])), "/regions/0/select", "at least one selector");
    assert_error(&select(json!("rest")), "/regions/0/select", "expected an array");
    assert_error(&select(json!(["rest", "loudest"])), "/regions/0/select/1", "unknown selector `loudest`");
    assert_error(&select(json!(["speaker"])), "/regions/0/select/0", "needs an argument");
    assert_error(&select(json!([{"speeker": 0}])), "/regions/0/select/0/speeker", "unknown selector `speeker`");
    assert_error(&select(json!([{"speaker": -1}])), "/regions/0/select/0/speaker", "negative");
    assert_error(&select(json!([{"identity": ""}])), "/regions/0/select/0/identity", "must not be empty");
    assert_error(&select(json!([{"join": 0, "speaker": 0}])), "/regions/0/select/0", "exactly one key");
    assert_error(&select(json!([3])), "/regions/0/select/0", "expected a selector");
}

#[test]
fn enum_fields() {
    assert_error(&error_of(|d| d["regions"][0]["fit"] = json!("fill")), "/regions/0/fit", "\"cover\" or \"contain\"");
    assert_error(
        &error_of(|d| d["regions"][0]["select_mode"] = json!("any")),
        "/regions/0/select_mode",
        "\"first\" or \"all\"",
    );
}

#[test]
fn condition_errors() {
    let e = error_of(|d| d["regions"][0]["when"] = json!({"min_participants": 3, "max_participants": 2}));
    assert_error(&e, "/regions/0/when/max_participants", "less than min_participants");
    let e = error_of(|d| d["regions"][0]["when"] = json!({"screen_share": 1}));
    assert_error(&e, "/regions/0/when/screen_share", "expected a boolean");
}

#[test]
fn validate_document_collects_all_errors() {
    let doc = r##"{
        "name": "",
        "background": "#12",
        "extra": true,
        "regions": [
            { "x": 0.5, "y": 0, "width": 0.6, "height": 1, "select": ["rest"], "fit": "zoom" },
            { "x": 0, "y": 0, "width": 1, "height": 1, "select": [], "max_rows": 0 }
        ]
    }"##;
    let errors = validate_document(doc).expect_err("invalid");
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/extra",
            "/name",
            "/background",
            "/regions/0/width",
            "/regions/0/fit",
            "/regions/1/select",
            "/regions/1/max_rows",
        ],
        "{errors:#?}"
    );
    // `from_json_str` reports the first of them.
    assert_eq!(Layout::from_json_str(doc), Err(errors[0].clone()));
}

#[test]
fn validate_document_accepts_valid_documents() {
    let layout = validate_document(&minimal().to_string()).expect("valid");
    assert_eq!(layout.name(), "t");
}

#[test]
fn error_display_is_path_then_reason() {
    let e = LayoutError::new("/regions/1/x", "must be <= 1, found 2");
    assert_eq!(e.to_string(), "/regions/1/x: must be <= 1, found 2");
}

#[test]
fn to_value_is_canonical_and_round_trips() {
    let doc = json!({
        "$schema": "./schema.json",
        "name": "full",
        "description": "every field",
        "background": "#ABCDEF80",
        "labels": true,
        "regions": [{
            "name": "r", "x": 0.1, "y": 0.2, "width": 0.3, "height": 0.4, "z": 7,
            "fit": "contain", "screen_fit": "cover", "padding": 0.02, "labels": false,
            "select": ["pinned", {"speaker": 1}, {"identity": "bob"}, {"join": 2}],
            "select_mode": "all", "max": 5, "max_rows": 2, "max_cols": 3,
            "cell_aspect": 1.5, "placeholders": false,
            "when": {"min_participants": 1, "max_participants": 9, "screen_share": true}
        }]
    });
    let layout = Layout::from_value(&doc).expect("valid");
    let value = layout.to_value();
    let mut expected = doc.clone();
    expected.as_object_mut().map(|o| o.remove("$schema"));
    expected["background"] = json!("#abcdef80");
    assert_eq!(value, expected);
    assert_eq!(Layout::from_value(&value), Ok(layout));
}

#[test]
fn serde_deserialize_validates() {
    let layout: Layout = serde_json::from_value(minimal()).expect("valid");
    assert_eq!(layout.name(), "t");
    let err = serde_json::from_value::<Layout>(json!({"name": "t"})).expect_err("invalid");
    assert!(err.to_string().contains("missing required field `regions`"), "{err}");
}

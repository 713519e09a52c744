//! Property tests of the layout parser on hostile documents (they arrive in API request
//! bodies and files): arbitrary text, valid documents with one node replaced by something
//! hostile, damaged bytes, huge counts and deep nesting. The parser must answer with errors
//! that say what is wrong and where, or a layout that survives `to_value` unchanged.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

use crate::layout::{Layout, LayoutError, validate_document};

fn config(cases: u32) -> ProptestConfig {
    // No regression files (see `properties.rs`).
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Errors say something, and point into the document (RFC 6901) or at its root.
fn check_errors(errors: &[LayoutError]) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty(), "refused without an error");
    for e in errors {
        prop_assert!(!e.reason.trim().is_empty(), "an error without a reason at {:?}", e.path);
        prop_assert!(e.path.is_empty() || e.path.starts_with('/'), "not a JSON Pointer: {:?}", e.path);
    }
    Ok(())
}

/// What parses is a layout whose canonical form parses back to it.
fn check_layout(layout: &Layout) -> Result<(), TestCaseError> {
    let value = layout.to_value();
    let back = Layout::from_value(&value);
    prop_assert_eq!(back.as_ref(), Ok(layout), "{}", value);
    Ok(())
}

fn parse_text(text: &str) -> Result<(), TestCaseError> {
    match validate_document(text) {
        Ok(layout) => check_layout(&layout),
        Err(errors) => check_errors(&errors),
    }
}

fn selector() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec!["pinned", "speakers", "screen", "rest"]).prop_map(Value::from),
        (0u32..8).prop_map(|n| json!({ "speaker": n })),
        (0u64..8).prop_map(|n| json!({ "join": n })),
        "[a-z]{1,8}".prop_map(|id| json!({ "identity": id })),
    ]
}

/// A valid region: on the canvas, every optional field sometimes present and in range.
fn region() -> impl Strategy<Value = Value> {
    let place = (0.0f64..0.95, 0.0f64..0.95, 0.01f64..=1.0, 0.01f64..=1.0);
    let grid = (1u32..=16, 1u32..=16, any::<Index>());
    let fit = || prop::option::of(prop::sample::select(vec!["cover", "contain"]));
    let extras = (
        prop::option::of(0u32..=1000),
        fit(),
        fit(),
        prop::option::of(0.0f64..=0.25),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec!["first", "all"])),
        prop::option::of(0.1f64..=10.0),
        prop::option::of(any::<bool>()),
        prop::option::of((0u32..10, 0u32..10, prop::option::of(any::<bool>()))),
    );
    (place, grid, prop::collection::vec(selector(), 1..4), extras).prop_map(
        |(
            (x, y, w, h),
            (rows, cols, max),
            select,
            (z, fit, screen_fit, padding, labels, mode, aspect, placeholders, when),
        )| {
            let mut r = json!({
                "x": x, "y": y, "width": (1.0 - x) * w, "height": (1.0 - y) * h,
                "select": select, "max_rows": rows, "max_cols": cols, "max": 1 + max.index((rows * cols) as usize),
            });
            let mut set = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    r[k] = v;
                }
            };
            set("z", z.map(Value::from));
            set("fit", fit.map(Value::from));
            set("screen_fit", screen_fit.map(Value::from));
            set("padding", padding.map(Value::from));
            set("labels", labels.map(Value::from));
            set("select_mode", mode.map(Value::from));
            set("cell_aspect", aspect.map(Value::from));
            set("placeholders", placeholders.map(Value::from));
            set(
                "when",
                when.map(|(a, b, s)| {
                    let mut w = json!({ "min_participants": a.min(b), "max_participants": a.max(b) });
                    if let Some(s) = s {
                        w["screen_share"] = json!(s);
                    }
                    w
                }),
            );
            r
        },
    )
}

/// A valid layout document; regions named `r0`, `r1`, ... or unnamed.
fn document() -> impl Strategy<Value = Value> {
    (
        "[a-z][a-z0-9-]{0,10}",
        prop::option::of("[ -~]{0,40}"),
        prop::option::of(prop_oneof!["#[0-9a-fA-F]{6}", "#[0-9a-fA-F]{8}"]),
        prop::option::of(any::<bool>()),
        prop::collection::vec((region(), any::<bool>()), 1..6),
    )
        .prop_map(|(name, description, background, labels, regions)| {
            let regions: Vec<Value> = regions
                .into_iter()
                .enumerate()
                .map(|(i, (mut r, named))| {
                    if named {
                        r["name"] = json!(format!("r{i}"));
                    }
                    r
                })
                .collect();
            let mut doc = json!({ "name": name, "regions": regions });
            if let Some(d) = description {
                doc["description"] = json!(d);
            }
            if let Some(b) = background {
                doc["background"] = json!(b);
            }
            if let Some(l) = labels {
                doc["labels"] = json!(l);
            }
            doc
        })
}

/// Every node's JSON Pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                pointers(item, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |v, _| json!([v]))
}

/// What a hostile client puts where a value belongs.
fn hostile() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop::sample::select(vec![-1.0, -0.0, 0.0, 0.5, 1.0 + 1e-6, 1e308, -1e308, f64::MIN_POSITIVE])
            .prop_map(Value::from),
        prop::sample::select(vec![0i64, -1, i64::MIN, 4_294_967_296]).prop_map(Value::from),
        Just(json!(u64::MAX)),
        prop_oneof![Just(String::new()), Just(" ".to_string()), "[^\"]{0,12}", Just("x".repeat(100_000))]
            .prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
        (1usize..100).prop_map(nested),
        (0usize..2000).prop_map(|n| Value::Array(vec![Value::Null; n])),
        (1usize..50).prop_map(|n| Value::Object((0..n).map(|i| (format!("k{i}"), json!(i))).collect())),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_text_is_refused_with_errors(text in prop_oneof![any::<String>(), "\\{\"name\":\"[a-z]{0,3}\",\"regions\":\\[[ -~]{0,40}\\]\\}"]) {
        parse_text(&text)?;
    }

    /// Generated documents parse, and their canonical form parses back to the same layout.
    #[test]
    fn valid_documents_round_trip(doc in document()) {
        let layout = Layout::from_value(&doc);
        prop_assert!(layout.is_ok(), "{doc}: {layout:?}");
        check_layout(&layout.unwrap_or_else(|_| unreachable!()))?;
    }

    /// One node replaced by something hostile: refused with an error at or around that node
    /// (under the same parent: `max` against `max_rows`, `width` against `x`), or a valid layout.
    #[test]
    fn a_hostile_node_is_refused_near_where_it_is(doc in document(), which in any::<Index>(), value in hostile()) {
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let at = all[which.index(all.len())].clone();
        let mut doc = doc;
        match doc.pointer_mut(&at) {
            Some(slot) => *slot = value,
            None => prop_assert!(false, "no node at {at}"),
        }
        // Through the text, as from a request body or a file.
        match validate_document(&doc.to_string()) {
            Ok(layout) => check_layout(&layout)?,
            Err(errors) => {
                check_errors(&errors)?;
                let parent = at.rsplit_once('/').map_or("", |(p, _)| p);
                let near = errors.iter().any(|e| e.path.starts_with(parent) || parent.starts_with(e.path.as_str()));
                prop_assert!(near, "damage at {at:?}, errors at {:?}", errors.iter().map(|e| &e.path).collect::<Vec<_>>());
            }
        }
    }

    /// The document's bytes damaged: cut, overwritten, made invalid UTF-8 (read lossily, as
    /// a text body would be), spliced.
    #[test]
    fn damaged_text_is_refused_with_errors(doc in document(), cuts in prop::collection::vec((any::<Index>(), any::<u8>()), 1..4)) {
        let mut bytes = doc.to_string().into_bytes();
        for (i, b) in cuts {
            let at = i.index(bytes.len());
            match b % 3 {
                0 => bytes.truncate(at),
                1 => bytes[at] = b,
                _ => bytes.insert(at, b),
            }
            if bytes.is_empty() {
                break;
            }
        }
        parse_text(&String::from_utf8_lossy(&bytes))?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// Too many regions are refused by count; deep nesting is a syntax error, not a stack
    /// overflow.
    #[test]
    fn huge_counts_and_deep_nesting_are_refused(regions in 65usize..3000, depth in 100usize..20_000) {
        let one = json!({ "x": 0, "y": 0, "width": 1, "height": 1, "select": ["rest"] });
        let doc = json!({ "name": "many", "regions": vec![one; regions] });
        let errors = validate_document(&doc.to_string()).err().unwrap_or_default();
        prop_assert!(errors.iter().any(|e| e.path == "/regions" && e.reason.contains("at most")), "{errors:?}");
        let deep = format!(r#"{{"name":"deep","regions":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
        let errors = validate_document(&deep).err().unwrap_or_default();
        check_errors(&errors)?;
    }
}

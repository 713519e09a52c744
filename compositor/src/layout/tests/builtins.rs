//! Built-in layouts and the JSON Schema stay in step with the parser.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::layout::builtin::sources;
use crate::layout::parse::{CONDITION_FIELDS, LAYOUT_FIELDS, REGION_FIELDS};
use crate::layout::{Layout, Selector, validate_document};

const SCHEMA: &str = include_str!("../../../../layouts/schema.json");

#[test]
fn required_builtins_exist() {
    for name in ["grid", "active-speaker", "sidebar", "pip", "single", "portrait-grid"] {
        assert!(Layout::builtin_names().contains(&name), "{name} missing");
    }
    assert_eq!(Layout::builtin("no-such-layout"), None);
    let embedded: Vec<&str> = sources().iter().map(|(name, _)| *name).collect();
    assert_eq!(embedded, Layout::builtin_names());
}

#[test]
fn every_builtin_is_valid_and_named_after_its_file() {
    for (name, text) in sources() {
        let layout = validate_document(text).unwrap_or_else(|e| panic!("{name}.json: {e:#?}"));
        assert_eq!(layout.name(), *name);
        assert_eq!(Layout::builtin(name).as_ref(), Some(&layout));
        assert!(layout.description().is_some_and(|d| !d.is_empty()), "{name} needs a description");
        let raw: Value = serde_json::from_str(text).unwrap_or_default();
        assert_eq!(raw["$schema"], "./schema.json", "{name}.json should point editors at the schema");
    }
}

#[test]
fn every_builtin_round_trips() {
    for name in Layout::builtin_names() {
        let layout = Layout::builtin(name).unwrap_or_else(|| panic!("{name}"));
        let value = layout.to_value();
        assert_eq!(Layout::from_value(&value).as_ref(), Ok(&layout), "{name} via Value");
        assert_eq!(Layout::from_json_str(&value.to_string()), Ok(layout.clone()), "{name} via text");
        assert_eq!(serde_json::to_value(&layout).ok(), Some(value), "{name} Serialize");
    }
}

#[test]
fn every_json_file_in_layouts_is_a_builtin() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../layouts");
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let path = entry.map(|e| e.path()).unwrap_or_default();
        if path.extension().is_some_and(|e| e == "json") {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            files.insert(stem);
        }
    }
    files.remove("schema");
    let builtins: BTreeSet<String> = Layout::builtin_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(files, builtins);
}

fn schema() -> Value {
    serde_json::from_str(SCHEMA).unwrap_or_else(|e| panic!("schema.json: {e}"))
}

fn property_names(object_schema: &Value) -> BTreeSet<&str> {
    object_schema["properties"].as_object().map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default()
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

#[test]
fn schema_is_draft_2020_12_and_closed() {
    let schema = schema();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    for object in [&schema, &schema["$defs"]["region"], &schema["$defs"]["condition"]] {
        assert_eq!(object["additionalProperties"], false);
    }
}

#[test]
fn schema_fields_match_the_parser() {
    let schema = schema();
    assert_eq!(property_names(&schema), set(LAYOUT_FIELDS));
    assert_eq!(property_names(&schema["$defs"]["region"]), set(REGION_FIELDS));
    assert_eq!(property_names(&schema["$defs"]["condition"]), set(CONDITION_FIELDS));
}

#[test]
fn schema_selectors_match_the_parser() {
    let schema = schema();
    let variants = schema["$defs"]["selector"]["oneOf"].as_array().cloned().unwrap_or_default();
    let keywords: BTreeSet<&str> =
        variants.iter().filter_map(|v| v["enum"].as_array()).flatten().filter_map(Value::as_str).collect();
    assert_eq!(keywords, set(Selector::KEYWORDS));
    let keys: BTreeSet<&str> = variants.iter().flat_map(property_names).collect();
    assert_eq!(keys, set(Selector::WITH_ARGUMENT));
}

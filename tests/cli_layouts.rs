//! `tessera layouts validate|list|show`, run as the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera")).args(args).output().expect("run tessera")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn builtin_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("layouts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read layouts/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("schema.json"))
        .collect();
    files.sort();
    files
}

#[test]
fn validate_accepts_every_builtin_file() {
    let files = builtin_files();
    assert!(files.len() >= 6, "expected the built-in layouts, found {files:?}");
    let mut args = vec!["layouts", "validate"];
    args.extend(files.iter().map(|f| f.to_str().expect("UTF-8 path")));
    let output = tessera(&args);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    for file in &files {
        let stem = file.file_stem().and_then(|s| s.to_str()).expect("stem");
        assert!(out.contains(&format!("{}: ok (layout {stem})", file.display())), "{out}");
    }
}

#[test]
fn validate_reports_pointer_and_reason_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"name": "broken", "regions": [{"name": "a", "x": 0.5, "y": 0, "width": 0.7, "height": 1, "select": ["rest"]}]}"#,
    )
    .expect("write bad.json");
    let typo = dir.path().join("typo.json");
    std::fs::write(
        &typo,
        r#"{"name": "typo", "regions": [{"name": "a", "x": 0, "y": 0, "widht": 1, "width": 1, "height": 1, "select": ["rest"]}]}"#,
    )
    .expect("write typo.json");

    let output = tessera(&["layouts", "validate", bad.to_str().expect("path"), typo.to_str().expect("path")]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let bad_line = format!("{}: /regions/0/width: ", bad.display());
    assert!(out.lines().any(|l| l.starts_with(&bad_line) && l.contains("exceeds")), "{out}");
    let typo_line = format!("{}: /regions/0/widht: unknown field `widht`", typo.display());
    assert!(out.lines().any(|l| l.starts_with(&typo_line)), "{out}");
}

#[test]
fn validate_shows_root_for_document_level_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("syntax.json");
    std::fs::write(&file, "{ not json").expect("write");
    let output = tessera(&["layouts", "validate", file.to_str().expect("path")]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.starts_with(&format!("{}: (root): ", file.display())), "{out}");
}

#[test]
fn validate_exits_2_when_a_file_cannot_be_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.json");
    let good = builtin_files().remove(0);
    let output = tessera(&["layouts", "validate", missing.to_str().expect("path"), good.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains(&format!("{}: cannot read file", missing.display())), "{err}");
    // The other files are still checked.
    assert!(stdout(&output).contains(": ok (layout "), "{}", stdout(&output));
}

#[test]
fn list_prints_builtin_names() {
    let output = tessera(&["layouts", "list"]);
    assert!(output.status.success());
    let names: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    for name in ["grid", "active-speaker", "sidebar", "pip", "single", "portrait-grid"] {
        assert!(names.iter().any(|n| n == name), "{names:?}");
    }
}

#[test]
fn show_prints_pretty_json_of_a_builtin() {
    let output = tessera(&["layouts", "show", "grid"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("\n  \""), "not pretty-printed: {text}");
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(value["name"], "grid");
    assert!(value["regions"].is_array());
}

#[test]
fn show_unknown_name_fails_with_the_known_names() {
    let output = tessera(&["layouts", "show", "no-such-layout"]);
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("no-such-layout") && err.contains("grid"), "{err}");
}

#[test]
fn validate_checks_user_layout_files_from_the_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layouts");
    let good = dir.join("two-up-with-strip.json");
    let output = tessera(&["layouts", "validate", good.to_str().expect("UTF-8 path")]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("ok (layout two-up-with-strip)"));

    let broken = dir.join("broken.json");
    let output = tessera(&["layouts", "validate", broken.to_str().expect("UTF-8 path")]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    for expected in [
        "/background: invalid colour \"teal\"",
        "/regions/0/width: x + width = 1.3 exceeds 1",
        "/regions/0/fit: unknown fit \"stretch\"",
        "/regions/0: missing required field `select`",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

//! `tessera layouts validate|list|show`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tessera_compositor::layout::{self, Layout, LayoutError};

/// Exit codes of `tessera layouts validate`.
const EXIT_INVALID: u8 = 1;
const EXIT_UNREADABLE: u8 = 2;

/// How one file fared, worst last so the exit code is the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Valid,
    Invalid,
    Unreadable,
}

pub fn validate(files: &[PathBuf]) -> ExitCode {
    let worst = files.iter().map(|file| validate_file(file)).max().unwrap_or(Outcome::Valid);
    match worst {
        Outcome::Valid => ExitCode::SUCCESS,
        Outcome::Invalid => ExitCode::from(EXIT_INVALID),
        Outcome::Unreadable => ExitCode::from(EXIT_UNREADABLE),
    }
}

fn validate_file(file: &Path) -> Outcome {
    let shown = file.display();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("{shown}: cannot read file: {err}");
            return Outcome::Unreadable;
        }
    };
    match layout::validate_document(&text) {
        Ok(layout) => {
            println!("{shown}: ok (layout {})", layout.name());
            Outcome::Valid
        }
        Err(errors) => {
            for error in &errors {
                println!("{shown}: {}", describe(error));
            }
            Outcome::Invalid
        }
    }
}

/// `/json/pointer: reason`, with `(root)` for the document itself.
pub fn describe(error: &LayoutError) -> String {
    let path = if error.path.is_empty() { "(root)" } else { &error.path };
    format!("{path}: {}", error.reason)
}

pub fn list() -> ExitCode {
    for name in Layout::builtin_names() {
        println!("{name}");
    }
    ExitCode::SUCCESS
}

pub fn show(name: &str) -> ExitCode {
    let Some(layout) = Layout::builtin(name) else {
        eprintln!("unknown layout `{name}`; built-in layouts: {}", Layout::builtin_names().join(", "));
        return ExitCode::FAILURE;
    };
    match serde_json::to_string_pretty(&layout.to_value()) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cannot print layout `{name}`: {err}");
            ExitCode::FAILURE
        }
    }
}

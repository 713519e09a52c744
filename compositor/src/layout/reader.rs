//! Typed reads from a `serde_json::Value` that record errors (with JSON
//! Pointer paths) instead of stopping at the first one. `parse.rs` holds the
//! layout rules built on these.

use serde_json::{Map, Value};

use super::error::{LayoutError, pointer_push};

/// "a string", "an array", ... for "expected X, found Y" messages.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn one_of(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Collects errors while reading a document.
#[derive(Default)]
pub(super) struct Parser {
    pub(super) errors: Vec<LayoutError>,
}

/// An object being read: its members and its pointer.
pub(super) struct Obj<'a> {
    pub(super) map: &'a Map<String, Value>,
    pub(super) path: String,
}

impl Obj<'_> {
    pub(super) fn field_path(&self, key: &str) -> String {
        pointer_push(&self.path, key)
    }
}

impl Parser {
    pub(super) fn error(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(LayoutError::new(path, reason));
    }

    pub(super) fn object<'a>(&mut self, v: &'a Value, path: &str, what: &str, allowed: &[&str]) -> Option<Obj<'a>> {
        let Some(map) = v.as_object() else {
            self.error(path, format!("expected {what} (an object), found {}", kind(v)));
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.error(
                    pointer_push(path, key),
                    format!("unknown field `{key}`, expected one of {}", one_of(allowed)),
                );
            }
        }
        Some(Obj { map, path: path.to_owned() })
    }

    pub(super) fn required<'a>(&mut self, obj: &Obj<'a>, key: &str) -> Option<&'a Value> {
        let v = obj.map.get(key);
        if v.is_none() {
            self.error(obj.path.clone(), format!("missing required field `{key}`"));
        }
        v
    }

    /// Reads an optional field with `read`; `Some(None)` means absent, `None` invalid.
    pub(super) fn optional<'a, T>(
        &mut self,
        obj: &Obj<'a>,
        key: &str,
        read: impl FnOnce(&mut Self, &'a Value, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        match obj.map.get(key) {
            None => Some(None),
            Some(v) => read(self, v, &obj.field_path(key)).map(Some),
        }
    }

    pub(super) fn string<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a str> {
        let s = v.as_str();
        if s.is_none() {
            self.error(path, format!("expected a string, found {}", kind(v)));
        }
        s
    }

    pub(super) fn non_empty_string(&mut self, v: &Value, path: &str) -> Option<String> {
        let s = self.string(v, path)?;
        if s.trim().is_empty() {
            self.error(path, "must not be empty");
            return None;
        }
        Some(s.to_owned())
    }

    pub(super) fn boolean(&mut self, v: &Value, path: &str) -> Option<bool> {
        let b = v.as_bool();
        if b.is_none() {
            self.error(path, format!("expected a boolean, found {}", kind(v)));
        }
        b
    }

    pub(super) fn number_in(&mut self, v: &Value, path: &str, min: f64, max: f64) -> Option<f64> {
        let Some(n) = v.as_f64() else {
            self.error(path, format!("expected a number, found {}", kind(v)));
            return None;
        };
        if n < min {
            let sign = if n < 0.0 && min >= 0.0 { "negative; " } else { "" };
            self.error(path, format!("{sign}must be >= {min}, found {n}"));
            return None;
        }
        if n > max {
            self.error(path, format!("must be <= {max}, found {n}"));
            return None;
        }
        Some(n)
    }

    pub(super) fn integer_in(&mut self, v: &Value, path: &str, min: u64, max: u64) -> Option<u64> {
        let Some(n) = v.as_u64() else {
            let found = match v.as_f64() {
                Some(f) if f < 0.0 => format!("the negative number {f}"),
                Some(f) => format!("the non-integer {f}"),
                None => kind(v).to_owned(),
            };
            self.error(path, format!("expected a non-negative integer, found {found}"));
            return None;
        };
        if n < min || n > max {
            self.error(path, format!("must be in {min}..={max}, found {n}"));
            return None;
        }
        Some(n)
    }

    pub(super) fn integer_u32(&mut self, v: &Value, path: &str, min: u32, max: u32) -> Option<u32> {
        self.integer_in(v, path, min.into(), max.into()).and_then(|n| u32::try_from(n).ok())
    }
}

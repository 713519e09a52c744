//! JSON -> `Layout`, checking every rule and collecting all errors with their
//! JSON Pointer paths. Hand-written (not `#[derive(Deserialize)]`) because serde
//! errors carry no document path and stop at the first problem.

use serde_json::Value;

use super::color::Rgba;
use super::error::{LayoutError, pointer_push};
use super::model::{
    CELL_ASPECT_RANGE, Fit, Layout, MAX_GRID_SIDE, MAX_PADDING, MAX_REGIONS, MAX_Z, Region, RegionCondition,
    SelectMode, Selector,
};
use super::reader::{Obj, Parser, kind, one_of};

/// Fields of the top-level object. `$schema` is accepted (editor support) and dropped.
pub const LAYOUT_FIELDS: &[&str] = &["$schema", "name", "description", "background", "labels", "regions"];
pub const REGION_FIELDS: &[&str] = &[
    "name",
    "x",
    "y",
    "width",
    "height",
    "z",
    "fit",
    "screen_fit",
    "padding",
    "labels",
    "select",
    "select_mode",
    "max",
    "max_rows",
    "max_cols",
    "cell_aspect",
    "placeholders",
    "when",
];
pub const CONDITION_FIELDS: &[&str] = &["min_participants", "max_participants", "screen_share"];

/// Slack for sums of fractions such as `x + width`, which are decimal literals in
/// the file and so not exact in binary.
const FRACTION_EPSILON: f64 = 1e-9;

/// Parses JSON text; a syntax error yields a single error at path `""`.
pub fn parse_str(s: &str) -> Result<Layout, Vec<LayoutError>> {
    let value: Value = serde_json::from_str(s).map_err(|e| vec![syntax_error(&e)])?;
    parse_value(&value)
}

pub fn parse_value(v: &Value) -> Result<Layout, Vec<LayoutError>> {
    let mut p = Parser::default();
    let layout = p.layout(v);
    match layout {
        Some(layout) if p.errors.is_empty() => Ok(layout),
        _ if p.errors.is_empty() => Err(vec![LayoutError::new("", "invalid layout")]),
        _ => Err(p.errors),
    }
}

fn syntax_error(e: &serde_json::Error) -> LayoutError {
    // serde_json's message ends with " at line L column C"; restate it readably.
    let full = e.to_string();
    let message = full.rsplit_once(" at line ").map_or(full.as_str(), |(m, _)| m);
    LayoutError::new("", format!("invalid JSON at line {}, column {}: {message}", e.line(), e.column()))
}

impl Parser {
    fn layout(&mut self, v: &Value) -> Option<Layout> {
        let obj = self.object(v, "", "a layout", LAYOUT_FIELDS)?;
        if let Some(v) = obj.map.get("$schema") {
            self.string(v, &obj.field_path("$schema"));
        }
        let name = self.required(&obj, "name").and_then(|v| self.non_empty_string(v, &obj.field_path("name")));
        let description = self.optional(&obj, "description", |p, v, path| p.string(v, path).map(str::to_owned));
        let background = self.optional(&obj, "background", |p, v, path| p.colour(v, path));
        let labels = self.optional(&obj, "labels", |p, v, path| p.boolean(v, path));
        let regions = self.required(&obj, "regions").and_then(|v| self.regions(v, &obj.field_path("regions")));
        Some(Layout {
            name: name?,
            description: description?,
            background: background?.unwrap_or(Rgba::BLACK),
            labels: labels?.unwrap_or(false),
            regions: regions?,
        })
    }

    fn colour(&mut self, v: &Value, path: &str) -> Option<Rgba> {
        let s = self.string(v, path)?;
        match s.parse::<Rgba>() {
            Ok(c) => Some(c),
            Err(reason) => {
                self.error(path, reason);
                None
            }
        }
    }

    fn regions(&mut self, v: &Value, path: &str) -> Option<Vec<Region>> {
        let Some(items) = v.as_array() else {
            self.error(path, format!("expected an array of regions, found {}", kind(v)));
            return None;
        };
        if items.is_empty() {
            self.error(path, "must contain at least one region");
            return None;
        }
        if items.len() > MAX_REGIONS {
            self.error(path, format!("at most {MAX_REGIONS} regions are allowed, found {}", items.len()));
            return None;
        }
        let parsed: Vec<Option<Region>> =
            items.iter().enumerate().map(|(i, item)| self.region(item, &pointer_push(path, &i.to_string()))).collect();
        self.check_unique_names(&parsed, path);
        parsed.into_iter().collect()
    }

    fn check_unique_names(&mut self, regions: &[Option<Region>], path: &str) {
        for (i, region) in regions.iter().enumerate() {
            let Some(name) = region.as_ref().and_then(|r| r.name.as_deref()) else {
                continue;
            };
            let first = regions[..i].iter().position(|r| r.as_ref().and_then(|r| r.name.as_deref()) == Some(name));
            if let Some(first) = first {
                self.error(
                    pointer_push(&pointer_push(path, &i.to_string()), "name"),
                    format!("duplicate region name {name:?} (also used by /regions/{first})"),
                );
            }
        }
    }

    fn region(&mut self, v: &Value, path: &str) -> Option<Region> {
        let obj = self.object(v, path, "a region", REGION_FIELDS)?;
        let name = self.optional(&obj, "name", |p, v, path| p.non_empty_string(v, path));

        let fraction = |p: &mut Self, key: &str| {
            p.required(&obj, key).and_then(|v| p.number_in(v, &obj.field_path(key), 0.0, 1.0))
        };
        let size = |p: &mut Self, key: &str| {
            let value = fraction(p, key)?;
            if value <= 0.0 {
                p.error(obj.field_path(key), format!("must be > 0, found {value}"));
                return None;
            }
            Some(value)
        };
        let x = fraction(self, "x");
        let y = fraction(self, "y");
        let width = size(self, "width");
        let height = size(self, "height");
        self.check_extent(&obj, "x", x, "width", width);
        self.check_extent(&obj, "y", y, "height", height);

        let z = self.optional(&obj, "z", |p, v, path| p.integer_u32(v, path, 0, MAX_Z));
        let fit = self.optional(&obj, "fit", |p, v, path| p.fit(v, path));
        let screen_fit = self.optional(&obj, "screen_fit", |p, v, path| p.fit(v, path));
        let padding = self.optional(&obj, "padding", |p, v, path| p.number_in(v, path, 0.0, MAX_PADDING));
        let labels = self.optional(&obj, "labels", |p, v, path| p.boolean(v, path));
        let select = self.required(&obj, "select").and_then(|v| self.selectors(v, &obj.field_path("select")));
        let select_mode = self.optional(&obj, "select_mode", |p, v, path| p.select_mode(v, path));
        let side = |p: &mut Self, v: &Value, path: &str| p.integer_u32(v, path, 1, MAX_GRID_SIDE);
        let max_rows = self.optional(&obj, "max_rows", side);
        let max_cols = self.optional(&obj, "max_cols", side);
        let cell_aspect = self
            .optional(&obj, "cell_aspect", |p, v, path| p.number_in(v, path, CELL_ASPECT_RANGE.0, CELL_ASPECT_RANGE.1));
        let placeholders = self.optional(&obj, "placeholders", |p, v, path| p.boolean(v, path));
        let when = self.optional(&obj, "when", |p, v, path| p.condition(v, path));

        let max = self.optional(&obj, "max", |p, v, path| p.integer_u32(v, path, 1, MAX_GRID_SIDE * MAX_GRID_SIDE));
        // Defaults: a 1x1 region; `max` defaults to the whole grid.
        let (max_rows, max_cols) = (max_rows?.unwrap_or(1), max_cols?.unwrap_or(1));
        let cells = max_rows * max_cols;
        let max = max?.unwrap_or(cells);
        if max > cells {
            self.error(
                obj.field_path("max"),
                format!("max {max} exceeds max_rows x max_cols = {max_rows} x {max_cols} = {cells}"),
            );
            return None;
        }

        Some(Region {
            name: name?,
            x: x?,
            y: y?,
            width: width?,
            height: height?,
            z: z?.unwrap_or(0),
            fit: fit?.unwrap_or(Fit::Cover),
            screen_fit: screen_fit?.unwrap_or(Fit::Contain),
            padding: padding?.unwrap_or(0.0),
            labels: labels?,
            select: select?,
            select_mode: select_mode?.unwrap_or(SelectMode::First),
            max,
            max_rows,
            max_cols,
            cell_aspect: cell_aspect?,
            placeholders: placeholders?.unwrap_or(true),
            when: when?.unwrap_or_default(),
        })
    }

    /// `offset + size` must stay on the canvas.
    fn check_extent(
        &mut self,
        obj: &Obj<'_>,
        offset_key: &str,
        offset: Option<f64>,
        size_key: &str,
        size: Option<f64>,
    ) {
        if let (Some(offset), Some(size)) = (offset, size)
            && offset + size > 1.0 + FRACTION_EPSILON
        {
            self.error(
                obj.field_path(size_key),
                format!("{offset_key} + {size_key} = {} exceeds 1 (the canvas edge)", offset + size),
            );
        }
    }

    fn fit(&mut self, v: &Value, path: &str) -> Option<Fit> {
        match self.string(v, path)? {
            "cover" => Some(Fit::Cover),
            "contain" => Some(Fit::Contain),
            other => {
                self.error(path, format!("unknown fit {other:?}, expected \"cover\" or \"contain\""));
                None
            }
        }
    }

    fn select_mode(&mut self, v: &Value, path: &str) -> Option<SelectMode> {
        match self.string(v, path)? {
            "first" => Some(SelectMode::First),
            "all" => Some(SelectMode::All),
            other => {
                self.error(path, format!("unknown select_mode {other:?}, expected \"first\" or \"all\""));
                None
            }
        }
    }

    fn selectors(&mut self, v: &Value, path: &str) -> Option<Vec<Selector>> {
        let Some(items) = v.as_array() else {
            self.error(path, format!("expected an array of selectors, found {}", kind(v)));
            return None;
        };
        if items.is_empty() {
            self.error(path, "must list at least one selector");
            return None;
        }
        let parsed: Vec<Option<Selector>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| self.selector(item, &pointer_push(path, &i.to_string())))
            .collect();
        parsed.into_iter().collect()
    }

    fn selector(&mut self, v: &Value, path: &str) -> Option<Selector> {
        match v {
            Value::String(s) => match s.as_str() {
                "pinned" => Some(Selector::Pinned),
                "speakers" => Some(Selector::Speakers),
                "screen" => Some(Selector::Screen),
                "rest" => Some(Selector::Rest),
                key if Selector::WITH_ARGUMENT.contains(&key) => {
                    self.error(path, format!("selector `{key}` needs an argument, e.g. {{\"{key}\": 0}}"));
                    None
                }
                other => {
                    self.error(path, unknown_selector(other));
                    None
                }
            },
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next()?;
                let arg_path = pointer_push(path, key);
                match key.as_str() {
                    "speaker" => self.integer_u32(arg, &arg_path, 0, u32::MAX).map(Selector::Speaker),
                    "join" => self.integer_in(arg, &arg_path, 0, u64::MAX).map(Selector::Join),
                    "identity" => self.non_empty_string(arg, &arg_path).map(Selector::Identity),
                    other => {
                        self.error(arg_path, unknown_selector(other));
                        None
                    }
                }
            }
            Value::Object(map) => {
                self.error(path, format!("a selector object must have exactly one key, found {}", map.len()));
                None
            }
            other => {
                self.error(path, format!("expected a selector (a string or a one-key object), found {}", kind(other)));
                None
            }
        }
    }

    fn condition(&mut self, v: &Value, path: &str) -> Option<RegionCondition> {
        let obj = self.object(v, path, "a condition", CONDITION_FIELDS)?;
        let count = |p: &mut Self, v: &Value, path: &str| p.integer_u32(v, path, 0, u32::MAX);
        let min = self.optional(&obj, "min_participants", count);
        let max = self.optional(&obj, "max_participants", count);
        let screen_share = self.optional(&obj, "screen_share", |p, v, path| p.boolean(v, path));
        let (min, max, screen_share) = (min?, max?, screen_share?);
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            self.error(
                obj.field_path("max_participants"),
                format!("max_participants {max} is less than min_participants {min}; the region could never be used"),
            );
            return None;
        }
        Some(RegionCondition { min_participants: min, max_participants: max, screen_share })
    }
}

fn unknown_selector(name: &str) -> String {
    format!(
        "unknown selector `{name}`, expected one of {} or an object with one of {}",
        one_of(Selector::KEYWORDS),
        one_of(Selector::WITH_ARGUMENT)
    )
}

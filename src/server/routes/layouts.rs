//! `/v1/layouts`: the built-in layouts, and validation of a layout document.

use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tessera_compositor::layout::{self, Layout, LayoutError};

use crate::server::error::{ApiError, ErrorDetail};
use crate::server::extract::ApiJson;

/// `GET /v1/layouts` → `{"layouts": ["grid", ...]}`.
pub async fn list() -> Json<Value> {
    Json(json!({ "layouts": Layout::builtin_names() }))
}

/// `GET /v1/layouts/{name}` → the layout document.
pub async fn show(name: Result<Path<String>, PathRejection>) -> Result<Json<Value>, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Layout::builtin(&name)
        .map(|layout| Json(layout.to_value()))
        .ok_or_else(|| ApiError::not_found(format!("unknown layout `{name}`")))
}

/// `POST /v1/layouts/validate` with a layout document → 200 `{"valid": true, "layout": ...}`
/// or 422 `invalid_layout` naming the first faulty field, with every problem in `details`.
pub async fn validate(ApiJson(document): ApiJson<Value>) -> Result<Json<Value>, ApiError> {
    // validate_document reports every problem (from_value stops at the first).
    match layout::validate_document(&document.to_string()) {
        Ok(layout) => Ok(Json(json!({ "valid": true, "layout": layout.to_value() }))),
        Err(errors) => Err(invalid_layout(&errors)),
    }
}

fn invalid_layout(errors: &[LayoutError]) -> ApiError {
    let Some(first) = errors.first() else {
        return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_layout", "invalid layout");
    };
    let details = errors.iter().map(|e| ErrorDetail { field: e.path.clone(), message: e.reason.clone() }).collect();
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_layout", first.reason.clone())
        .with_field(first.path.clone())
        .with_details(details)
}

//! JSON errors: the body every HTTP error has, and the status of each [`Error`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// `{"error":{"code","message","field"}}` with a 4xx/5xx status.
pub fn json_error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    let mut e = serde_json::json!({"code": code, "message": message});
    if let Some(f) = field {
        e["field"] = serde_json::Value::String(f.to_owned());
    }
    (status, axum::Json(serde_json::json!({ "error": e }))).into_response()
}

/// `e` as a JSON error, with the status its kind calls for.
pub(super) fn error_response(e: &Error) -> Response {
    let status = match e {
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::BadRequest(_) | Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Rtc { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Bind { .. } | Error::Io { .. } | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_error(status, e.code(), &e.to_string(), None)
}

//! What the token, recording and stream routes share: path parameters, the media side of
//! the state, blocking pipeline calls, and where a program setting sits in a request body.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;

use crate::server::error::ApiError;
use crate::server::state::{AppState, Media};

/// Room names, as the SFU takes them (`[A-Za-z0-9_-]{1,64}`); identities the same with up to
/// 128 characters.
pub fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

pub fn path_param(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(v)| v).map_err(|e| ApiError::bad_request(e.body_text()))
}

/// The `{room}` of a path, checked.
pub fn room_param(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let room = path_param(p)?;
    if !valid_name(&room, 64) {
        return Err(ApiError::bad_request("room names use letters, digits, '-' and '_' (1 to 64)"));
    }
    Ok(room)
}

pub fn media(state: &AppState) -> Result<Media, ApiError> {
    state
        .media()
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "this server does not host rooms"))
}

/// Runs a blocking pipeline operation off the async workers.
pub async fn blocking<T: Send + 'static, E: Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
    to_api: fn(E) -> ApiError,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(to_api)
}

/// The request field (JSON Pointer) that sets a program setting.
pub fn setting_pointer(setting: &str) -> String {
    match setting {
        "video_bitrate_kbps" => "/video/bitrate_kbps".into(),
        "audio_bitrate_kbps" => "/audio/bitrate_kbps".into(),
        "audio_sample_rate" => "/audio".into(),
        other => format!("/video/{other}"),
    }
}

/// How the HTTP API answers the binary's errors: each kind its status and code, the message
/// with its causes.
pub fn api_error(e: crate::error::Error) -> ApiError {
    use crate::error::Error;
    use crate::recordings::store::RecordingError;
    use axum::http::StatusCode;
    match e {
        Error::Invalid { field, reason } => ApiError::invalid_field(field, reason),
        Error::Setting { setting, reason } => ApiError::invalid_field(setting_pointer(&setting), reason),
        Error::BadRequest(m) => ApiError::bad_request(m),
        Error::Storage(RecordingError::Name(_)) => ApiError::bad_request(e.to_string()),
        Error::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        Error::NotFound(m) => ApiError::not_found(m),
        Error::NoCapacity(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_capacity", m),
        Error::Program(_) | Error::Storage(_) | Error::Sfu(_) => {
            tracing::error!(error = %error_chain(&e), "request failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error_chain(&e))
        }
    }
}

/// An error and its causes, outermost first.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

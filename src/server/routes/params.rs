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

//! `/v1/rooms/{room}/hls` and `/v1/hls`: LL-HLS outputs of a room; `/hls/{room}/{id}/…`: their
//! playlist, header, segments and parts, for players (no API key: the output's id, random, is
//! the capability, as a CDN URL would be).
//!
//! Blocking playlist reload (RFC 8216bis 6.2.5.2): `index.m3u8?_HLS_msn=N&_HLS_part=P` answers
//! once the playlist holds that part, and a part named by the playlist's preload hint answers
//! once it is written, so a player learns of a part the moment it exists.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::hls::{FileName, Hls, HlsFiles, Lookup};
use crate::server::error::ApiError;
use crate::server::extract::ApiJson;
use crate::server::routes::params::{api_error, blocking, media, path_param, room_param};
use crate::server::routes::recordings::{AudioSettings, VideoSettings, parse_layout, program_config};
use crate::server::state::AppState;

/// How long a blocking playlist request waits: three target durations, as the RFC advises.
const PLAYLIST_WAIT: Duration = Duration::from_secs(12);
/// How long a request for a part or segment announced next waits for it.
const FILE_WAIT: Duration = Duration::from_secs(6);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartHls {
    layout: Option<Value>,
    #[serde(default)]
    video: VideoSettings,
    #[serde(default)]
    audio: AudioSettings,
    #[serde(default)]
    s3: bool,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    room: Option<String>,
}

/// The HLS output as answered: with its playlist's URL on the host the client asked.
fn shown(state: &AppState, headers: &HeaderMap, mut hls: Hls) -> Value {
    if state.cluster().is_some() && hls.node.is_none() {
        hls.node = Some(state.node_id().to_owned());
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    let mut v = serde_json::to_value(&hls).unwrap_or_default();
    v["playlist_url"] = json!(format!("{scheme}://{host}{}", hls.playlist_path));
    v
}

/// `POST /v1/rooms/{room}/hls` `{"layout"?, "video"?, "audio"?, "s3"?}` → 201.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    room: Result<Path<String>, PathRejection>,
    ApiJson(req): ApiJson<StartHls>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let room = room_param(room)?;
    let (layout, name) = parse_layout(req.layout.as_ref())?;
    let config = program_config(&req.video, &req.audio)?;
    let outputs = media(&state)?.hls;
    let runtime = tokio::runtime::Handle::current();
    let asked = room.clone();
    let started = blocking(move || outputs.start(&room, layout, name, config, req.s3, &runtime), api_error).await;
    if let (Err(refusal), Some(node), Some(media)) = (&started, state.cluster(), state.media())
        && refusal.code == "no_capacity"
    {
        node.refused(media, &asked).await;
    }
    Ok((StatusCode::CREATED, Json(shown(&state, &headers, started?))))
}

/// `GET /v1/hls?room=` → `{"hls": [...]}` (this node's).
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let all: Vec<Value> =
        media(&state)?.hls.list(q.room.as_deref()).into_iter().map(|h| shown(&state, &headers, h)).collect();
    Ok(Json(json!({ "hls": all })))
}

/// `GET /v1/hls/{id}`.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_param(id)?;
    let hls = media(&state)?.hls.get(&id).ok_or_else(|| ApiError::not_found(format!("no HLS output {id}")))?;
    Ok(Json(shown(&state, &headers, hls)))
}

/// `POST /v1/hls/{id}/stop`: the last part and segment are written and the playlist ends.
pub async fn stop(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_param(id)?;
    let outputs = media(&state)?.hls;
    let hls = blocking(move || outputs.stop(&id), api_error).await?;
    Ok(Json(shown(&state, &headers, hls)))
}

#[derive(Debug, Default, Deserialize)]
pub struct PlaylistQuery {
    #[serde(rename = "_HLS_msn")]
    msn: Option<u64>,
    #[serde(rename = "_HLS_part")]
    part: Option<u32>,
    /// Delta updates are not offered (no `CAN-SKIP-UNTIL`): ignored, the whole playlist is sent.
    #[serde(rename = "_HLS_skip")]
    #[allow(dead_code)]
    skip: Option<String>,
}

/// `GET /hls/{room}/{id}/{file}`.
pub async fn file(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    query: Result<Query<PlaylistQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((room, id, name)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let name = FileName::parse(&name).ok_or_else(|| ApiError::not_found(format!("no file {name}")))?;
    let files =
        media(&state)?.hls.files(&room, &id).ok_or_else(|| ApiError::not_found(format!("no HLS output {id}")))?;
    if q.part.is_some() && q.msn.is_none() {
        return Err(ApiError::invalid_field("_HLS_part", "_HLS_part needs _HLS_msn"));
    }
    match name {
        FileName::Playlist => playlist(&files, q.msn, q.part).await,
        name => media_file(&files, name).await,
    }
}

async fn playlist(files: &HlsFiles, msn: Option<u64>, part: Option<u32>) -> Result<Response, ApiError> {
    let ready = wait(files, PLAYLIST_WAIT, || match files.playlist(msn, part) {
        Ok(Some(text)) => Some(Ok(text)),
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    })
    .await;
    match ready {
        Some(Ok(text)) => Ok(respond(text.into_bytes(), "application/vnd.apple.mpegurl", "no-cache")),
        Some(Err(why)) => Err(ApiError::invalid_field("_HLS_msn", why)),
        None => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the playlist has no such part yet")),
    }
}

async fn media_file(files: &HlsFiles, name: FileName) -> Result<Response, ApiError> {
    let found = wait(files, FILE_WAIT, || match files.file(name) {
        Lookup::Found(bytes) => Some(Some(bytes)),
        Lookup::Soon => None,
        Lookup::Missing => Some(None),
    })
    .await
    .flatten();
    match found {
        // Written once, never changed: cacheable for as long as any player could want it.
        Some(bytes) => Ok(respond(bytes.to_vec(), "video/mp4", "public, max-age=60")),
        None => Err(ApiError::not_found("no such part or segment (any more)")),
    }
}

/// `check` until it answers or `timeout` passes, woken by each change of the files.
async fn wait<T>(files: &HlsFiles, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let mut changed = files.changed();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Seen before checking, so a change during the check wakes the wait below.
        changed.borrow_and_update();
        if let Some(answer) = check() {
            return Some(answer);
        }
        match tokio::time::timeout_at(deadline, changed.changed()).await {
            Ok(Ok(())) => continue,
            _ => return check(),
        }
    }
}

fn respond(body: Vec<u8>, content_type: &'static str, cache: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // Players on any origin (a page on a CDN) may read it.
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    r
}

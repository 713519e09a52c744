//! `/v1/rooms/{room}/recordings` and `/v1/recordings`: record a room's program.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_compositor::layout::{self, Layout};
use tessera_compositor::{CompositorError, ProgramConfig};

use crate::recordings::Recording;
use crate::server::error::ApiError;
use crate::server::extract::ApiJson;
use crate::server::routes::params::{api_error, blocking, media, path_param, room_param, setting_pointer};
use crate::server::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSettings {
    width: Option<u32>,
    height: Option<u32>,
    fps: Option<u32>,
    bitrate_kbps: Option<u32>,
}

impl VideoSettings {
    /// The request names a size, rate or bitrate of its own.
    pub fn names_a_picture(&self) -> bool {
        self.width.is_some() || self.height.is_some() || self.fps.is_some() || self.bitrate_kbps.is_some()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSettings {
    bitrate_kbps: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRecording {
    /// A built-in layout's name or a layout document (default `grid`).
    layout: Option<Value>,
    #[serde(default)]
    video: VideoSettings,
    #[serde(default)]
    audio: AudioSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchRecording {
    layout: Value,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    room: Option<String>,
}

fn unprocessable(code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_field(field)
}

/// A layout given by name or inline, and the name the resource shows.
pub fn parse_layout(value: Option<&Value>) -> Result<(Layout, String), ApiError> {
    match value {
        None => Ok((Layout::builtin("grid").expect("grid is built in"), "grid".into())),
        Some(Value::String(name)) => Layout::builtin(name).map(|l| (l, name.clone())).ok_or_else(|| {
            unprocessable(
                "unknown_layout",
                "/layout",
                format!("unknown layout `{name}`; built-in layouts: {}", Layout::builtin_names().join(", ")),
            )
        }),
        Some(doc @ Value::Object(_)) => match layout::validate_document(&doc.to_string()) {
            Ok(l) => Ok((l, "custom".into())),
            Err(errors) => {
                let first = errors.first().map(|e| (format!("/layout{}", e.path), e.reason.clone()));
                let (field, reason) = first.unwrap_or_else(|| ("/layout".into(), "invalid layout".into()));
                Err(unprocessable("invalid_layout", &field, reason))
            }
        },
        Some(_) => Err(unprocessable("invalid_layout", "/layout", "a built-in layout's name or a layout object")),
    }
}

/// The program settings a request asks for, checked.
pub fn program_config(video: &VideoSettings, audio: &AudioSettings) -> Result<ProgramConfig, ApiError> {
    let mut c = ProgramConfig::default();
    c.width = video.width.unwrap_or(c.width);
    c.height = video.height.unwrap_or(c.height);
    c.fps = video.fps.unwrap_or(c.fps);
    c.video_bitrate_kbps = video.bitrate_kbps.unwrap_or(c.video_bitrate_kbps);
    c.audio_bitrate_kbps = audio.bitrate_kbps.unwrap_or(c.audio_bitrate_kbps);
    c.validate().map_err(|e| match e {
        CompositorError::InvalidConfig { field, reason } => {
            unprocessable("invalid_field", &setting_pointer(field), reason)
        }
        other => unprocessable("invalid_field", "/video", other.to_string()),
    })?;
    Ok(c)
}

/// `POST /v1/rooms/{room}/recordings` → 201 with the recording.
pub async fn start(
    State(state): State<AppState>,
    room: Result<Path<String>, PathRejection>,
    ApiJson(req): ApiJson<StartRecording>,
) -> Result<(StatusCode, Json<Recording>), ApiError> {
    let room = room_param(room)?;
    let (layout, name) = parse_layout(req.layout.as_ref())?;
    let config = program_config(&req.video, &req.audio)?;
    let recs = media(&state)?.recordings;
    let asked = room.clone();
    let started = blocking(move || recs.start(&room, layout, name, config), api_error).await;
    if let (Err(refusal), Some(node), Some(media)) = (&started, state.cluster(), state.media())
        && refusal.code == "no_capacity"
    {
        node.refused(media, &asked).await;
    }
    let mut rec = started?;
    if let Some(node) = state.cluster() {
        // Acknowledged once every node can find it (if Redis is up: a node that dies now
        // leaves a recording the others complete).
        node.records().flushed("recordings", &rec.id, std::time::Duration::from_secs(1)).await;
        rec.node = Some(state.node_id().to_owned());
    }
    Ok((StatusCode::CREATED, Json(rec)))
}

/// `GET /v1/recordings?room=` → `{"recordings": [...]}`.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let recs = media(&state)?.recordings;
    let mut all = recs.list(q.room.as_deref());
    if let Some(node) = state.cluster() {
        for rec in &mut all {
            rec.node = Some(state.node_id().to_owned());
        }
        // The other nodes' recordings, as last shared (a running one's duration and size
        // are those of its last change of status).
        let here: std::collections::HashSet<String> = all.iter().map(|r| r.id.clone()).collect();
        let others: Vec<Recording> = crate::cluster::shared_records(node, "recordings", q.room.as_deref()).await;
        all.extend(others.into_iter().filter(|r| !here.contains(&r.id)));
        all.sort_by(|a, b| a.id.cmp(&b.id));
    }
    let mut shown = Vec::new();
    for rec in all {
        shown.push(recs.with_download_url(rec).await);
    }
    Ok(Json(json!({ "recordings": shown })))
}

/// `GET /v1/recordings/{id}`.
pub async fn show(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Recording>, ApiError> {
    let id = path_param(id)?;
    let recs = media(&state)?.recordings;
    let rec = match (recs.get(&id), state.cluster()) {
        (Some(mut rec), cluster) => {
            rec.node = cluster.map(|_| state.node_id().to_owned());
            Some(rec)
        }
        // Another node's (one that is down: requests for the live ones are forwarded).
        (None, Some(node)) => crate::cluster::shared_record(node, "recordings", &id).await,
        (None, None) => None,
    };
    let rec = rec.ok_or_else(|| ApiError::not_found(format!("no recording {id}")))?;
    Ok(Json(recs.with_download_url(rec).await))
}

/// `PATCH /v1/recordings/{id}` `{"layout"}`: answers once the program shows the new layout.
pub async fn patch(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    ApiJson(req): ApiJson<PatchRecording>,
) -> Result<Json<Recording>, ApiError> {
    let id = path_param(id)?;
    let (layout, name) = parse_layout(Some(&req.layout))?;
    let recs = media(&state)?.recordings;
    Ok(Json(blocking(move || recs.set_layout(&id, layout, name), api_error).await?))
}

/// `POST /v1/recordings/{id}/stop`.
pub async fn stop(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Recording>, ApiError> {
    let id = path_param(id)?;
    let recs = media(&state)?.recordings;
    Ok(Json(blocking(move || recs.stop(&id), api_error).await?))
}

//! `/v1/rooms/{room}/streams` and `/v1/streams`: live streams of a room to RTMP(S) ingests.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::error::ApiError;
use crate::server::extract::ApiJson;
use crate::server::routes::params::{api_error, blocking, media, path_param, room_param};
use crate::server::routes::recordings::{AudioSettings, VideoSettings, parse_layout, program_config};
use crate::server::state::AppState;
use crate::streams::{Stream, parse_preset, parse_urls};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartStream {
    destinations: Vec<String>,
    preset: Option<String>,
    layout: Option<Value>,
    #[serde(default)]
    video: VideoSettings,
    #[serde(default)]
    audio: AudioSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchStream {
    layout: Option<Value>,
    #[serde(default)]
    add_destinations: Vec<String>,
    #[serde(default)]
    remove_destinations: Vec<u64>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    room: Option<String>,
}

/// `POST /v1/rooms/{room}/streams` → 201 with the stream and its destinations.
pub async fn start(
    State(state): State<AppState>,
    room: Result<Path<String>, PathRejection>,
    ApiJson(req): ApiJson<StartStream>,
) -> Result<(StatusCode, Json<Stream>), ApiError> {
    let room = room_param(room)?;
    let urls = parse_urls(&req.destinations, "/destinations").map_err(api_error)?;
    let preset = parse_preset(req.preset.as_deref()).map_err(api_error)?;
    let (layout, name) = parse_layout(req.layout.as_ref())?;
    let config = program_config(&req.video, &req.audio)?;
    // Only a stream that names its picture gets a rendition of its own (see `Streams::start`).
    let sized = req.video.names_a_picture();
    let s = media(&state)?.streams;
    let asked = room.clone();
    let started = blocking(move || s.start(&room, urls, preset, (layout, name), config, sized), api_error).await;
    if let (Err(refusal), Some(node), Some(media)) = (&started, state.cluster(), state.media())
        && refusal.code == "no_capacity"
    {
        node.refused(media, &asked).await;
    }
    let mut stream = started?;
    if let Some(node) = state.cluster() {
        node.records().flushed("streams", &stream.id, std::time::Duration::from_secs(1)).await;
        stream.node = Some(state.node_id().to_owned());
    }
    Ok((StatusCode::CREATED, Json(stream)))
}

/// `GET /v1/streams?room=` → `{"streams": [...]}`.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mut all = media(&state)?.streams.list(q.room.as_deref());
    if let Some(node) = state.cluster() {
        for stream in &mut all {
            stream.node = Some(state.node_id().to_owned());
        }
        let here: std::collections::HashSet<String> = all.iter().map(|s| s.id.clone()).collect();
        let others: Vec<Stream> = crate::cluster::shared_records(node, "streams", q.room.as_deref()).await;
        all.extend(others.into_iter().filter(|s| !here.contains(&s.id)));
        all.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Ok(Json(json!({ "streams": all })))
}

/// `GET /v1/streams/{id}`.
pub async fn show(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Stream>, ApiError> {
    let id = path_param(id)?;
    let stream = match (media(&state)?.streams.get(&id), state.cluster()) {
        (Some(mut stream), cluster) => {
            stream.node = cluster.map(|_| state.node_id().to_owned());
            Some(stream)
        }
        (None, Some(node)) => crate::cluster::shared_record(node, "streams", &id).await,
        (None, None) => None,
    };
    stream.map(Json).ok_or_else(|| ApiError::not_found(format!("no stream {id}")))
}

/// `PATCH /v1/streams/{id}` `{"layout", "add_destinations", "remove_destinations"}`.
pub async fn patch(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    ApiJson(req): ApiJson<PatchStream>,
) -> Result<Json<Stream>, ApiError> {
    let id = path_param(id)?;
    let layout = match &req.layout {
        Some(v) => Some(parse_layout(Some(v))?),
        None => None,
    };
    let add = parse_urls(&req.add_destinations, "/add_destinations").map_err(api_error)?;
    let s = media(&state)?.streams;
    let remove = req.remove_destinations;
    Ok(Json(blocking(move || s.update(&id, layout, add, remove), api_error).await?))
}

/// `POST /v1/streams/{id}/stop`.
pub async fn stop(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Stream>, ApiError> {
    let id = path_param(id)?;
    let s = media(&state)?.streams;
    Ok(Json(blocking(move || s.stop(&id), api_error).await?))
}

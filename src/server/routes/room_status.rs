//! `GET /v1/rooms`, `GET /v1/rooms/{room}`: who is in a room and what runs on it;
//! `GET /v1/rooms/{room}/preview.jpg`: a still of the room's program.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tessera_compositor::CompositorError;

use crate::recordings::RecordingStatus;
use crate::server::error::ApiError;
use crate::server::extract::ApiJson;
use crate::server::routes::params::{blocking, media, room_param, valid_name};
use crate::server::state::{AppState, Media};
use crate::streams::StreamStatus;

/// How long the first preview request waits for the branch's first still.
const FIRST_STILL_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /v1/rooms` → `{"rooms": [room...]}`: every room with participants, a program, or a
/// running recording or stream, by name.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let media = media(&state)?;
    let mut names: BTreeSet<String> = media.sfu.rooms().into_iter().collect();
    names.extend(media.hub.rooms());
    names.extend(media.recordings.list(None).into_iter().filter(|r| running(r.status)).map(|r| r.room));
    names.extend(media.streams.list(None).into_iter().filter(|s| s.status == StreamStatus::Active).map(|s| s.room));
    // A room spread over nodes is listed once, by its home node (where it is placed).
    if let Some(node) = state.cluster()
        && let Ok(placed) = node.cluster.placed_here().await
    {
        names.retain(|n| placed.contains(n));
    }
    let mut rooms: Vec<Value> = names.iter().map(|n| with_node(describe(&media, n), state.node_id())).collect();
    // In a cluster, asked directly (not by another node gathering the same list): every
    // other node's rooms too.
    if let Some(node) = state.cluster()
        && !headers.contains_key(crate::cluster::FORWARDED_BY)
    {
        let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        rooms.extend(crate::cluster::gather(node, "/v1/rooms", "rooms", auth).await);
        rooms.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    }
    Ok(Json(json!({ "rooms": rooms })))
}

/// The room as this node describes it, with the node's id (the room's home node when asked
/// through the cluster's routing), each participant's node, and every node of the room.
fn with_node(mut room: Value, node_id: &str) -> Value {
    room["node"] = node_id.into();
    let mut nodes = BTreeSet::new();
    if let Some(participants) = room["participants"].as_array_mut() {
        for p in participants {
            if p["node"].is_null() {
                p["node"] = node_id.into();
            }
            if let Some(n) = p["node"].as_str() {
                nodes.insert(n.to_owned());
            }
        }
    }
    nodes.insert(node_id.to_owned());
    room["nodes"] = nodes.into_iter().collect::<Vec<_>>().into();
    room
}

/// `GET /v1/rooms/{room}` → the room, or 404 when nothing is going on in it.
pub async fn show(
    State(state): State<AppState>,
    room: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let room = room_param(room)?;
    let media = media(&state)?;
    if let Some(node) = state.cluster() {
        node.refresh_room(&media, &room).await;
    }
    let room_value = describe(&media, &room);
    if !active(&room_value) {
        return Err(no_room(&room));
    }
    Ok(Json(with_node(room_value, state.node_id())))
}

/// `PATCH /v1/rooms/{room}` `{"pinned"?: [identity...], "publish_program"?: bool}`.
///
/// - `pinned`: the participants layouts show in their `pinned` regions (e.g. `single`,
///   `pip`), by token identity, most important first. Answers once the program shows them
///   (when one runs); an empty list unpins.
/// - `publish_program`: the room's program joins the room as the participant `program`
///   (its video in H.264, the mix in Opus), starting the program (1280x720 grid) if none
///   runs; `false` takes it out, and the program stops if nothing else uses it.
pub async fn patch(
    State(state): State<AppState>,
    room: Result<Path<String>, PathRejection>,
    body: ApiJson<RoomPatch>,
) -> Result<Json<Value>, ApiError> {
    let room = room_param(room)?;
    let media = media(&state)?;
    let ApiJson(RoomPatch { pinned, publish_program }) = body;
    if pinned.is_none() && publish_program.is_none() {
        return Err(ApiError::invalid_field("/", "give `pinned`, `publish_program` or both"));
    }
    let pinned_given = pinned.is_some();
    let pinned = pinned.unwrap_or_default();
    if pinned.len() > MAX_PINNED {
        return Err(ApiError::invalid_field("/pinned", format!("at most {MAX_PINNED} identities")));
    }
    for (i, id) in pinned.iter().enumerate() {
        if !valid_name(id, 128) {
            return Err(ApiError::invalid_field(
                format!("/pinned/{i}"),
                "identities use letters, digits, '-' and '_' (1 to 128)",
            ));
        }
    }
    if !active(&describe(&media, &room)) {
        return Err(no_room(&room));
    }
    match publish_program {
        Some(true) => {
            let (sfu, hub, room) = (media.sfu.clone(), media.hub.clone(), room.clone());
            let grid = tessera_compositor::layout::Layout::builtin("grid").ok_or_else(|| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the grid layout is missing")
            })?;
            let config = tessera_compositor::ProgramConfig::default();
            let user = crate::media::publication::ProgramUser::Application;
            blocking(
                move || hub.publish_program(&sfu, &room, config, grid, user),
                crate::server::routes::params::api_error,
            )
            .await?;
        }
        Some(false) => {
            let (hub, room) = (media.hub.clone(), room.clone());
            blocking(
                move || {
                    hub.unpublish_program(&room, crate::media::publication::ProgramUser::Application);
                    Ok::<_, crate::error::Error>(())
                },
                crate::server::routes::params::api_error,
            )
            .await?;
        }
        None => {}
    }
    if !pinned_given {
        return Ok(Json(describe(&media, &room)));
    }
    if let Some(program) = media.hub.set_pinned(&room, pinned) {
        blocking(
            move || program.sync_scene(SCENE_TIMEOUT),
            |e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("the program did not show the pins: {e}"),
                )
            },
        )
        .await?;
    }
    Ok(Json(describe(&media, &room)))
}

/// `PATCH /v1/rooms/{room}` body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomPatch {
    pinned: Option<Vec<String>>,
    publish_program: Option<bool>,
}

const MAX_PINNED: usize = 16;
const SCENE_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /v1/rooms/{room}/preview.jpg` → a JPEG still of the room's program (at most 640
/// pixels on its longer side, renewed twice a second). 409 `no_program` while the room has no
/// program, i.e. no recording or stream runs: a preview alone does not start one.
pub async fn preview(
    State(state): State<AppState>,
    room: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let room = room_param(room)?;
    let media = media(&state)?;
    let Some(program) = media.hub.program(&room) else {
        if !active(&describe(&media, &room)) {
            return Err(no_room(&room));
        }
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_program",
            format!("room {room} has no program running: start a recording or a stream to see its preview"),
        ));
    };
    let still = blocking(move || program.preview(FIRST_STILL_TIMEOUT), preview_error).await?;
    let mut response = still.jpeg.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-preview-sequence", HeaderValue::from(still.sequence));
    headers.insert("x-preview-position-ms", HeaderValue::from(still.position.as_millis() as u64));
    Ok(response)
}

fn preview_error(e: CompositorError) -> ApiError {
    match e {
        CompositorError::NotRunning => {
            ApiError::new(StatusCode::CONFLICT, "no_program", "the room's program has just stopped")
        }
        CompositorError::Timeout(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "preview_unavailable",
            "the program produced no still in time; try again",
        ),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", other.to_string()),
    }
}

fn no_room(room: &str) -> ApiError {
    ApiError::not_found(format!("no room {room}: nobody is in it and nothing records or streams it"))
}

fn running(status: RecordingStatus) -> bool {
    matches!(status, RecordingStatus::Starting | RecordingStatus::Recording | RecordingStatus::Stopping)
}

fn active(room: &Value) -> bool {
    ["participants", "recordings", "streams"].iter().any(|k| room[k].as_array().is_some_and(|a| !a.is_empty()))
        || !room["program"].is_null()
}

/// The room resource: participants (identity, name, tracks, speaking), the program, and the
/// running recordings and streams.
fn describe(media: &Media, name: &str) -> Value {
    let sfu_room = media.sfu.get_room(name);
    let speaker = sfu_room.as_ref().and_then(|r| r.active_speaker());
    let mut participants: Vec<Value> = sfu_room
        .map(|r| r.participants())
        .unwrap_or_default()
        .into_iter()
        // The program published into the room is told of as `publish_program`, not as one
        // of the people in it.
        .filter(|p| !p.is_closed() && !p.is_in_process())
        .map(|p| {
            let mut tracks: Vec<Value> = p
                .tracks()
                .iter()
                .map(|t| {
                    json!({
                        "id": t.id,
                        "source": t.source,
                        "mime_type": t.codec.mime_type,
                        "muted": t.is_muted(),
                        "layers": t.forwarder.layer_count(),
                    })
                })
                .collect();
            tracks.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            json!({
                "id": p.id,
                "identity": p.identity(),
                "name": p.name,
                "speaking": speaker.as_deref() == Some(p.id.as_str()),
                "tracks": tracks,
                // Another node's participant (relayed here); `with_node` fills in ours.
                "node": p.node(),
            })
        })
        .collect();
    participants.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let program = media.hub.program(name).map(|p| {
        let c = p.config();
        json!({
            "width": c.width,
            "height": c.height,
            "fps": c.fps,
            "frames": p.stats().frames,
            "preview_url": format!("/v1/rooms/{name}/preview.jpg"),
            // Every picture the program composes (its own first), and the decoders all of
            // them share: one per published track.
            "renditions": p.renditions(),
            "decoders": p.decoders(),
        })
    });
    let recordings: Vec<_> = media.recordings.list(Some(name)).into_iter().filter(|r| running(r.status)).collect();
    let streams: Vec<_> =
        media.streams.list(Some(name)).into_iter().filter(|s| s.status == StreamStatus::Active).collect();
    json!({
        "name": name,
        "participants": participants,
        "active_speaker": speaker,
        "pinned": media.hub.pinned(name),
        "program": program,
        "publish_program": media.hub.is_program_published(name),
        "whep_viewers": media.hub.program_viewers(name),
        "whep_viewers_elsewhere": media.hub.remote_program_viewers(name),
        "recordings": recordings,
        "streams": streams,
    })
}

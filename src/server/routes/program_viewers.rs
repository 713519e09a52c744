//! `PUT /v1/rooms/{room}/program-viewers/{node}` `{"count": n}`: between the nodes of a
//! cluster. A node that serves WHEP viewers of a room whose home is another node tells the
//! home how many it has; the home publishes the room's program into the room while any node
//! has viewers (they receive it through the relay), as for its own WHEP viewers.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_compositor::ProgramConfig;
use tessera_compositor::layout::Layout;

use crate::server::error::ApiError;
use crate::server::extract::ApiJson;
use crate::server::routes::params::{api_error, blocking, media, valid_name};
use crate::server::state::AppState;

/// More viewers than one node could serve: a bad request.
const MAX_COUNT: usize = 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramViewers {
    count: usize,
}

/// → `{"participant": id or null, "count"}`: the program's participant while it is published.
pub async fn put(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    ApiJson(req): ApiJson<ProgramViewers>,
) -> Result<Json<Value>, ApiError> {
    let Path((room, node)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !valid_name(&room, 64) || !valid_name(&node, 128) {
        return Err(ApiError::bad_request("room and node names use letters, digits, '-' and '_'"));
    }
    if req.count > MAX_COUNT {
        return Err(ApiError::invalid_field("/count", format!("at most {MAX_COUNT}")));
    }
    let media = media(&state)?;
    let grid = Layout::builtin("grid").ok_or_else(|| ApiError::bad_request("the grid layout is missing"))?;
    let count = req.count;
    let published = blocking(
        move || media.hub.set_remote_program_viewers(&media.sfu, &room, &node, count, ProgramConfig::default(), grid),
        api_error,
    )
    .await?;
    Ok(Json(json!({ "participant": published, "count": count })))
}

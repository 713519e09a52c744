//! `/v1/rooms/{room}/tokens`: participant tokens for the SFU (browsers, bots, WHIP).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::error::ApiError;
use crate::server::extract::ApiJson;
use crate::server::routes::params::{room_param, valid_name};
use crate::server::state::AppState;
use crate::time::unix_now;
use crate::tokens::{Claims, new_token_id};

const DEFAULT_TTL_S: u64 = 6 * 3600;
const MAX_TTL_S: u64 = 7 * 24 * 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    identity: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "yes")]
    publish: bool,
    #[serde(default = "yes")]
    subscribe: bool,
    #[serde(default)]
    ttl_s: Option<u64>,
    /// In a cluster: the join URL names a node of this region (if one takes new rooms).
    #[serde(default)]
    region: Option<String>,
}

fn yes() -> bool {
    true
}

/// `POST /v1/rooms/{room}/tokens` → 201 `{"token", "room", "identity", "expires_at"}`.
pub async fn create_token(
    State(state): State<AppState>,
    room: Result<Path<String>, PathRejection>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let room = room_param(room)?;
    if !valid_name(&req.identity, 128) {
        return Err(ApiError::invalid_field("/identity", "use letters, digits, '-' and '_' (1 to 128 characters)"));
    }
    if req.identity == crate::media::publication::PROGRAM_IDENTITY {
        return Err(ApiError::invalid_field(
            "/identity",
            "`program` is reserved for the room's program (PATCH the room with publish_program)",
        ));
    }
    let name = req.name.unwrap_or_else(|| req.identity.clone());
    if name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field("/name", "at most 128 characters, no control characters"));
    }
    let ttl = req.ttl_s.unwrap_or(DEFAULT_TTL_S);
    if ttl == 0 || ttl > MAX_TTL_S {
        return Err(ApiError::invalid_field("/ttl_s", "must be from 1 to 604800 seconds"));
    }
    let claims = Claims {
        room: room.clone(),
        identity: req.identity.clone(),
        name,
        publish: req.publish,
        subscribe: req.subscribe,
        exp: unix_now() + ttl,
        jti: new_token_id(),
    };
    if let Some(region) = &req.region
        && !tessera_cluster::node_id::valid(region)
    {
        return Err(ApiError::invalid_field("/region", "use letters, digits, '-', '_' and '.' (1 to 64 characters)"));
    }
    let token = state.tokens().mint(&claims);
    let path = format!("/rooms/{room}?token={token}");
    let (join_url, node, region) = match join_node(&state, req.region.as_deref()).await {
        Some(n) => (format!("{}{path}", n.url()), n.id().to_owned(), n.record.region.clone()),
        // A single node: the join URL is relative to it, as it always was.
        None => (path, state.node_id().to_owned(), None),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "room": room,
            "identity": req.identity,
            "expires_at": claims.exp,
            "join_url": join_url,
            "node": node,
            "region": region,
        })),
    ))
}

/// In a cluster, the node a participant should join through (see
/// [`tessera_cluster::placement::least_loaded`]); this node when the cluster's state cannot
/// be read (it can still take the join and relay it). `None` for a single node.
async fn join_node(state: &AppState, region: Option<&str>) -> Option<tessera_cluster::NodeInfo> {
    let cluster = &state.cluster()?.cluster;
    match cluster.nodes().await {
        Ok(nodes) => {
            let admission = cluster.config().admission;
            if let Some(n) = tessera_cluster::placement::least_loaded(&nodes, admission, region) {
                return Some(n.clone());
            }
            tracing::warn!(?region, "no node takes new rooms: the join URL names this node");
        }
        Err(err) => tracing::warn!(%err, "cannot list the nodes: the join URL names this node"),
    }
    let load = state.media().map(crate::cluster::load::of).unwrap_or_default();
    Some(cluster.record(load).at(tessera_cluster::node::unix_ms()))
}

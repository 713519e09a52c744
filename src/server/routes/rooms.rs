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
    let token = state.tokens().mint(&claims);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "room": room,
            "identity": req.identity,
            "expires_at": claims.exp,
            "join_url": format!("/rooms/{room}?token={token}"),
        })),
    ))
}

//! The SFU's HTTP surface as an axum `Router` the binary merges:
//!
//! - `page.rs`: the web client (`GET /rooms/{room}`, `GET /sfu/client.js`, from `sfu/web/`);
//! - `signalling.rs`: the WebSocket signalling at `GET /v1/rtc` (`PROTOCOL.md`);
//! - `whip.rs`: WHIP ingest (`POST /whip/{room}`, `DELETE`/`PATCH /whip/{room}/{id}`);
//! - `whep.rs`: WHEP playback (`POST /whep/{room}`, `DELETE`/`PATCH /whep/{room}/{id}`);
//! - `tokens.rs`: what the application's tokens decide ([`TokenValidator`], [`Grants`]);
//! - `errors.rs`: JSON errors and the HTTP status of each [`crate::Error`].

mod errors;
mod page;
mod signalling;
mod tokens;
mod whep;
mod whip;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use errors::json_error;
pub use tokens::{Grants, TokenValidator};

use crate::participant::Participant;
use crate::sfu::Sfu;
use crate::signal::IceServer;

/// What every handler gets: the SFU and the application's token rules.
#[derive(Clone)]
struct AppState {
    sfu: Sfu,
    tokens: Arc<dyn TokenValidator>,
}

/// The routes: `GET /rooms/{room}`, `GET /sfu/client.js`, `GET /v1/rtc` (WebSocket),
/// `POST /whip/{room}`, `DELETE`/`PATCH /whip/{room}/{participant}`, `POST /whep/{room}`,
/// `DELETE`/`PATCH /whep/{room}/{viewer}`.
pub fn router(sfu: Sfu, tokens: Arc<dyn TokenValidator>) -> Router {
    Router::new()
        .route("/rooms/{room}", get(page::page))
        .route("/sfu/client.js", get(page::client_js))
        .route("/v1/rtc", get(signalling::ws_upgrade))
        .route("/whip/{room}", post(whip::whip_post))
        .route("/whip/{room}/{id}", axum::routing::delete(whip::whip_delete).patch(whip::whip_patch))
        .route("/whep/{room}", post(whep::whep_post))
        .route("/whep/{room}/{id}", axum::routing::delete(whep::whep_delete).patch(whep::whep_patch))
        .with_state(AppState { sfu, tokens })
}

/// Serves a signalling WebSocket (`GET /v1/rtc`) whose first message, the join, the caller
/// has already read (`join`): the binary, in a cluster, reads the room from it first.
pub async fn serve_socket(
    sfu: Sfu,
    tokens: Arc<dyn TokenValidator>,
    socket: axum::extract::ws::WebSocket,
    join: String,
) {
    signalling::serve_joined(AppState { sfu, tokens }, socket, join).await
}

/// Room names: 1–64 ASCII letters, digits, `-` and `_`.
pub fn valid_room(room: &str) -> bool {
    !room.is_empty() && room.len() <= 64 && room.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The STUN/TURN servers (with credentials) for a participant: for its token's identity, else
/// its participant id. Empty when none are configured.
fn ice_servers_for(sfu: &Sfu, participant: &Participant) -> Vec<IceServer> {
    ice_servers_named(sfu, participant.identity().unwrap_or(&participant.id))
}

/// The STUN/TURN servers (with credentials) for `who` (an identity or an id).
fn ice_servers_named(sfu: &Sfu, who: &str) -> Vec<IceServer> {
    match &sfu.config().ice_servers {
        Some(provider) => provider.ice_servers(who),
        None => Vec::new(),
    }
}

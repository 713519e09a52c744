//! Route table of the API.

mod control;
mod health;
mod hls;
mod layouts;
mod metrics;
mod nodes;
mod params;
mod program_viewers;
#[cfg(test)]
mod proptests;
mod recordings;
mod room_status;
mod rooms;
mod streams;
mod watch;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post, put};

use super::error::ApiError;
use super::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/openapi.json", get(health::openapi))
        .route("/rooms/{room}/control", get(control::page))
        .route("/control/control.js", get(control::script))
        .route("/rooms/{room}/watch", get(watch::page))
        .route("/watch/watch.js", get(watch::script))
        .route("/v1/layouts", get(layouts::list))
        .route("/v1/layouts/validate", post(layouts::validate))
        .route("/v1/layouts/{name}", get(layouts::show))
        .route("/v1/nodes", get(nodes::list))
        .route("/v1/rooms", get(room_status::list))
        .route("/v1/rooms/{room}", get(room_status::show).patch(room_status::patch))
        .route("/v1/rooms/{room}/preview.jpg", get(room_status::preview))
        .route("/v1/rooms/{room}/tokens", post(rooms::create_token))
        .route("/v1/rooms/{room}/program-viewers/{node}", put(program_viewers::put))
        .route("/v1/rooms/{room}/recordings", post(recordings::start))
        .route("/v1/recordings", get(recordings::list))
        .route("/v1/recordings/{id}", get(recordings::show).patch(recordings::patch))
        .route("/v1/recordings/{id}/stop", post(recordings::stop))
        .route("/v1/rooms/{room}/streams", post(streams::start))
        .route("/v1/streams", get(streams::list))
        .route("/v1/streams/{id}", get(streams::show).patch(streams::patch))
        .route("/v1/streams/{id}/stop", post(streams::stop))
        .route("/v1/rooms/{room}/hls", post(hls::start))
        .route("/v1/hls", get(hls::list))
        .route("/v1/hls/{id}", get(hls::show))
        .route("/v1/hls/{id}/stop", post(hls::stop))
        .route("/hls/{room}/{id}/{file}", get(hls::file))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
}

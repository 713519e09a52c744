//! The HTTP API. [`app`] builds the router (usable in-process by tests); [`serve`] runs it on
//! a bound listener until the shutdown future resolves, letting in-flight requests finish.

mod access_log;
mod auth;
mod body_limit;
pub mod error;
pub mod extract;
mod routes;
pub mod shutdown;
mod state;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use tokio::net::TcpListener;

pub use body_limit::MAX_BODY_BYTES;
pub use error::ApiError;
pub use state::{AppState, Media};

/// The whole HTTP app: routes, JSON errors for everything (unknown paths and methods too),
/// bearer auth on `/v1` except `/v1/health`, and a 1 MiB request body limit.
pub fn app(state: AppState) -> Router {
    let api = api(state.clone());
    let app = match state.media() {
        // The SFU's own routes (web client, WebSocket signalling, WHIP) check participant
        // tokens themselves.
        Some(media) => {
            let tokens = RoomTokens(state.tokens().clone());
            api.merge(tessera_sfu::router(media.sfu.clone(), std::sync::Arc::new(tokens)))
        }
        None => api,
    };
    match state.cluster() {
        // In front of everything: a request for a room on another node goes there.
        Some(_) => app.layer(middleware::from_fn_with_state(state.clone(), crate::cluster::routing::route)),
        None => app,
    }
}

/// Participant tokens as the SFU checks them; a participant is known by its token's identity.
pub(crate) struct RoomTokens(pub(crate) crate::tokens::TokenSigner);

impl tessera_sfu::TokenValidator for RoomTokens {
    fn validate(&self, room: &str, token: &str) -> bool {
        self.0.verify(token, room, crate::time::unix_now()).is_ok()
    }

    fn identity(&self, room: &str, token: &str) -> Option<String> {
        self.0.verify(token, room, crate::time::unix_now()).ok().map(|c| c.identity)
    }

    fn grants(&self, room: &str, token: &str) -> tessera_sfu::Grants {
        match self.0.verify(token, room, crate::time::unix_now()) {
            Ok(c) => tessera_sfu::Grants { publish: c.publish, subscribe: c.subscribe },
            Err(_) => tessera_sfu::Grants { publish: false, subscribe: false },
        }
    }
}

fn api(state: AppState) -> Router {
    routes::router()
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        // Layers run outside-in from the bottom: log, then authenticate, then limit the body,
        // so an unauthenticated client learns nothing about sizes or routes.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(body_limit::reject_declared_oversize))
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_api_key))
        .layer(middleware::from_fn(access_log::log_request))
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}

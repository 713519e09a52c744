//! Bearer-token authentication for `/v1`, except the public paths.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;

/// Paths under `/v1` that answer without a key: probes, and the SFU's signalling socket
/// (participants present a room token there).
const PUBLIC_PATHS: &[&str] = &["/v1/health", "/v1/rtc"];

pub async fn require_api_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !needs_key(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    match presented {
        Some(token) if state.api_key().matches(token) => next.run(request).await,
        Some(_) => ApiError::unauthorized("invalid API key").into_response(),
        None => ApiError::unauthorized("missing `Authorization: Bearer <API key>` header").into_response(),
    }
}

fn needs_key(path: &str) -> bool {
    (path == "/v1" || path.starts_with("/v1/")) && !PUBLIC_PATHS.contains(&path)
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, RFC 9110).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_v1_minus_health_needs_a_key() {
        assert!(needs_key("/v1/layouts"));
        assert!(needs_key("/v1"));
        assert!(needs_key("/v1/unknown"));
        assert!(!needs_key("/v1/health"));
        assert!(!needs_key("/"));
        assert!(!needs_key("/v10"));
    }

    #[test]
    fn parses_bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}

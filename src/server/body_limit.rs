//! Request body limit. `DefaultBodyLimit` stops bodies while they are read (chunked ones too);
//! this middleware answers a declared oversize `Content-Length` at once, without reading it.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub async fn reject_declared_oversize(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(len) if len > MAX_BODY_BYTES as u64 => ApiError::payload_too_large(MAX_BODY_BYTES).into_response(),
        _ => next.run(request).await,
    }
}

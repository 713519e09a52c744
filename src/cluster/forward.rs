//! Forwarding one HTTP request to the node that hosts its room, and its answer back: the
//! client sees the answer it would have had from that node directly.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::{ClusterNode, Peer};
use crate::server::ApiError;

/// The longest a forwarded request may take (a recording's start waits for its program).
const TIMEOUT: Duration = Duration::from_secs(30);
/// A listing gathered from every node does not wait longer than this for one of them.
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// Answers are copied whole; ours are small (JSON, SDP, a preview JPEG).
const MAX_ANSWER: usize = 8 * 1024 * 1024;

pub type Client = Option<crate::http_client::HttpsClient>;

/// The client that talks to other nodes (`http://` or `https://` public URLs).
pub fn client() -> Client {
    match crate::http_client::https_client() {
        Ok(client) => Some(client),
        Err(err) => {
            tracing::error!(%err, "cannot build the HTTP client for other nodes: requests for their rooms will fail");
            None
        }
    }
}

/// Headers that belong to one connection, not to the request (RFC 9110 section 7.6.1).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade" | "host"
    ) || name.as_str().starts_with("proxy-")
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !hop_by_hop(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Why a request could not be forwarded.
enum Failure {
    /// The request itself: too large (413).
    Request(ApiError),
    /// The other node: unreachable, too slow, or a bad answer (502).
    Node(String),
}

impl ClusterNode {
    /// Sends `request` to `peer` and answers with its response. A node that cannot be
    /// reached gives 502 `node_unreachable` (its status shows in `GET /v1/nodes`).
    pub async fn forward(&self, peer: &Peer, request: Request) -> Response {
        let result = self.try_forward(peer, request, TIMEOUT).await;
        self.count_forward(false, !matches!(result, Err(Failure::Node(_))));
        match result {
            Ok(answer) => answer,
            Err(Failure::Request(refusal)) => refusal.into_response(),
            Err(Failure::Node(message)) => {
                tracing::warn!(node = %peer.id, %message, "forwarding failed");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "node_unreachable",
                    format!("node {} hosts this and cannot be reached; try again", peer.id),
                )
                .into_response()
            }
        }
    }

    async fn try_forward(&self, peer: &Peer, request: Request, timeout: Duration) -> Result<Response, Failure> {
        let Some(client) = &self.http else { return Err(Failure::Node("no HTTP client for other nodes".into())) };
        let (parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let uri: axum::http::Uri = format!("{}{path}", peer.url)
            .parse()
            .map_err(|e| Failure::Node(format!("bad node URL {}: {e}", peer.url)))?;
        let body = axum::body::to_bytes(body, crate::server::MAX_BODY_BYTES)
            .await
            .map_err(|_| Failure::Request(ApiError::payload_too_large(crate::server::MAX_BODY_BYTES)))?;
        let mut outgoing = hyper::Request::builder().method(parts.method.clone()).uri(uri);
        if let Some(headers) = outgoing.headers_mut() {
            copy_headers(&parts.headers, headers);
            for (name, value) in self.forwarding_headers(peer) {
                if let Ok(value) = value.parse() {
                    headers.insert(name, value);
                }
            }
        }
        let outgoing = outgoing.body(Full::new(body)).map_err(|e| Failure::Node(e.to_string()))?;
        let response = tokio::time::timeout(timeout, client.request(outgoing))
            .await
            .map_err(|_| Failure::Node(format!("no answer within {} s", timeout.as_secs())))?
            .map_err(|e| Failure::Node(format!("unreachable: {e}")))?;
        let (parts, body) = response.into_parts();
        let body: Bytes = tokio::time::timeout(timeout, http_body_util::Limited::new(body, MAX_ANSWER).collect())
            .await
            .map_err(|_| Failure::Node("the answer did not arrive in time".into()))?
            .map_err(|e| Failure::Node(format!("reading the answer: {e}")))?
            .to_bytes();
        let mut answer = Response::builder().status(parts.status);
        if let Some(headers) = answer.headers_mut() {
            copy_headers(&parts.headers, headers);
            headers.remove(header::CONTENT_LENGTH);
        }
        answer.body(Body::from(body)).map_err(|e| Failure::Node(e.to_string()))
    }

    /// GETs `path` from `peer` as JSON (for listings gathered from every node).
    pub async fn get_json(&self, peer: &Peer, path: &str, auth: Option<&str>) -> Result<serde_json::Value, String> {
        let mut request = Request::builder().method("GET").uri(path);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let request = request.body(Body::empty()).map_err(|e| e.to_string())?;
        let response = match self.try_forward(peer, request, GATHER_TIMEOUT).await {
            Ok(response) => response,
            Err(Failure::Node(message)) => return Err(format!("node {}: {message}", peer.id)),
            Err(Failure::Request(refusal)) => return Err(refusal.message),
        };
        if !response.status().is_success() {
            return Err(format!("node {} answered {} to {path}", peer.id, response.status()));
        }
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER).await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_are_not_forwarded() {
        let mut from = HeaderMap::new();
        for (k, v) in [("connection", "close"), ("host", "a"), ("authorization", "Bearer k"), ("content-type", "x")] {
            from.insert(HeaderName::from_static(k), v.parse().unwrap());
        }
        let mut to = HeaderMap::new();
        copy_headers(&from, &mut to);
        assert_eq!(to.len(), 2);
        assert!(to.contains_key("authorization") && to.contains_key("content-type"));
    }
}

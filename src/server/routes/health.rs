//! `GET /v1/health` (no auth).

use axum::Json;
use serde_json::{Value, json};

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /v1/openapi.json`: the API described as OpenAPI 3.
pub async fn openapi() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub const OPENAPI: &str = include_str!("../openapi.json");

#[cfg(test)]
mod tests {
    use super::OPENAPI;

    /// Every route of the API is documented, and nothing else is.
    #[test]
    fn the_openapi_document_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut documented: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
        documented.sort();
        let routes = include_str!("mod.rs");
        let mut served: Vec<String> = routes
            .lines()
            .filter_map(|l| l.trim().strip_prefix(".route(\""))
            .filter_map(|l| l.split('"').next())
            .filter(|p| p.starts_with("/v1/"))
            .map(str::to_string)
            .collect();
        served.sort();
        assert_eq!(documented, served);
    }
}

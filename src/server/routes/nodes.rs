//! `GET /v1/nodes`: the nodes of the cluster, their status and load. A single node (no
//! Redis) lists itself.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tessera_cluster::{NodeInfo, NodeStatus};

use crate::server::error::ApiError;
use crate::server::state::AppState;

fn status_name(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Serving => "serving",
        NodeStatus::Draining => "draining",
        NodeStatus::Down => "down",
    }
}

/// A node as the API shows it.
pub fn node_json(node: &NodeInfo) -> Value {
    let r = &node.record;
    let updated = std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.updated_at_ms);
    json!({
        "id": r.id,
        "url": r.url,
        "status": status_name(node.status),
        "region": r.region,
        "rooms": r.load.rooms,
        "participants": r.load.participants,
        "programs": r.load.programs,
        "program_budget": r.program_budget,
        // Two decimals are all a load share needs.
        "cpu": (f64::from(r.load.cpu) * 100.0).round() / 100.0,
        "updated_at": crate::time::rfc3339(updated),
    })
}

/// `GET /v1/nodes` → `{"nodes": [...]}`, by id.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let nodes = match state.cluster() {
        Some(node) => node.cluster.nodes().await.map_err(|err| {
            tracing::warn!(%err, "cannot list the nodes");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                "the cluster's shared state is unreachable",
            )
        })?,
        None => vec![this_node(&state)],
    };
    Ok(Json(json!({ "nodes": nodes.iter().map(node_json).collect::<Vec<_>>() })))
}

/// This node alone, as its heartbeat would describe it.
fn this_node(state: &AppState) -> NodeInfo {
    let load = state.media().map(crate::cluster::load::of).unwrap_or_default();
    let record = tessera_cluster::NodeRecord {
        id: state.node_id().to_owned(),
        url: String::new(),
        status: NodeStatus::Serving,
        region: None,
        relay: None,
        load,
        program_budget: state.program_budget(),
        updated_at_ms: tessera_cluster::node::unix_ms(),
    };
    NodeInfo { status: NodeStatus::Serving, record }
}

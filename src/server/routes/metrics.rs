//! `GET /metrics`: Prometheus text format (no key: scrapers sit on the private network).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::server::state::AppState;

/// One metric family: its help, type and samples.
struct Family {
    out: String,
}

impl Family {
    fn new() -> Self {
        Family { out: String::new() }
    }

    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        let _ = writeln!(self.out, "{name}{labels} {value}");
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut m = Family::new();
    m.head("tessera_up", "gauge", "1 while the server runs.");
    m.sample("tessera_up", &[], 1.0);
    if let Some(media) = state.media() {
        let rooms = media.sfu.rooms();
        m.head("tessera_rooms", "gauge", "Rooms with participants.");
        m.sample("tessera_rooms", &[], rooms.len() as f64);
        let (mut participants, mut received, mut forwarded, mut forwarded_bytes) = (0usize, 0u64, 0u64, 0u64);
        for room in rooms.iter().filter_map(|r| media.sfu.get_room(r)) {
            for p in room.participants() {
                // Another node's participants (relayed here) are counted there.
                participants += usize::from(p.node().is_none() && !p.is_in_process());
                for t in p.tracks() {
                    received += t.forwarder.received();
                    for d in t.forwarder.downs() {
                        forwarded += d.forwarded();
                        forwarded_bytes += d.forwarded_bytes();
                    }
                }
            }
        }
        m.head("tessera_participants", "gauge", "Participants in all rooms.");
        m.sample("tessera_participants", &[], participants as f64);
        m.head("tessera_sfu_received_packets", "gauge", "RTP packets received on the tracks published now.");
        m.sample("tessera_sfu_received_packets", &[], received as f64);
        m.head(
            "tessera_sfu_forwarded_packets",
            "gauge",
            "RTP packets forwarded to subscribers of the tracks published now.",
        );
        m.sample("tessera_sfu_forwarded_packets", &[], forwarded as f64);
        m.head(
            "tessera_sfu_forwarded_bytes",
            "gauge",
            "RTP payload bytes forwarded to subscribers of the tracks published now.",
        );
        m.sample("tessera_sfu_forwarded_bytes", &[], forwarded_bytes as f64);
        for (c, v) in media.sfu.transport_counters().snapshot() {
            m.head(c.metric(), "counter", c.help());
            m.sample(c.metric(), &[], v as f64);
        }
        let delay = media.sfu.forward_delay();
        let name = "tessera_sfu_forward_delay_seconds";
        m.head(name, "histogram", "Per forwarded copy: from the SFU reading the publisher's packet from its socket to the copy for the subscriber leaving the socket.");
        let counts = delay.counts();
        let mut cumulative = 0u64;
        for (i, c) in counts.iter().enumerate() {
            cumulative += c;
            let le =
                tessera_sfu::DELAY_BUCKETS_US.get(i).map_or("+Inf".to_owned(), |us| format!("{}", *us as f64 / 1e6));
            m.sample(&format!("{name}_bucket"), &[("le", &le)], cumulative as f64);
        }
        m.sample(&format!("{name}_sum"), &[], delay.sum_us() as f64 / 1e6);
        m.sample(&format!("{name}_count"), &[], cumulative as f64);
        m.head(
            "tessera_sfu_handoff_dropped_packets_total",
            "counter",
            "RTP packets the compositor hand-off dropped because it was behind.",
        );
        m.sample("tessera_sfu_handoff_dropped_packets_total", &[], media.sfu.handoff_dropped() as f64);
        m.head(
            "tessera_sfu_send_dropped_datagrams_total",
            "counter",
            "Datagrams the SFU could not send (a full socket buffer or ICE-TCP queue).",
        );
        m.sample("tessera_sfu_send_dropped_datagrams_total", &[], media.sfu.send_drops() as f64);

        m.head("tessera_program_frames", "gauge", "Frames a room's program has produced since it started.");
        m.head("tessera_program_fps", "gauge", "A room's program frames per second of running time.");
        m.head(
            "tessera_program_dropped_frames",
            "gauge",
            "Frames a room's program should have produced at its frame rate by now but did not.",
        );
        let mut destinations: std::collections::BTreeMap<String, usize> = Default::default();
        let mut reconnects = 0u64;
        for room in media.hub.rooms() {
            let Some(program) = media.hub.program(&room) else { continue };
            let stats = program.stats();
            m.sample("tessera_program_frames", &[("room", &room)], stats.frames as f64);
            let secs = stats.position.as_secs_f64();
            // The first frame is at time 0.
            let fps = if secs > 0.0 { stats.frames.saturating_sub(1) as f64 / secs } else { 0.0 };
            m.sample("tessera_program_fps", &[("room", &room)], (fps * 100.0).round() / 100.0);
            let expected = (secs * program.config().fps as f64).round() as u64 + 1;
            m.sample(
                "tessera_program_dropped_frames",
                &[("room", &room)],
                expected.saturating_sub(stats.frames) as f64,
            );
            for d in program.destinations() {
                *destinations.entry(format!("{:?}", d.status).to_lowercase()).or_default() += 1;
                reconnects += d.reconnects;
            }
        }
        m.head("tessera_destinations", "gauge", "Live-streaming destinations by status.");
        for status in ["connecting", "live", "reconnecting", "failed"] {
            m.sample("tessera_destinations", &[("status", status)], *destinations.get(status).unwrap_or(&0) as f64);
        }
        m.head("tessera_destination_reconnects", "gauge", "Reconnects of the current destinations.");
        m.sample("tessera_destination_reconnects", &[], reconnects as f64);

        let recs = media.recordings.list(None);
        m.head("tessera_recordings", "gauge", "Recordings by status.");
        for status in crate::recordings::RecordingStatus::ALL {
            let n = recs.iter().filter(|r| r.status == status).count();
            m.sample("tessera_recordings", &[("status", status.name())], n as f64);
        }
        m.head("tessera_recorded_bytes_total", "counter", "Bytes of completed recordings.");
        m.sample("tessera_recorded_bytes_total", &[], recs.iter().map(|r| r.bytes).sum::<u64>() as f64);
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        m.head(
            "tessera_recording_uploaded_bytes_total",
            "counter",
            "Bytes of recordings uploaded (or written) as parts, while they run.",
        );
        m.sample("tessera_recording_uploaded_bytes_total", &[], tessera_plugins::UPLOADED_BYTES.load(relaxed) as f64);
        m.head(
            "tessera_recording_upload_retries_total",
            "counter",
            "Storage calls of recordings retried after a transient failure.",
        );
        m.sample("tessera_recording_upload_retries_total", &[], tessera_plugins::UPLOAD_RETRIES.load(relaxed) as f64);
        m.head("tessera_programs", "gauge", "Room programs running on this node.");
        m.sample("tessera_programs", &[], media.hub.rooms().len() as f64);
        m.head("tessera_program_budget", "gauge", "Room programs this node runs at most (--program-budget).");
        m.sample("tessera_program_budget", &[], f64::from(media.hub.program_budget()));
        relay_metrics(&mut m, &media.sfu);
    }
    if let Some(node) = state.cluster() {
        cluster_metrics(&mut m, node).await;
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.out)
}

/// A relay link's figure.
type LinkFigure = fn(&tessera_sfu::relay::LinkCounters) -> u64;

/// The relay links to other nodes (rooms spread over nodes), by peer node.
fn relay_metrics(m: &mut Family, sfu: &tessera_sfu::Sfu) {
    let links = sfu.relay_links();
    if links.is_empty() {
        return;
    }
    m.head("tessera_relay_link_up", "gauge", "1 per relay link whose other node was heard in the last 3 s.");
    for l in &links {
        let up = l.state() == tessera_sfu::relay::LinkState::Up;
        m.sample("tessera_relay_link_up", &[("peer", l.node())], if up { 1.0 } else { 0.0 });
    }
    let figures: [(&str, &str, &str, LinkFigure); 11] = [
        ("tessera_relay_packets_sent_total", "counter", "RTP packets sent on the link.", |c| c.packets_sent.get()),
        ("tessera_relay_bytes_sent_total", "counter", "RTP payload bytes sent on the link.", |c| c.bytes_sent.get()),
        ("tessera_relay_packets_received_total", "counter", "RTP packets received (repairs included).", |c| {
            c.packets_received.get()
        }),
        ("tessera_relay_bytes_received_total", "counter", "RTP payload bytes received.", |c| c.bytes_received.get()),
        ("tessera_relay_nacks_sent_total", "counter", "Missing packets asked for.", |c| c.nacks_sent.get()),
        ("tessera_relay_retransmitted_total", "counter", "Repairs (RTX) sent.", |c| c.retransmitted.get()),
        ("tessera_relay_repaired_total", "counter", "Missing packets that arrived as repairs.", |c| c.repaired.get()),
        ("tessera_relay_lost_total", "counter", "Missing packets given up on.", |c| c.lost.get()),
        ("tessera_relay_rejected_total", "counter", "Datagrams that did not decrypt.", |c| c.rejected.get()),
        ("tessera_relay_keyframe_requests_total", "counter", "Keyframe requests sent over the link.", |c| {
            c.keyframe_requests_sent.get()
        }),
        ("tessera_relay_rtt_seconds", "gauge", "The link's round trip, as its probe measures it.", |c| c.rtt_us.get()),
    ];
    for (name, kind, help, value) in figures {
        m.head(name, kind, help);
        for l in &links {
            let v = value(l.counters()) as f64;
            let v = if name == "tessera_relay_rtt_seconds" { v / 1e6 } else { v };
            m.sample(name, &[("peer", l.node())], v);
        }
    }
}

/// One number of a node's record.
type NodeGauge = fn(&tessera_cluster::NodeRecord) -> f64;

/// Cluster mode: placements, forwarded calls, Redis health, and every node's load as the
/// cluster sees it (so one scrape of any node shows the whole cluster).
async fn cluster_metrics(m: &mut Family, node: &crate::cluster::ClusterNode) {
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let stats = node.cluster.stats();
    m.head("tessera_cluster_placements_total", "counter", "Rooms this node placed (on any node).");
    m.sample("tessera_cluster_placements_total", &[], stats.placements as f64);
    m.head("tessera_cluster_placements_refused_total", "counter", "Placements refused: no node had capacity.");
    m.sample("tessera_cluster_placements_refused_total", &[], stats.refused as f64);
    m.head("tessera_cluster_redis_up", "gauge", "1 if this node's last Redis command succeeded.");
    m.sample("tessera_cluster_redis_up", &[], if stats.redis_up { 1.0 } else { 0.0 });
    m.head("tessera_cluster_redis_errors_total", "counter", "Redis commands of this node that failed.");
    m.sample("tessera_cluster_redis_errors_total", &[], stats.redis_errors as f64);
    let forwarded = node.forward_stats();
    m.head("tessera_cluster_forwarded_total", "counter", "Requests this node forwarded to the room's node.");
    m.sample("tessera_cluster_forwarded_total", &[("kind", "http")], forwarded.http.load(relaxed) as f64);
    m.sample("tessera_cluster_forwarded_total", &[("kind", "websocket")], forwarded.websockets.load(relaxed) as f64);
    m.head("tessera_cluster_forward_failures_total", "counter", "Forwarded requests whose node could not be reached.");
    m.sample("tessera_cluster_forward_failures_total", &[], forwarded.failed.load(relaxed) as f64);
    let Ok(nodes) = node.cluster.nodes().await else { return };
    m.head("tessera_cluster_node_up", "gauge", "1 per node that is serving or draining, 0 if down.");
    for n in &nodes {
        m.sample("tessera_cluster_node_up", &[("node", n.id())], if n.is_up() { 1.0 } else { 0.0 });
    }
    let gauges: [(&str, &str, NodeGauge); 4] = [
        ("tessera_cluster_node_rooms", "Rooms per node, as its heartbeat reports them.", |r| f64::from(r.load.rooms)),
        ("tessera_cluster_node_participants", "Participants per node.", |r| f64::from(r.load.participants)),
        ("tessera_cluster_node_programs", "Room programs per node.", |r| f64::from(r.load.programs)),
        ("tessera_cluster_node_cpu", "CPU use per node's machine, 0 to 1.", |r| f64::from(r.load.cpu)),
    ];
    for (name, help, value) in gauges {
        m.head(name, "gauge", help);
        for n in &nodes {
            m.sample(name, &[("node", n.id())], value(&n.record));
        }
    }
}

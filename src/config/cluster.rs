//! Cluster mode and admission: the Redis URL, this node's id and public URL, the CPU limit,
//! and the program budget (which a single node applies too).

use std::net::SocketAddr;

use super::{ConfigError, FileConfig};
use crate::cli::ServeArgs;
use crate::turn::Secret;

/// Cluster mode: the shared Redis and this node's place in it.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Debug is redacted: the URL may carry Redis's password.
    pub redis_url: Secret,
    /// `None`: generated once and kept in the data directory.
    pub node_id: Option<String>,
    /// Base URL of this node's HTTP as other nodes reach it, without a trailing slash.
    pub public_url: String,
    /// CPU share above which the node takes no new rooms.
    pub max_cpu: f32,
    /// This node's region label (`--region`).
    pub region: Option<String>,
    /// The relay links' UDP port (`--relay-port`; 0: any free port).
    pub relay_port: u16,
    /// The relay address other nodes use, when not the bound one (`--relay-public-addr`).
    pub relay_public_addr: Option<SocketAddr>,
}

/// 1.5 programs per core: a 720p program costs about 0.6 of a core (bench/compositor.md), so
/// a 2-core machine runs 3 with room left for the SFU.
pub fn default_program_budget() -> u32 {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u32;
    (cores * 3 / 2).max(1)
}

pub(super) fn program_budget(args: &ServeArgs, file: &FileConfig) -> Result<u32, ConfigError> {
    match args.program_budget.or(file.program_budget) {
        Some(0) => Err(ConfigError::Invalid { setting: "program_budget", reason: "must be at least 1".into() }),
        Some(n) => Ok(n),
        None => Ok(default_program_budget()),
    }
}

/// Cluster mode when a Redis URL is set (an empty one means "not set"); the node id, public
/// URL and CPU limit are checked here so that a typo stops the start, not the first placement.
pub fn cluster_settings(args: &ServeArgs, file: &FileConfig) -> Result<Option<ClusterSettings>, ConfigError> {
    let redis_url = [&args.redis_url, &file.redis_url].into_iter().flatten().find(|s| !s.is_blank()).cloned();
    let Some(redis_url) = redis_url else { return Ok(None) };
    let url = redis_url.expose().trim();
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://")) {
        return Err(ConfigError::Invalid {
            setting: "redis_url",
            reason: "use redis://host:port/db or rediss://host:port/db".into(),
        });
    }
    let node_id = args.node_id.clone().or_else(|| file.node_id.clone()).filter(|id| !id.trim().is_empty());
    if let Some(id) = &node_id
        && !tessera_cluster::node_id::valid(id)
    {
        return Err(ConfigError::Invalid {
            setting: "node_id",
            reason: "use letters, digits, '-', '_' and '.' (1 to 64 characters)".into(),
        });
    }
    let http_addr = args.http_addr.or(file.http_addr).unwrap_or_else(|| ([127, 0, 0, 1], 8080).into());
    let public_url = match args.public_url.clone().or_else(|| file.public_url.clone()).filter(|u| !u.trim().is_empty())
    {
        Some(url) => {
            let url = url.trim().trim_end_matches('/').to_owned();
            let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
            if rest.is_none_or(|host| host.is_empty() || host.contains(char::is_whitespace)) {
                return Err(ConfigError::Invalid {
                    setting: "public_url",
                    reason: "use http://host:port or https://host (the base URL other nodes reach this one at)".into(),
                });
            }
            url
        }
        None => default_public_url(http_addr, args.rtc_ips.as_deref().or(file.rtc_ips.as_deref())),
    };
    let max_cpu = args.max_cpu.or(file.max_cpu).unwrap_or(tessera_cluster::Admission::default().max_cpu);
    if !(0.1..=1.0).contains(&max_cpu) {
        return Err(ConfigError::Invalid { setting: "max_cpu", reason: "a share of the CPU from 0.1 to 1.0".into() });
    }
    let region = args.region.clone().or_else(|| file.region.clone()).filter(|r| !r.trim().is_empty());
    if let Some(r) = &region
        && !tessera_cluster::node_id::valid(r)
    {
        return Err(ConfigError::Invalid {
            setting: "region",
            reason: "use letters, digits, '-', '_' and '.' (1 to 64 characters)".into(),
        });
    }
    let relay_port = args.relay_port.or(file.relay_port).unwrap_or(0);
    let relay_public_addr = args.relay_public_addr.or(file.relay_public_addr);
    Ok(Some(ClusterSettings {
        redis_url: Secret::new(url),
        node_id,
        public_url,
        max_cpu,
        region,
        relay_port,
        relay_public_addr,
    }))
}

/// `http://ADDR` from the listening address; a wildcard address is replaced by the first
/// advertised WebRTC address (the host's reachable one), else loopback.
pub(super) fn default_public_url(http_addr: SocketAddr, rtc_ips: Option<&[std::net::IpAddr]>) -> String {
    let ip = match http_addr.ip() {
        ip if ip.is_unspecified() => {
            rtc_ips.and_then(|ips| ips.first().copied()).unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())
        }
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, http_addr.port()))
}

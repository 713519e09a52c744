//! SFU configuration: where ICE listens and how media is handled.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::signal::IceServer;

/// ICE transport settings. All peer connections share one UDP port (and one ICE-TCP
/// listener) per address in `ips`.
#[derive(Debug, Clone)]
pub struct IceConfig {
    /// Local addresses to gather host candidates on (tests: only 127.0.0.1).
    pub ips: Vec<IpAddr>,
    /// UDP port range (inclusive) the shared socket binds in; `None`: an ephemeral port.
    pub udp_port_range: Option<(u16, u16)>,
    /// Also offer passive ICE-TCP candidates (fallback for networks that block UDP).
    pub tcp: bool,
    /// TCP port range (inclusive) the ICE-TCP listener binds in; `None`: an ephemeral port.
    pub tcp_port_range: Option<(u16, u16)>,
    /// Public addresses advertised instead of the local ones (1:1 NAT, e.g. a cloud VM's
    /// elastic IP). Empty: advertise the local addresses.
    pub public_ips: Vec<String>,
    /// Forwarding threads, each reading its own socket on the shared UDP port
    /// (`SO_REUSEPORT`); 0: one per core.
    pub threads: usize,
}

impl Default for IceConfig {
    fn default() -> Self {
        Self {
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            udp_port_range: None,
            tcp: true,
            tcp_port_range: None,
            public_ips: Vec::new(),
            threads: 0,
        }
    }
}

/// SFU settings.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// ICE transport.
    pub ice: IceConfig,
    /// At most one keyframe request per track is sent to a publisher in this interval.
    pub keyframe_request_interval: Duration,
    /// Participants per room (WebSocket and WHIP together).
    pub max_participants: usize,
    /// STUN/TURN servers handed to clients (in `joined` and as WHIP `Link` headers); none by
    /// default. The SFU itself needs no TURN client: a relayed client's checks reach its host
    /// candidates from the TURN server's relay address.
    pub ice_servers: Option<Arc<dyn IceServerProvider>>,
    /// The forwarding-delay probe times one forwarded copy in this many (by sequence
    /// number); 0: off, costing nothing per copy.
    pub forward_delay_sample: u16,
}

/// The STUN/TURN servers a participant is given, with credentials minted for it (e.g. the TURN
/// REST API's time-limited ones). `Debug` must not show secrets.
pub trait IceServerProvider: Send + Sync + std::fmt::Debug + 'static {
    /// The servers for a participant: `identity` is its token's identity, else its participant
    /// id. Called once per join; never logged.
    fn ice_servers(&self, identity: &str) -> Vec<IceServer>;
}

/// A fixed list (e.g. STUN servers, or TURN with long-term credentials).
impl IceServerProvider for Vec<IceServer> {
    fn ice_servers(&self, _identity: &str) -> Vec<IceServer> {
        self.clone()
    }
}

impl Default for SfuConfig {
    fn default() -> Self {
        Self {
            ice: IceConfig::default(),
            keyframe_request_interval: Duration::from_millis(500),
            max_participants: 50,
            ice_servers: None,
            forward_delay_sample: 1,
        }
    }
}

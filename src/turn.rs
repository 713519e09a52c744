//! TURN for clients whose networks block UDP or sit behind symmetric NAT: an external TURN
//! server (coturn) with the TURN REST API's shared secret (`use-auth-secret`). Each participant
//! is given time-limited credentials with its join answer (and WHIP answer): username
//! `EXPIRY:IDENTITY` (Unix seconds), password `base64(HMAC-SHA1(secret, username))`, which the
//! TURN server checks with the same secret, without asking us.
//!
//! The secret and the passwords are never logged: [`Secret`] and [`TurnConfig`] redact their
//! `Debug`, and the SFU's `IceServer` hides its credential.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use tessera_sfu::{IceServer, IceServerProvider};

/// How long issued credentials stay valid unless `turn_ttl_s` says otherwise. A credential must
/// outlast the call, not only the join: the TURN server checks it again at every allocation
/// refresh.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Bounds of `turn_ttl_s`: a minute to seven days.
pub const MIN_TTL: Duration = Duration::from_secs(60);
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A secret string from a flag, the environment or the config file. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, to compute with (never to print).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Empty or whitespace only: "not set" (`TESSERA_TURN_SECRET=`).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The TURN servers and the shared secret their credentials are derived from.
#[derive(Clone)]
pub struct TurnConfig {
    /// `turn:`/`turns:` URLs, checked by [`check_url`].
    pub urls: Vec<String>,
    secret: Secret,
    /// Validity of issued credentials.
    pub ttl: Duration,
}

impl fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("secret", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl TurnConfig {
    /// URLs (already checked) and a non-blank secret.
    pub fn new(urls: Vec<String>, secret: Secret, ttl: Duration) -> Self {
        Self { urls, secret, ttl }
    }

    /// Credentials for `identity` valid until `now + ttl`.
    pub fn credentials(&self, identity: &str, now: SystemTime) -> (String, String) {
        let expiry = now.duration_since(UNIX_EPOCH).unwrap_or_default().saturating_add(self.ttl).as_secs();
        let username = username(expiry, identity);
        let password = password(self.secret.expose(), &username);
        (username, password)
    }
}

impl IceServerProvider for TurnConfig {
    fn ice_servers(&self, identity: &str) -> Vec<IceServer> {
        let (username, credential) = self.credentials(identity, SystemTime::now());
        vec![IceServer { urls: self.urls.clone(), username: Some(username), credential: Some(credential) }]
    }
}

/// TURN REST API username: `EXPIRY:IDENTITY` (coturn reads the number before the first `:`).
pub fn username(expiry_unix: u64, identity: &str) -> String {
    format!("{expiry_unix}:{identity}")
}

/// TURN REST API password: `base64(HMAC-SHA1(secret, username))`.
pub fn password(secret: &str, username: &str) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// Checks one TURN URL (RFC 7065): `turn:HOST[:PORT][?transport=udp|tcp]` or `turns:…`, HOST
/// a name, an IPv4 address or a bracketed IPv6 address. Returns it trimmed.
pub fn check_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    let bad =
        |why: &str| format!("`{url}` is not a TURN URL ({why}); use turn:HOST[:PORT][?transport=udp|tcp] or turns:…");
    let lower = url.to_ascii_lowercase();
    let rest = if lower.starts_with("turn:") {
        &url[5..]
    } else if lower.starts_with("turns:") {
        &url[6..]
    } else {
        return Err(bad("it must start with turn: or turns:"));
    };
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    if let Some(q) = query {
        let transport = q.strip_prefix("transport=").map(str::to_ascii_lowercase);
        if !matches!(transport.as_deref(), Some("udp" | "tcp")) {
            return Err(bad("the only query is transport=udp or transport=tcp"));
        }
    }
    if hostport.starts_with("//") || hostport.contains(['/', '@', '#', ' ']) {
        return Err(bad("no //, path, user or fragment"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("not an IPv6 address in []"));
        }
        match after {
            "" => (addr, None),
            p => (addr, Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?)),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.contains(':') || host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
    if !host_ok {
        return Err(bad("no valid host"));
    }
    if let Some(p) = port
        && !p.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(bad("the port must be a number from 1 to 65535"));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently:
    /// `printf %s '1700000000:ada' | openssl dgst -sha1 -hmac 'north-wind' -binary | base64`
    /// and Python's `base64.b64encode(hmac.new(b'north-wind', b'1700000000:ada', 'sha1').digest())`.
    #[test]
    fn passwords_match_an_independent_hmac_sha1() {
        assert_eq!(password("north-wind", "1700000000:ada"), "dd/sKaHwl4f+46zpQbUx/z6kxF0=");
        // RFC 2202 test case 2, base64 of effcdf6ae5eb2fa2d27416d5f184df9c259a7c79.
        assert_eq!(password("Jefe", "what do ya want for nothing?"), "7/zfauXrL6LSdBbV8YTfnCWafHk=");
    }

    #[test]
    fn credentials_expire_after_the_ttl_and_name_the_identity() {
        let turn = TurnConfig::new(vec!["turn:127.0.0.1:3478".into()], Secret::new("north-wind"), DEFAULT_TTL);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000 - 86_400);
        let (user, pass) = turn.credentials("ada", now);
        assert_eq!(user, "1700000000:ada");
        assert_eq!(pass, "dd/sKaHwl4f+46zpQbUx/z6kxF0=");
        let servers = turn.ice_servers("PA_7");
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].urls, ["turn:127.0.0.1:3478"]);
        let user = servers[0].username.clone().unwrap();
        let (expiry, identity) = user.split_once(':').unwrap();
        let expiry: u64 = expiry.parse().unwrap();
        let soon = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 86_400;
        assert!(expiry.abs_diff(soon) <= 2, "{expiry} vs {soon}");
        assert_eq!(identity, "PA_7");
        assert_eq!(servers[0].credential.as_deref(), Some(password("north-wind", &user).as_str()));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let turn = TurnConfig::new(vec!["turn:h".into()], Secret::new("north-wind"), DEFAULT_TTL);
        let shown = format!("{turn:?} {:?} {:?}", Secret::new("north-wind"), turn.ice_servers("ada"));
        assert!(!shown.contains("north-wind"), "{shown}");
        let (_, pass) = turn.credentials("ada", SystemTime::now());
        assert!(!format!("{:?}", turn.ice_servers("ada")).contains(&pass));
    }

    #[test]
    fn turn_urls() {
        for good in [
            "turn:127.0.0.1:3478?transport=udp",
            "turn:turn.example.com",
            "turns:turn.example.com:5349?transport=tcp",
            "TURN:Example.COM:3478",
            "turn:[::1]:3478?transport=tcp",
            "turn:[2001:db8::1]",
            " turn:h:1 ",
        ] {
            assert_eq!(check_url(good), Ok(good.trim().to_owned()), "{good}");
        }
        for bad in [
            "",
            "stun:stun.example.com",
            "http://turn.example.com",
            "turn:",
            "turn://h:3478",
            "turn:h:0",
            "turn:h:65536",
            "turn:h:port",
            "turn:h:3478?transport=sctp",
            "turn:h?foo=bar",
            "turn:user@h",
            "turn:h/path",
            "turn:[::1",
            "turn:[nope]:1",
            "turn:h!x",
        ] {
            let err = check_url(bad).unwrap_err();
            assert!(err.contains("is not a TURN URL"), "{bad}: {err}");
        }
    }
}

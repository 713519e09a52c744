//! RTMP(S) destination URLs. The stream key (the path after the application) is a secret:
//! `Display` and `Debug` show `rtmp://host/app/****`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct UrlError {
    pub reason: String,
}

fn err(reason: impl Into<String>) -> UrlError {
    UrlError { reason: reason.into() }
}

/// A validated `rtmp://` or `rtmps://` URL: `scheme://host[:port]/app[/…]/key[?query]`.
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    full: String,
    tls: bool,
    host: String,
    port: u16,
    app: String,
}

impl RtmpUrl {
    pub fn parse(s: &str) -> Result<RtmpUrl, UrlError> {
        let s = s.trim();
        let (tls, rest) = if let Some(r) = s.strip_prefix("rtmps://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("rtmp://") {
            (false, r)
        } else {
            let scheme = s.split_once("://").map(|(p, _)| p).unwrap_or("");
            return Err(err(format!(
                "only rtmp:// and rtmps:// URLs are accepted{}",
                if scheme.is_empty() { String::new() } else { format!(", not {scheme}://") }
            )));
        };
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("the URL contains spaces or control characters"));
        }
        let (authority, path) = rest.split_once('/').ok_or_else(|| err("the URL has no application and stream key"))?;
        if authority.contains('@') {
            return Err(err("credentials in the URL's host part are not supported"));
        }
        // `[v6]` or `[v6]:port` (the address's colons are not a port's), else `host[:port]`.
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (addr, after) =
                    bracketed.split_once(']').ok_or_else(|| err("the URL's IPv6 address has no closing ']'"))?;
                if addr.is_empty() {
                    return Err(err("the URL has no host"));
                }
                let port = match after {
                    "" => None,
                    _ => Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| err(format!("unexpected {after:?} after the IPv6 address")))?,
                    ),
                };
                (&authority[..addr.len() + 2], port)
            }
            None => match authority.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(err("an IPv6 address must be in brackets: rtmp://[::1]/app/key"));
                }
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        let port = match port {
            None if tls => 443,
            None => 1935,
            Some(p) => {
                let port: u16 = p.parse().map_err(|_| err(format!("invalid port {p:?}")))?;
                if port == 0 {
                    return Err(err("port 0 is not valid"));
                }
                port
            }
        };
        if host.is_empty() {
            return Err(err("the URL has no host"));
        }
        let host = host.to_string();
        let path = path.split('?').next().unwrap_or("");
        let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if segments.len() < 2 {
            return Err(err("the URL needs an application and a stream key: rtmp://host/app/key"));
        }
        let app = segments[..segments.len() - 1].join("/");
        Ok(RtmpUrl { full: s.to_string(), tls, host, port, app })
    }

    /// The URL with its key, for the sink only. Never log or return it.
    pub fn expose_secret(&self) -> &str {
        &self.full
    }
    pub fn is_tls(&self) -> bool {
        self.tls
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// `text` with every occurrence of the URL and its stream key masked: for error messages
    /// that come back from the network stack.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.full, &self.redacted());
        for secret in self.secrets() {
            out = out.replace(secret, "****");
        }
        out
    }

    /// The secret parts: everything from the stream key on (first, so it goes as one), the key
    /// (the last path segment) and the query. Found by the segments `parse` read, not by the
    /// app as a prefix: `rtmp://host//app/key` has the app `app` after an empty segment.
    fn secrets(&self) -> Vec<&str> {
        let Some((_, after_scheme)) = self.full.split_once("://") else {
            return Vec::new();
        };
        let Some((_, path)) = after_scheme.split_once('/') else {
            return Vec::new();
        };
        let (segments, query) = path.split_once('?').unwrap_or((path, ""));
        let key_end = segments.trim_end_matches('/').len();
        let key_start = segments[..key_end].rfind('/').map_or(0, |i| i + 1);
        [&path[key_start..], &segments[key_start..key_end], query].into_iter().filter(|s| !s.is_empty()).collect()
    }

    /// `rtmp://host/app/****`: safe for logs and API responses.
    pub fn redacted(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        let default_port = if self.tls { 443 } else { 1935 };
        let port = if self.port == default_port { String::new() } else { format!(":{}", self.port) };
        format!("{scheme}://{}{port}/{}/****", self.host, self.app)
    }
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RtmpUrl({})", self.redacted())
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn youtube_and_ivs_urls_parse_and_redact() {
        let yt = RtmpUrl::parse("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop").unwrap();
        assert_eq!(yt.redacted(), "rtmp://a.rtmp.youtube.com/live2/****");
        assert_eq!((yt.port(), yt.is_tls()), (1935, false));
        let ivs = RtmpUrl::parse("rtmps://abc.global-contribute.live-video.net:443/app/sk_us-west-2_SECRET").unwrap();
        assert_eq!(ivs.redacted(), "rtmps://abc.global-contribute.live-video.net/app/****");
        assert!(ivs.is_tls());
        let local = RtmpUrl::parse("rtmp://127.0.0.1:19350/live/key?token=x").unwrap();
        assert_eq!(local.redacted(), "rtmp://127.0.0.1:19350/live/****");
    }

    #[test]
    fn the_key_never_shows_in_display_or_debug() {
        let u = RtmpUrl::parse("rtmp://host/app/SUPERSECRET").unwrap();
        assert!(!format!("{u}").contains("SUPERSECRET"));
        assert!(!format!("{u:?}").contains("SUPERSECRET"));
        assert!(u.expose_secret().contains("SUPERSECRET"));
        let scrubbed = u.scrub("could not publish SUPERSECRET to rtmp://host/app/SUPERSECRET");
        assert_eq!(scrubbed, "could not publish **** to rtmp://host/app/****");
        let q = RtmpUrl::parse("rtmp://host/app/KEY?token=TOKEN").unwrap();
        assert!(!q.scrub("stream KEY?token=TOKEN refused").contains("TOKEN"));
    }

    #[test]
    fn ipv6_hosts_and_empty_segments() {
        // Found by the property tests: a bracketed IPv6 host without a port was refused
        // ("invalid port \"1]\""), and after an empty segment `scrub` left the key alone.
        let v6 = RtmpUrl::parse("rtmp://[::1]/live/KEY").unwrap();
        assert_eq!((v6.host(), v6.port()), ("[::1]", 1935));
        assert_eq!(RtmpUrl::parse("rtmps://[2001:db8::7]:8443/live/KEY").unwrap().port(), 8443);
        assert!(RtmpUrl::parse("rtmp://::1/live/KEY").unwrap_err().reason.contains("brackets"));
        assert!(RtmpUrl::parse("rtmp://[::1]x/live/KEY").is_err());
        let u = RtmpUrl::parse("rtmp://host//live/SECRET?token=TOKEN").unwrap();
        assert_eq!(u.scrub("stream SECRET refused (token=TOKEN)"), "stream **** refused (****)");
    }

    #[test]
    fn other_schemes_and_malformed_urls_are_refused_with_a_reason() {
        for (url, reason) in [
            ("file:///etc/passwd", "not file://"),
            ("http://host/app/key", "not http://"),
            ("host/app/key", "only rtmp:// and rtmps://"),
            ("rtmp://host/app", "application and a stream key"),
            ("rtmp://host", "no application"),
            ("rtmp:///app/key", "no host"),
            ("rtmp://host:99999/app/key", "invalid port"),
            ("rtmp://user:pw@host/app/key", "credentials"),
            ("rtmp://host/app/ke y", "spaces"),
        ] {
            let e = RtmpUrl::parse(url).expect_err(url);
            assert!(e.reason.contains(reason), "{url}: {}", e.reason);
        }
    }
}

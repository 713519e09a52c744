//! Property tests of RTMP(S) URL parsing: URLs come from API clients, and the stream key in
//! them is a secret that must never show in `Display`, `Debug`, `redacted` or a scrubbed
//! message, whatever the URL looks like.

use proptest::prelude::*;

use super::*;

fn config(cases: u32) -> ProptestConfig {
    // No regression files: a failure prints its minimal input, which belongs in a unit test.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A URL's parts, and the URL as a client might write it (extra slashes, a query).
#[derive(Debug, Clone)]
struct Parts {
    tls: bool,
    host: String,
    port: Option<u16>,
    app: Vec<String>,
    key: String,
    query: Option<String>,
    slashes: (usize, usize),
}

impl Parts {
    fn url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let lead = "/".repeat(self.slashes.0);
        let mid = "/".repeat(self.slashes.1);
        let query = self.query.as_ref().map(|q| format!("?{q}")).unwrap_or_default();
        format!("{scheme}://{}{port}/{lead}{}/{mid}{}{query}", self.host, self.app.join("/"), self.key)
    }
}

fn parts() -> impl Strategy<Value = Parts> {
    let host = prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        Just("[::1]".to_string()),
        Just("[2001:db8::7]".to_string()),
    ];
    (
        any::<bool>(),
        host,
        prop::option::of(1u16..=u16::MAX),
        prop::collection::vec("[a-z][a-z0-9_]{0,8}", 1..3),
        // Distinctive, so a leak is a leak and not a coincidence with the host or app.
        "[A-Za-z0-9_-]{4,24}".prop_map(|k| format!("KEY{k}")),
        prop::option::of("[a-z]{1,6}=[A-Za-z0-9]{1,10}"),
        (0usize..3, 0usize..3),
    )
        .prop_map(|(tls, host, port, app, key, query, slashes)| Parts {
            tls,
            host,
            port,
            app,
            key,
            query,
            slashes,
        })
}

/// Nothing shown to users contains `secret`.
fn check_hidden(u: &RtmpUrl, secret: &str) -> Result<(), TestCaseError> {
    for shown in [u.to_string(), format!("{u:?}"), u.redacted()] {
        prop_assert!(!shown.contains(secret), "{secret:?} shows in {shown:?}");
    }
    let message = format!("publish {} failed: stream {secret} refused", u.expose_secret());
    let scrubbed = u.scrub(&message);
    prop_assert!(!scrubbed.contains(secret), "{secret:?} survives scrubbing: {scrubbed:?}");
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    /// Any text is refused with a reason, or is an rtmp(s) URL with a host, a port and an app.
    #[test]
    fn arbitrary_text_is_refused_with_a_reason(text in prop_oneof![any::<String>(), "rtmps?://[ -~]{0,30}"]) {
        match RtmpUrl::parse(&text) {
            Ok(u) => {
                prop_assert!(text.trim().starts_with("rtmp://") || text.trim().starts_with("rtmps://"));
                prop_assert!(!u.host().is_empty() && u.port() != 0);
                prop_assert!(u.redacted().ends_with("/****"));
            }
            Err(e) => prop_assert!(!e.reason.trim().is_empty()),
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn written_urls_parse_to_their_parts_and_hide_the_key(p in parts()) {
        let url = p.url();
        let u = RtmpUrl::parse(&url);
        prop_assert!(u.is_ok(), "{url}: {u:?}");
        let u = u.unwrap_or_else(|_| unreachable!());
        prop_assert_eq!(u.is_tls(), p.tls);
        prop_assert_eq!(u.port(), p.port.unwrap_or(if p.tls { 443 } else { 1935 }));
        prop_assert_eq!(u.expose_secret(), url.as_str());
        check_hidden(&u, &p.key)?;
        if let Some(q) = &p.query {
            check_hidden(&u, q)?;
        }
    }

    /// A URL with a byte changed or cut short is refused or parsed, never a panic; if it
    /// parses, its last path segment (the key) is still hidden.
    #[test]
    fn damaged_urls_are_refused_or_hide_their_key(p in parts(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let mut bytes = p.url().into_bytes();
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] = byte;
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(u) = RtmpUrl::parse(&text) {
            let path = text.trim().split_once("://").and_then(|(_, r)| r.split_once('/')).map_or("", |(_, p)| p);
            let key = path.split('?').next().unwrap_or("").split('/').rfind(|s| !s.is_empty()).unwrap_or("");
            // A key that is also in the host or app cannot be told apart from them.
            if key.len() >= 4 && !u.redacted().contains(key) {
                check_hidden(&u, key)?;
            }
        }
    }
}

//! The TOML config file (`tessera serve --config`): arbitrary text, every key with values of
//! the right and the wrong type, unknown keys and deep nesting. Each is read, or refused with
//! a message that says what is wrong.

use proptest::prelude::*;

use super::config;
use crate::config::FileConfig;

/// Parses like `FileConfig::load`; a refusal's message must say something.
fn parse(text: &str) -> Result<Option<FileConfig>, TestCaseError> {
    match FileConfig::parse(text) {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            prop_assert!(!e.to_string().trim().is_empty(), "a TOML error without a message");
            Ok(None)
        }
    }
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| match c {
            '"' => "\\\"".chars().collect::<Vec<_>>(),
            '\\' => "\\\\".chars().collect(),
            c if c.is_control() => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// Valid settings: `(key = value lines, what the fields should read)`.
#[derive(Debug, Clone)]
struct Settings {
    http_port: Option<u16>,
    api_key: Option<String>,
    udp: Option<u16>,
    tcp: Option<u16>,
    ips: Option<Vec<[u8; 4]>>,
    json_logs: Option<bool>,
    ttl: Option<u64>,
}

impl Settings {
    fn toml(&self) -> String {
        let mut t = String::new();
        if let Some(p) = self.http_port {
            t += &format!("http_addr = \"0.0.0.0:{p}\"\n");
        }
        if let Some(k) = &self.api_key {
            t += &format!("api_key = {}\n", quoted(k));
        }
        if let Some(p) = self.udp {
            t += &format!("rtc_udp_port = {p}\n");
        }
        if let Some(p) = self.tcp {
            t += &format!("rtc_tcp_port = {p}\n");
        }
        if let Some(ips) = &self.ips {
            let list: Vec<String> = ips.iter().map(|[a, b, c, d]| format!("\"{a}.{b}.{c}.{d}\"")).collect();
            t += &format!("rtc_ips = [{}]\n", list.join(", "));
        }
        if let Some(j) = self.json_logs {
            t += &format!("log_format = \"{}\"\n", if j { "json" } else { "text" });
        }
        if let Some(s) = self.ttl {
            t += &format!("download_url_ttl_s = {s}\n");
        }
        t
    }
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        prop::option::of(any::<u16>()),
        prop::option::of(any::<String>()),
        prop::option::of(any::<u16>()),
        prop::option::of(any::<u16>()),
        prop::option::of(prop::collection::vec(any::<[u8; 4]>(), 0..4)),
        prop::option::of(any::<bool>()),
        prop::option::of(0u64..=i64::MAX as u64),
    )
        .prop_map(|(http_port, api_key, udp, tcp, ips, json_logs, ttl)| Settings {
            http_port,
            api_key,
            udp,
            tcp,
            ips,
            json_logs,
            ttl,
        })
}

/// A key with a value its type cannot hold, or a key that does not exist.
fn wrong_line() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "http_addr",
        "rtc_udp_port",
        "rtc_tcp_port",
        "rtc_ips",
        "log_format",
        "download_url_ttl_s",
        "api_key",
        "data_dir",
    ]);
    let value = prop::sample::select(vec![
        "-1",
        "1e3",
        "18446744073709551616",
        "\"7882\"",
        "true",
        "[]",
        "{}",
        "[1, \"a\"]",
        "\"nonsense\"",
        "\"127.0.0.1\"",
        "\"999.0.0.1:80\"",
        "\"yaml\"",
        "nan",
        "inf",
        "1979-05-27T07:32:00Z",
        "{ a = 1 }",
        "[[1]]",
    ]);
    let port = prop::sample::select(vec!["rtc_udp_port", "rtc_tcp_port"]);
    prop_oneof![
        (key, value).prop_map(|(k, v)| format!("{k} = {v}\n")),
        (port, prop_oneof![Just(65_536u64), 65_536u64..=i64::MAX as u64]).prop_map(|(k, v)| format!("{k} = {v}\n")),
        "[a-z_]{1,12}".prop_map(|k| format!("{k}x = 1\n")),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_text_is_read_or_refused_with_a_message(text in prop_oneof![any::<String>(), "([a-z_]{1,10} = [ -~]{0,12}\n){0,4}"]) {
        parse(&text)?;
    }

    /// Every setting, written as a user would, reads back as written.
    #[test]
    fn valid_settings_read_back(s in settings()) {
        let text = s.toml();
        let c = parse(&text)?;
        prop_assert!(c.is_some(), "refused:\n{text}");
        let c = c.unwrap_or_default();
        prop_assert_eq!(c.http_addr.map(|a| a.port()), s.http_port);
        prop_assert_eq!(c.api_key, s.api_key);
        prop_assert_eq!((c.rtc_udp_port, c.rtc_tcp_port), (s.udp, s.tcp));
        prop_assert_eq!(c.rtc_ips.map(|v| v.len()), s.ips.map(|v| v.len()));
        prop_assert_eq!(c.download_url_ttl_s, s.ttl);
    }

    /// One wrong line among valid ones: refused, naming the line's key.
    #[test]
    fn a_wrong_value_or_unknown_key_is_refused_by_name(s in settings(), wrong in wrong_line(), at in any::<prop::sample::Index>()) {
        let mut lines: Vec<String> = s.toml().lines().map(|l| format!("{l}\n")).collect();
        let key = wrong.split(" = ").next().unwrap_or_default().to_string();
        // A valid line for the same key would make it a duplicate, which is also refused.
        let i = at.index(lines.len() + 1);
        lines.insert(i, wrong);
        let text: String = lines.concat();
        let c = parse(&text)?;
        // `api_key`/`data_dir` take any string, and `[]` is an empty address list.
        let harmless = (key == "api_key" || key == "data_dir") && text.contains(&format!("{key} = \""))
            || (key == "rtc_ips" && text.contains("rtc_ips = []") && text.matches("rtc_ips").count() == 1);
        if !harmless {
            prop_assert!(c.is_none(), "accepted:\n{text}");
            let message = FileConfig::parse(&text).err().map(|e| e.to_string()).unwrap_or_default();
            prop_assert!(message.contains(key.as_str()), "{message:?} does not name {key:?}");
        }
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// Deeply nested arrays and inline tables are refused, not a stack overflow.
    #[test]
    fn deep_nesting_is_refused(depth in 100usize..20_000, table in any::<bool>()) {
        let text = if table {
            format!("api_key = {}1{}\n", "{ a = ".repeat(depth), " }".repeat(depth))
        } else {
            format!("rtc_ips = {}1{}\n", "[".repeat(depth), "]".repeat(depth))
        };
        prop_assert!(parse(&text)?.is_none());
    }
}

//! `tessera serve` as the real binary on a loopback port: configuration, auth, the layouts API,
//! the JSON error shape, body limits and graceful shutdown.

mod common;

use serde_json::Value;
use tessera_testkit::http::{self, Body};
use tessera_testkit::ports::free_port;
use tessera_testkit::tessera::{Node, TEST_KEY, serve_command};

const KEY: Option<&str> = Some(TEST_KEY);

/// `{"error": {"code": CODE, "message": non-empty, ...}}`; returns the error object.
fn assert_error(response: &http::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status, status, "{}", String::from_utf8_lossy(&response.body));
    assert!(
        response.header("content-type").is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        response.headers
    );
    let body = response.json();
    let error = body["error"].clone();
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    error
}

#[test]
fn health_answers_without_a_key() {
    let server = common::node().start();
    let response = http::get(server.port, "/v1/health", None);
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn v1_rejects_missing_and_wrong_keys() {
    let server = common::node().start();
    let port = server.port;

    let missing = http::get(port, "/v1/layouts", None);
    assert_error(&missing, 401, "unauthorized");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

    assert_error(&http::get(port, "/v1/layouts", Some("wrong-key")), 401, "unauthorized");
    let prefix = &TEST_KEY[..TEST_KEY.len() - 1];
    assert_error(&http::get(port, "/v1/layouts", Some(prefix)), 401, "unauthorized");

    let basic = vec![("Authorization".to_owned(), format!("Basic {TEST_KEY}"))];
    let response = http::send(port, "GET", "/v1/layouts", &basic, Body::None).expect("GET");
    assert_error(&response, 401, "unauthorized");

    // Unknown paths under /v1 do not reveal themselves without a key.
    assert_error(&http::get(port, "/v1/no-such-thing", None), 401, "unauthorized");
    assert_error(&http::get(port, "/v1/no-such-thing", KEY), 404, "not_found");

    // Rejections are logged (path, status) but the key never is.
    assert!(!server.stderr().contains(TEST_KEY), "{}", server.stderr());
}

#[test]
fn layouts_list_and_show() {
    let server = common::node().start();
    let list = http::get(server.port, "/v1/layouts", KEY);
    assert_eq!(list.status, 200);
    let names: Vec<String> =
        serde_json::from_value(list.json()["layouts"].clone()).expect("layouts is a list of names");
    assert!(names.iter().any(|n| n == "grid") && names.len() >= 6, "{names:?}");

    for name in &names {
        let show = http::get(server.port, &format!("/v1/layouts/{name}"), KEY);
        assert_eq!(show.status, 200, "{name}");
        assert_eq!(show.json()["name"], name.as_str());
    }

    let unknown = http::get(server.port, "/v1/layouts/no-such-layout", KEY);
    let error = assert_error(&unknown, 404, "not_found");
    assert!(error["message"].as_str().unwrap_or("").contains("no-such-layout"));
}

#[test]
fn validate_accepts_a_good_layout() {
    let server = common::node().start();
    let document = include_str!("../layouts/grid.json");
    let response = http::post_json(server.port, "/v1/layouts/validate", KEY, document.as_bytes());
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    let body = response.json();
    assert_eq!(body["valid"], true);
    assert_eq!(body["layout"]["name"], "grid");
}

#[test]
fn validate_rejects_a_bad_layout_with_the_field() {
    let server = common::node().start();
    let document = br#"{"name": "bad", "regions": [{"name": "a", "x": 1.5, "y": 0, "width": 0.5, "height": 1, "select": ["rest"]}]}"#;
    let response = http::post_json(server.port, "/v1/layouts/validate", KEY, document);
    let error = assert_error(&response, 422, "invalid_layout");
    assert_eq!(error["field"], "/regions/0/x", "{error}");
    assert!(error["details"].as_array().is_some_and(|d| !d.is_empty()), "{error}");
}

#[test]
fn malformed_json_is_a_json_400() {
    let server = common::node().start();
    let response = http::post_json(server.port, "/v1/layouts/validate", KEY, b"{\"name\": ");
    assert_error(&response, 400, "malformed_json");
}

#[test]
fn non_json_content_type_is_a_json_415() {
    let server = common::node().start();
    let mut headers = http::auth(KEY);
    headers.push(("Content-Type".into(), "text/plain".into()));
    let response = http::send(server.port, "POST", "/v1/layouts/validate", &headers, Body::Sized(b"{}")).expect("POST");
    assert_error(&response, 415, "unsupported_media_type");
}

#[test]
fn oversize_bodies_are_a_json_413() {
    let server = common::node().start();
    let mut headers = http::auth(KEY);
    headers.push(("Content-Type".into(), "application/json".into()));
    // Valid JSON (a long string), so only the size is wrong.
    let mut big = vec![b'"'];
    big.resize(1024 * 1024 + 16, b'a');
    big.push(b'"');

    for body in [Body::Sized(&big), Body::Chunked(&big)] {
        let response = http::send(server.port, "POST", "/v1/layouts/validate", &headers, body).expect("POST");
        assert_error(&response, 413, "payload_too_large");
    }

    // Just under the limit is read (and then judged as a layout).
    let mut fits = vec![b'"'];
    fits.resize(1024 * 1024 - 1, b'a');
    fits.push(b'"');
    let response = http::post_json(server.port, "/v1/layouts/validate", KEY, &fits);
    assert_error(&response, 422, "invalid_layout");
}

#[test]
fn unknown_routes_and_methods_use_the_error_shape() {
    let server = common::node().start();
    assert_error(&http::get(server.port, "/", None), 404, "not_found");
    let response = http::send(server.port, "DELETE", "/v1/layouts", &http::auth(KEY), Body::None).expect("DELETE");
    assert_error(&response, 405, "method_not_allowed");
}

#[test]
fn sigterm_stops_the_server_with_exit_0() {
    let server = common::node().start();
    assert!(server.stderr().contains("listening on http://127.0.0.1:"), "{}", server.stderr());
    let status = server.stop_with("TERM");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn sigint_stops_the_server_with_exit_0() {
    let server = common::node().start();
    let status = server.stop_with("INT");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn without_a_key_a_development_key_is_generated_and_printed_once() {
    let mut server = common::node().without_api_key().start();
    let line = server.stdout_line();
    let key = line
        .strip_prefix("development API key: ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no development key banner: {line:?}"))
        .to_owned();
    assert_eq!(key.len(), 64, "{key}");
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()), "{key}");

    assert_eq!(http::get(server.port, "/v1/layouts", Some(&key)).status, 200);
    assert_error(&http::get(server.port, "/v1/layouts", Some(TEST_KEY)), 401, "unauthorized");
    assert!(server.stderr().contains("development key"), "{}", server.stderr());
    assert!(!server.stderr().contains(&key), "the key leaked into the logs");
}

#[test]
fn environment_configures_the_server_and_json_logs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut cmd = serve_command(common::BIN, dir.path());
    cmd.env("TESSERA_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("TESSERA_DATA_DIR", dir.path().join("nested/data"))
        .env("TESSERA_API_KEY", "env-key-0123456789")
        .env("TESSERA_LOG_FORMAT", "json");
    let server = Node::launch(cmd, port, dir);

    assert!(server.dir.path().join("nested/data").is_dir(), "data dir not created");
    assert_eq!(http::get(port, "/v1/layouts", Some("env-key-0123456789")).status, 200);
    let stderr = server.stderr();
    for line in stderr.lines() {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(entry["fields"]["message"].is_string(), "{entry}");
    }
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn flags_override_env_and_env_overrides_the_config_file() {
    let config_dir = tempfile::tempdir().expect("temp dir");
    let file_port = free_port();
    let config = config_dir.path().join("tessera.toml");
    let file_data = config_dir.path().join("file-data");
    std::fs::write(
        &config,
        format!(
            "http_addr = \"127.0.0.1:{file_port}\"\ndata_dir = \"{}\"\napi_key = \"file-key-0123456789\"\nlog_format = \"json\"\n",
            file_data.display()
        ),
    )
    .expect("write config");

    // The file alone: its address, data directory, key and log format are used.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = serve_command(common::BIN, dir.path());
    cmd.arg("--config").arg(&config);
    let from_file = Node::launch(cmd, file_port, dir);
    assert_eq!(http::get(file_port, "/v1/layouts", Some("file-key-0123456789")).status, 200);
    assert!(file_data.is_dir());
    assert!(from_file.stderr().starts_with('{'), "{}", from_file.stderr());
    assert_eq!(from_file.stop_with("TERM").code(), Some(0));

    // Env beats the file (key, log format); flags beat env (address) and the file.
    let server = common::node()
        .without_api_key()
        .without_data_dir()
        .env("TESSERA_CONFIG", &config)
        .env("TESSERA_API_KEY", "env-key-0123456789")
        .env("TESSERA_LOG_FORMAT", "text")
        .env("TESSERA_HTTP_ADDR", format!("127.0.0.1:{file_port}"))
        .start();
    assert_ne!(server.port, file_port);
    assert_eq!(http::get(server.port, "/v1/layouts", Some("env-key-0123456789")).status, 200);
    assert_error(&http::get(server.port, "/v1/layouts", Some("file-key-0123456789")), 401, "unauthorized");
    assert!(!server.stderr().starts_with('{'), "{}", server.stderr());

    // A flag beats env for the key too.
    let server = common::node()
        .api_key("flag-key-0123456789")
        .without_data_dir()
        .arg("--config")
        .arg(&config)
        .env("TESSERA_API_KEY", "env-key-0123456789")
        .start();
    assert_eq!(http::get(server.port, "/v1/layouts", Some("flag-key-0123456789")).status, 200);
    assert_error(&http::get(server.port, "/v1/layouts", Some("env-key-0123456789")), 401, "unauthorized");
}

#[test]
fn an_invalid_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "htp_addr = \"127.0.0.1:1\"\n").expect("write config");
    let mut cmd = serve_command(common::BIN, dir.path());
    cmd.arg("--config").arg(&config);
    let status = cmd.status().expect("run");
    assert_eq!(status.code(), Some(2));
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).expect("stderr");
    assert!(stderr.contains("invalid config file") && stderr.contains("htp_addr"), "{stderr}");
}

//! Property tests of request bodies: every route's body type through the `ApiJson` extractor
//! (what axum hands it: any bytes, any content type), then the checks behind it (layouts given
//! inline, program settings, stream destinations). Each is accepted or refused with the API's
//! error shape: a 4xx status, a code, a message and, for a field, its JSON Pointer.

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{Request, StatusCode, header};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::recordings::{AudioSettings, PatchRecording, StartRecording, VideoSettings, parse_layout, program_config};
use super::room_status::RoomPatch;
use super::rooms::TokenRequest;
use super::streams::{PatchStream, StartStream};
use crate::error::Error as StreamsError;
use crate::proptests::config;
use crate::server::error::ApiError;
use crate::server::extract::ApiJson;
use crate::streams::parse_urls;

/// Runs the extractor on a request with `body` and `content_type`.
fn extract<T: DeserializeOwned>(body: &[u8], content_type: Option<&str>) -> Result<T, ApiError> {
    let mut req = Request::builder().method("POST").uri("/");
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let req = req.body(Body::from(body.to_vec())).expect("a request");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    rt.block_on(ApiJson::<T>::from_request(req, &())).map(|ApiJson(v)| v)
}

/// The API's error shape for a refused body.
fn check_refusal(e: &ApiError) -> Result<(), TestCaseError> {
    prop_assert!(
        [
            StatusCode::BAD_REQUEST,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNPROCESSABLE_ENTITY
        ]
        .contains(&e.status),
        "{e:?}"
    );
    prop_assert!(!e.code.is_empty() && !e.message.trim().is_empty(), "{e:?}");
    Ok(())
}

/// Every body type, from `body`.
fn every_body_type(body: &[u8], content_type: Option<&str>) -> Result<(), TestCaseError> {
    fn one<T: DeserializeOwned>(body: &[u8], content_type: Option<&str>) -> Result<(), TestCaseError> {
        match extract::<T>(body, content_type) {
            Ok(_) => prop_assert!(content_type.is_some_and(|c| c.contains("json"))),
            Err(e) => check_refusal(&e)?,
        }
        Ok(())
    }
    one::<StartRecording>(body, content_type)?;
    one::<PatchRecording>(body, content_type)?;
    one::<StartStream>(body, content_type)?;
    one::<PatchStream>(body, content_type)?;
    one::<TokenRequest>(body, content_type)?;
    one::<RoomPatch>(body, content_type)?;
    one::<Value>(body, content_type)
}

/// JSON bodies close to what clients send, with values of every kind in every field.
fn body() -> impl Strategy<Value = Value> {
    let any_value = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![-1.5, 1e300, 0.5]).prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        Just(json!(["rtmp://h/app/key", 7])),
        Just(json!({"width": 1280, "height": "720"})),
        Just(json!({"name": "x", "regions": []})),
    ];
    let key = prop::sample::select(vec![
        "layout",
        "video",
        "audio",
        "destinations",
        "preset",
        "add_destinations",
        "remove_destinations",
        "identity",
        "name",
        "publish",
        "subscribe",
        "ttl_s",
        "pinned",
        "width",
        "unknown",
    ]);
    prop::collection::btree_map(key, any_value, 0..5)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn any_bytes_are_a_body_or_a_clear_refusal(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            any::<String>().prop_map(String::into_bytes),
            body().prop_map(|v| v.to_string().into_bytes()),
            (1usize..5000).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes()),
        ],
        content_type in prop::option::of(prop::sample::select(vec!["application/json", "application/json; charset=utf-8", "text/plain", "application/sdp", ""])),
    ) {
        every_body_type(&body, content_type)?;
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// A layout given by name or inline: accepted, or a 422 that points into `/layout`.
    #[test]
    fn any_layout_value_is_used_or_refused_at_layout(
        value in prop_oneof![
            "[a-z-]{0,16}".prop_map(Value::from),
            Just(json!("grid")),
            body(),
            (0.0f64..2.0, 0.0f64..2.0).prop_map(|(x, w)| json!({"name": "n", "regions": [{"x": x, "y": 0, "width": w, "height": 1, "select": ["rest"]}]})),
        ],
    ) {
        match parse_layout(Some(&value)) {
            Ok((_, name)) => prop_assert!(!name.is_empty()),
            Err(e) => {
                check_refusal(&e)?;
                prop_assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
                prop_assert!(e.field.as_deref().is_some_and(|f| f.starts_with("/layout")), "{e:?}");
            }
        }
    }

    /// Program settings of any size: a valid program, or a 422 naming the setting's field.
    #[test]
    fn any_program_settings_are_valid_or_refused_by_field(
        width in prop::option::of(any::<u32>()), height in prop::option::of(any::<u32>()),
        fps in prop::option::of(any::<u32>()), video in prop::option::of(any::<u32>()), audio in prop::option::of(any::<u32>()),
    ) {
        let v: VideoSettings = serde_json::from_value(json!({"width": width, "height": height, "fps": fps, "bitrate_kbps": video}))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let a: AudioSettings = serde_json::from_value(json!({"bitrate_kbps": audio})).map_err(|e| TestCaseError::fail(e.to_string()))?;
        match program_config(&v, &a) {
            Ok(c) => prop_assert!(c.validate().is_ok()),
            Err(e) => {
                check_refusal(&e)?;
                let field = e.field.clone().unwrap_or_default();
                prop_assert!(field.starts_with("/video") || field.starts_with("/audio"), "{e:?}");
            }
        }
    }

    /// Destination lists: every URL parsed, or the first bad one named by its index.
    #[test]
    fn destinations_are_parsed_or_refused_by_index(urls in prop::collection::vec(prop_oneof!["rtmps?://[a-z.]{1,10}(:[0-9]{1,6})?/[a-z]{1,5}/[A-Za-z0-9]{0,8}", any::<String>()], 0..5)) {
        match parse_urls(&urls, "/destinations") {
            Ok(parsed) => prop_assert_eq!(parsed.len(), urls.len()),
            Err(StreamsError::Invalid { field, reason }) => {
                prop_assert!(!reason.trim().is_empty());
                let i: usize = field.strip_prefix("/destinations/").and_then(|i| i.parse().ok()).unwrap_or(usize::MAX);
                prop_assert!(i < urls.len(), "{field}");
            }
            Err(other) => prop_assert!(false, "not an invalid field: {other}"),
        }
    }
}

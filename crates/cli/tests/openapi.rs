//! The OpenAPI document `aps run` serves (`GET /api/openapi.json`) is whole: every
//! `$ref` in it points inside it, at something it holds; its `[[jobs]]` bodies
//! (`JobInput`, `JobChangesInput`) refer to the schemas of their nested tables.
//!
//! With `APS_OPENAPI_DOCUMENT_OUT` set, the served document is also written to that
//! path, for the OpenAPI tools that check it after the tests (`scripts/check-openapi.sh`,
//! run by `.ci/run`).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{free_port, http_call, Dir};

/// Where to write the served document (set by `.ci/run`).
const DOCUMENT_OUT: &str = "APS_OPENAPI_DOCUMENT_OUT";

/// Every `$ref` in `value`, with the JSON path where it is.
fn refs<'a>(value: &'a Value, at: &str, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => found.push((at.to_owned(), target)),
                    _ => refs(v, &format!("{at}/{key}"), found),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// The `$ref`s of `doc` that do not resolve within it, as `path -> target`.
fn dangling(doc: &Value) -> Vec<String> {
    let mut found = Vec::new();
    refs(doc, "", &mut found);
    assert!(!found.is_empty(), "the document has no $ref at all");
    found
        .into_iter()
        // A JSON pointer into this document (`Value::pointer` undoes `~1` and `~0`).
        .filter(|(_, target)| {
            target
                .strip_prefix('#')
                .and_then(|pointer| doc.pointer(pointer))
                .is_none()
        })
        .map(|(at, target)| format!("{at} -> {target}"))
        .collect()
}

#[test]
fn every_ref_of_the_served_document_resolves() {
    let port = free_port();
    let dir = Dir::new(&format!(
        r#"
[scheduler]
timezone = "UTC"
[http]
listen = "127.0.0.1:{port}"
[[jobs]]
id = "nightly"
command = "true"
cron = "0 3 * * *"
retry = {{ attempts = 3, delay = "10s" }}
catchup = {{ window = "1h" }}
"#
    ));
    let mut daemon = dir.spawn();
    daemon.wait_healthy(port, Duration::from_secs(30));
    let (status, body) = http_call(
        "GET",
        &format!("http://127.0.0.1:{port}/api/openapi.json"),
        None,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).expect("the document is JSON");
    if let Some(path) = std::env::var_os(DOCUMENT_OUT) {
        std::fs::write(&path, &body).unwrap_or_else(|e| panic!("{DOCUMENT_OUT}: {e}"));
    }

    let missing = dangling(&doc);
    assert!(
        missing.is_empty(),
        "$refs that point at nothing in the document:\n{}",
        missing.join("\n")
    );
    // The nested tables of a job are named schemas of their own, referred to.
    let schemas = &doc["components"]["schemas"];
    for name in ["JobInput", "JobChangesInput", "RawRetry", "RawCatchup"] {
        assert!(schemas.get(name).is_some(), "no schema {name}");
    }
    assert_eq!(daemon.stop(), Some(0), "log:\n{}", daemon.log());
}

//! A file of trigger vectors (one JSON object a line under `tests/conformance/`) and the
//! check every vector file shares: the same instants and offsets, or an error.

use apscheduler_triggers::evaluate_vector;
use chrono::DateTime;
use serde_json::Value;

/// The vectors of `tests/conformance/NAME`.
pub(crate) fn read(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/../../tests/conformance/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// One line per vector the library does not reproduce: an error where fire times were
/// expected, fire times where an error was, or other instants or offsets.
pub(crate) fn failures(vectors: &[Value]) -> Vec<String> {
    let mut failures = Vec::new();
    for v in vectors {
        let id = v["id"].as_str().unwrap();
        let result = evaluate_vector(v);
        if v.get("error").and_then(Value::as_bool) == Some(true) {
            if let Ok(f) = result {
                failures.push(format!("{id}: expected an error, got {} fires", f.len()));
            }
            continue;
        }
        let expected: Vec<_> = v["fires"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| DateTime::parse_from_rfc3339(f.as_str().unwrap()).unwrap())
            .collect();
        match result {
            Err(e) => failures.push(format!("{id}: unexpected error {e}")),
            Ok(fires) => {
                let got: Vec<_> = fires.iter().map(|t| t.fixed_offset()).collect();
                let same = got.len() == expected.len()
                    && got
                        .iter()
                        .zip(&expected)
                        .all(|(a, b)| a == b && a.offset() == b.offset());
                if !same {
                    failures.push(format!(
                        "{id}: {}\n   expected {:?}\n   got      {:?}",
                        v["args"],
                        expected.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>(),
                        got.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    failures
}

//! Every public conformance vector, through the library.

use apscheduler_triggers::evaluate_vector;
use chrono::DateTime;
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/conformance/triggers.jsonl"
    );
    std::fs::read_to_string(path)
        .expect("read triggers.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// Error vectors this library deliberately accepts (docs/triggers.md, "Where we differ
/// from APScheduler 3.x"), with the reason. Each must really be accepted: the test fails
/// if the library still refuses one.
const ACCEPTED_ON_PURPOSE: &[(&str, &str)] = &[
    // `@daily` in the crontab trigger: APScheduler 3 refuses it (one field, not five);
    // cron reads it as `0 0 * * *`, and crontab text is read as cron reads it.
    (
        "p-err-032",
        "crontab macros are accepted as cron reads them",
    ),
    // `* * * * * *` in the crontab trigger: APScheduler 3 refuses six fields; crontab
    // text reads six fields as Quartz, croner and cron-parser do (seconds first).
    (
        "p-err-031",
        "six crontab fields are read with seconds first",
    ),
];

#[test]
fn all_public_vectors_pass() {
    let vectors = vectors();
    assert!(vectors.len() >= 679, "expected the full public set");
    let mut failures = Vec::new();
    for v in &vectors {
        let id = v["id"].as_str().unwrap_or("?");
        let result = evaluate_vector(v);
        if let Some((_, why)) = ACCEPTED_ON_PURPOSE.iter().find(|(known, _)| *known == id) {
            if let Err(e) = result {
                failures.push(format!("{id}: should be accepted ({why}), got {e}"));
            }
            continue;
        }
        if v.get("error").and_then(Value::as_bool) == Some(true) {
            if let Ok(fires) = result {
                failures.push(format!(
                    "{id}: expected an error, got {} fires",
                    fires.len()
                ));
            }
            continue;
        }
        let expected: Vec<DateTime<chrono::FixedOffset>> = v["fires"]
            .as_array()
            .expect("fires")
            .iter()
            .map(|f| DateTime::parse_from_rfc3339(f.as_str().unwrap()).unwrap())
            .collect();
        match result {
            Err(e) => failures.push(format!("{id}: unexpected error {e}")),
            Ok(fires) => {
                let got: Vec<_> = fires.iter().map(|t| t.fixed_offset()).collect();
                // Same instants and the same UTC offsets.
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
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

#[test]
fn every_vector_trigger_round_trips_through_its_persisted_form() {
    use apscheduler_triggers::{decode_trigger, decode_trigger_text, AnyTrigger, Trigger};
    for v in vectors() {
        if v.get("error").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let tz: chrono_tz::Tz = v["timezone"].as_str().unwrap().parse().unwrap();
        let now = DateTime::parse_from_rfc3339(v["now"].as_str().unwrap())
            .unwrap()
            .with_timezone(&tz);
        let trigger =
            AnyTrigger::from_args(v["trigger"].as_str().unwrap(), &v["args"], tz, now).unwrap();
        let state = trigger.to_state().expect("persistable");
        let decoded = decode_trigger(&state).expect("decodes");
        assert_eq!(decoded.to_string(), trigger.to_string(), "{}", v["id"]);
        assert_eq!(decoded.to_state(), Some(state.clone()), "{}", v["id"]);
        let from_text = decode_trigger_text(&state.to_string()).expect("decodes from text");
        assert_eq!(from_text.to_state(), Some(state.clone()), "{}", v["id"]);
        let mut a = trigger.next_fire_time(None, &now);
        let mut b = decoded.next_fire_time(None, &now);
        for _ in 0..5 {
            assert_eq!(a, b, "{}", v["id"]);
            let (Some(x), Some(y)) = (a, b) else { break };
            a = trigger.next_fire_time(Some(&x), &x);
            b = decoded.next_fire_time(Some(&y), &y);
        }
    }
}

/// A persisted trigger that cannot be read is refused with the field at fault, whichever
/// way `decode_trigger` reads its kind.
#[test]
fn an_unreadable_persisted_trigger_names_what_is_wrong() {
    use apscheduler_triggers::{decode_trigger, decode_trigger_text};
    for (state, says) in [
        (
            serde_json::json!({"type": "cron", "hour": "25", "timezone": "UTC"}),
            "hour",
        ),
        (
            serde_json::json!({"type": "interval", "timezone": "UTC"}),
            "interval",
        ),
        (
            serde_json::json!({"type": "date", "timezone": "UTC"}),
            "run_date",
        ),
        (
            serde_json::json!({"type": "cron", "hour": "3", "timezone": "Mars/Base"}),
            "Mars/Base",
        ),
        (serde_json::json!({"type": "sundial"}), "sundial"),
        (serde_json::json!({"hour": "3"}), "type"),
    ] {
        let Err(e) = decode_trigger(&state) else {
            panic!("{state} decoded")
        };
        assert!(e.to_string().contains(says), "{state}: {e}");
        let Err(e) = decode_trigger_text(&state.to_string()) else {
            panic!("{state} decoded from text")
        };
        assert!(e.to_string().contains(says), "{state} as text: {e}");
    }
}

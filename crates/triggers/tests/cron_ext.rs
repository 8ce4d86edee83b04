//! Crontab extensions (`L`, `L-n`, `LW`, `nW`, `nL`, `d#n`, `?`, six and seven fields):
//! the vectors of `tests/conformance/cron-ext.jsonl`, whose fire times come from
//! `cron_ext/generate.py` (cronsim and a matcher written from Quartz's rules, which agree
//! wherever both read the form, then the project's DST policy), not from this library.
//! Also: the errors name the field and the value; cronie's reader refuses every extension.

use apscheduler_triggers::{evaluate_vector, CronTrigger};
use chrono::DateTime;
use chrono_tz::Tz;
use serde_json::Value;

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/conformance/cron-ext.jsonl"
);

fn read_vectors() -> Vec<Value> {
    std::fs::read_to_string(FILE)
        .expect("read cron-ext.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

#[test]
fn every_extension_vector_passes() {
    let vectors = read_vectors();
    assert!(vectors.len() >= 55, "expected the full set");
    let mut failures = Vec::new();
    for v in &vectors {
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
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_name_the_field_and_the_value() {
    let cases: &[(&str, &str, &str)] = &[
        ("0 0 32W * *", "day", "32W"),
        ("0 0 0#2 * *", "day", "0#2"),
        ("0 0 * * 8#1", "day_of_week", "8#1"),
        ("0 0 * * 1#6", "day_of_week", "1#6"),
        ("0 0 L-40 * *", "day", "L-40"),
        ("0 0 * * L", "day_of_week", "L"),
        ("0 0 5L * *", "day", "5L"),
        ("0 0 * * 15W", "day_of_week", "15W"),
        ("0 ? * * *", "hour", "?"),
        ("0 0 0 * * * 1969", "year", "1969"),
        ("0 0 1W,LW-1 * *", "day", "LW-1"),
        ("* * * *", "crontab", "* * * *"),
        ("0 0 0 1 1 * 2024 x", "crontab", "0 0 0 1 1 * 2024 x"),
    ];
    for (expr, field, value) in cases {
        let e = CronTrigger::from_crontab(expr, Tz::UTC).unwrap_err();
        assert_eq!(e.field(), *field, "{expr}: {e}");
        assert!(
            e.to_string().contains(&format!("'{value}'")),
            "{expr}: the message names '{value}': {e}"
        );
    }
}

#[test]
fn extensions_normalize_and_persist() {
    let t = CronTrigger::from_crontab("0 0 12 l-3,lw,15w * fri#2,5l 2030", Tz::UTC).unwrap();
    assert_eq!(
        t.to_string(),
        "cron[year='2030', month='*', day='L-3,LW,15W', day_of_week='fri#2,5L', \
         hour='12', minute='0', second='0']"
    );
    let state = serde_json::to_value(&t).unwrap();
    let back: CronTrigger = serde_json::from_value(state).unwrap();
    assert_eq!(back, t);
}

/// cronie refuses every extension (or reads it otherwise): its reader, the one the crontab
/// importer uses, refuses them all while `from_crontab` takes them.
#[test]
fn cronie_reader_refuses_every_extension() {
    for expr in [
        "0 0 L * *",
        "0 0 L-3 * *",
        "0 0 LW * *",
        "0 0 15W * *",
        "0 0 * * 5L",
        "0 0 * * 1#2",
        "0 0 ? * 1",
        "0 0 1 * ?",
        "0 0 0 * * *",
        "0 0 0 * * * 2030",
    ] {
        assert!(CronTrigger::from_crontab(expr, Tz::UTC).is_ok(), "{expr}");
        assert!(CronTrigger::from_cronie(expr, Tz::UTC).is_err(), "{expr}");
    }
    // Plain cron text reads the same through both.
    for expr in ["0 9 * * mon-fri", "*/15 2 1,15 * 0", "@daily"] {
        assert_eq!(
            CronTrigger::from_crontab(expr, Tz::UTC).unwrap(),
            CronTrigger::from_cronie(expr, Tz::UTC).unwrap(),
            "{expr}"
        );
    }
}

//! Replays every recorded APScheduler 3.11.3 scenario through the engine (manual clock)
//! and compares each step with the trace, after applying the documented deviations
//! (E2: missed runs are not submitted; E3: SUBMITTED before a job's outcome and its
//! REMOVED). E1 (DST) needs no rewrite: times are compared as instants.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde_json::{json, Value};

fn scenarios() -> Vec<(String, Value)> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/conformance/engine"
    );
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("scenario dir") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") || name == "index.json" {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        out.push((name, v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Rewrites APScheduler's trace into what our engine must do (E2, E3).
fn apply_deviations(step: &mut Value) {
    let events = step["events"].as_array().cloned().unwrap_or_default();
    // E2: runs reported missed are not submitted; the decision is reported first.
    let mut missed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &events {
        if e["event"] == "EVENT_JOB_MISSED" {
            missed
                .entry(e["job_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(instant(&e["scheduled_run_time"]));
        }
    }
    let mut rewritten: Vec<Value> = Vec::new();
    for e in &events {
        let job = e["job_id"].as_str().unwrap_or("").to_owned();
        if e["event"] == "EVENT_JOB_SUBMITTED" {
            if let Some(m) = missed.get(&job) {
                let kept: Vec<Value> = e["scheduled_run_times"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|t| !m.contains(&instant(t)))
                    .cloned()
                    .collect();
                // MISSED events of this job move before its submission.
                for x in &events {
                    if x["event"] == "EVENT_JOB_MISSED" && x["job_id"] == e["job_id"] {
                        rewritten.push(x.clone());
                    }
                }
                if !kept.is_empty() {
                    let mut e = e.clone();
                    e["scheduled_run_times"] = json!(kept);
                    rewritten.push(e);
                }
                continue;
            }
        }
        if e["event"] == "EVENT_JOB_MISSED" {
            continue; // already placed
        }
        rewritten.push(e.clone());
    }
    // Missed events of jobs with no SUBMITTED in this step stay where they were.
    for e in &events {
        if e["event"] == "EVENT_JOB_MISSED" && !rewritten.contains(e) {
            rewritten.push(e.clone());
        }
    }
    // E3: a job's REMOVED comes after the SUBMITTED of its final run.
    let mut i = 0;
    while i < rewritten.len() {
        if rewritten[i]["event"] == "EVENT_JOB_REMOVED" {
            let job = rewritten[i]["job_id"].clone();
            if let Some(j) = rewritten[i + 1..]
                .iter()
                .position(|x| x["job_id"] == job && x["event"] == "EVENT_JOB_SUBMITTED")
            {
                let removed = rewritten.remove(i);
                rewritten.insert(i + j + 1, removed);
                continue;
            }
        }
        i += 1;
    }
    step["events"] = json!(rewritten);
    if let Some(runs) = step["submitted_runs"].as_array() {
        let kept: Vec<Value> = runs
            .iter()
            .filter_map(|r| {
                let job = r["job_id"].as_str().unwrap();
                let m = missed.get(job);
                let times: Vec<Value> = r["run_times"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|t| m.is_none_or(|m| !m.contains(&instant(t))))
                    .cloned()
                    .collect();
                (!times.is_empty()).then(|| json!({"job_id": job, "run_times": times}))
            })
            .collect();
        step["submitted_runs"] = json!(kept);
    }
}

fn instant(v: &Value) -> String {
    match v.as_str() {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc().to_rfc3339())
            .unwrap_or_else(|_| s.to_owned()),
        None => v.to_string(),
    }
}

/// Normalizes times to UTC instants everywhere, so offsets do not matter.
fn normalize(v: &Value) -> Value {
    match v {
        Value::String(s) if DateTime::parse_from_rfc3339(s).is_ok() => json!(instant(v)),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        Value::Number(n) => json!(n.as_f64()),
        other => other.clone(),
    }
}

/// Events grouped per job, order kept within a job (the order across jobs is not part
/// of the contract).
fn per_job(events: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in events.as_array().unwrap() {
        let key = e["job_id"].as_str().unwrap_or("<scheduler>").to_owned();
        out.entry(key).or_default().push(normalize(e));
    }
    out
}

fn compare(name: &str, expected: &Value, got: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let step = &expected["step"];
    let mut exp = expected.clone();
    apply_deviations(&mut exp);
    let ctx = |field: &str| format!("{name} step {step} ({}): {field}", exp["action"]);
    if exp["error"].is_null() != got["error"].is_null() {
        problems.push(format!(
            "{}: expected {} got {}",
            ctx("error"),
            exp["error"],
            got["error"]
        ));
    }
    if per_job(&exp["events"]) != per_job(&got["events"]) {
        problems.push(format!(
            "{}:\n    expected {}\n    got      {}",
            ctx("events"),
            exp["events"],
            got["events"]
        ));
    }
    let runs = |v: &Value| {
        let mut r: Vec<Value> = v.as_array().unwrap().iter().map(normalize).collect();
        r.sort_by_key(|x| x.to_string());
        r
    };
    if runs(&exp["submitted_runs"]) != runs(&got["submitted_runs"]) {
        problems.push(format!(
            "{}: expected {} got {}",
            ctx("submitted_runs"),
            exp["submitted_runs"],
            got["submitted_runs"]
        ));
    }
    for field in [
        "jobs_after",
        "instances_in_flight",
        "held_runs",
        "scheduler_state",
    ] {
        if normalize(&exp[field]) != normalize(&got[field]) {
            problems.push(format!(
                "{}:\n    expected {}\n    got      {}",
                ctx(field),
                exp[field],
                got[field]
            ));
        }
    }
    match (exp.get("wait_seconds"), got.get("wait_seconds")) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            let ok = match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-5,
                (None, None) => a.is_null() && b.is_null(),
                _ => false,
            };
            if !ok {
                problems.push(format!("{}: expected {a} got {b}", ctx("wait_seconds")));
            }
        }
        (a, b) => problems.push(format!("{}: expected {a:?} got {b:?}", ctx("wait_seconds"))),
    }
    problems
}

#[test]
fn every_recorded_scenario_replays_like_apscheduler() {
    let scenarios = scenarios();
    assert!(scenarios.len() >= 13);
    let mut problems = Vec::new();
    for (name, scenario) in &scenarios {
        let got = match apscheduler_engine::replay::replay(scenario) {
            Ok(g) => g,
            Err(e) => {
                problems.push(format!("{name}: replay failed: {e}"));
                continue;
            }
        };
        let expected = scenario["expected"].as_array().unwrap();
        if got.len() != expected.len() {
            problems.push(format!(
                "{name}: {} steps, expected {}",
                got.len(),
                expected.len()
            ));
        }
        for (e, g) in expected.iter().zip(&got) {
            problems.extend(compare(name, e, g));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A held run belongs to the job that was running: replacing the job by one without
/// `hold_runs` keeps it held until a `complete_runs` step; the new job's runs are not
/// held. A failed `add_job` (id taken, no `replace_existing`) changes nothing.
#[test]
fn a_replaced_jobs_held_run_stays_held_until_completed() {
    let job = |hold: bool, retval: &str| {
        json!({
            "id": "slow", "name": "slow", "trigger": "interval",
            "trigger_args": {"seconds": 10, "start_date": "2024-01-15T10:00:00Z"},
            "misfire_grace_time": null, "max_instances": 2,
            "hold_runs": hold, "retval": retval,
        })
    };
    let mut replacement = job(false, "new");
    replacement["replace_existing"] = json!(true);
    let mut conflicting = job(false, "conflict");
    conflicting["id"] = json!("slow");
    let scenario = json!({
        "timezone": "UTC", "job_defaults": {}, "start_at": "2024-01-15T10:00:00Z",
        "start_paused": false, "jobs": [job(true, "old")],
        "steps": [
            {"step": 1, "at": "2024-01-15T10:00:00Z", "action": "process", "args": {}},
            {"step": 2, "at": "2024-01-15T10:00:01Z", "action": "add_job", "args": conflicting},
            {"step": 3, "at": "2024-01-15T10:00:02Z", "action": "process", "args": {}},
            {"step": 4, "at": "2024-01-15T10:00:03Z", "action": "add_job", "args": replacement},
            {"step": 5, "at": "2024-01-15T10:00:10Z", "action": "process", "args": {}},
            {"step": 6, "at": "2024-01-15T10:00:11Z", "action": "complete_runs", "args": {}},
        ],
    });
    let records = apscheduler_engine::replay::replay(&scenario).expect("replay");
    let held = |k: usize| records[k]["held_runs"].clone();
    let executed = |k: usize| -> Vec<Value> {
        records[k]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "EVENT_JOB_EXECUTED")
            .map(|e| e["retval"].clone())
            .collect()
    };
    assert_eq!(held(1), json!(["slow"]), "{}", records[1]);
    assert!(records[2]["error"].is_object(), "{}", records[2]);
    assert_eq!(held(3), json!(["slow"]), "{}", records[3]);
    assert_eq!(held(4), json!(["slow"]), "{}", records[4]);
    // The new job's run completes in its step; the old job's run is still held.
    assert_eq!(executed(5), [json!("new")], "{}", records[5]);
    assert_eq!(held(5), json!(["slow"]), "{}", records[5]);
    // Completed by the step that asks for it, with the retval of the task it ran.
    assert_eq!(executed(6).len(), 1, "{}", records[6]);
    assert_eq!(held(6), json!([]), "{}", records[6]);
}

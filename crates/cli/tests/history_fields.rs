//! `aps history` shows which attempt a run is, whether a backfill started it and when a
//! waiting run is due: in `--json` (`attempt`, `backfill`, `due_at` when set) and in the
//! table (`#N` after the outcome of a retry, `backfill` after a backfilled run's, the
//! due time in the note of a run waiting to start), and which node ran each run (`node`
//! in `--json`, a NODE column in the table). The records are written into a SQLite
//! store's history first, as a scheduler would.

mod support;

use apscheduler_core::{RunOutcome, RunRecord};
use apscheduler_testkit::history::{base, record};
use chrono::Duration;
use serde_json::Value;
use support::{aps_ok, seed_runs};

fn seeded_store() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("aps.db").display());
    let mut first = record("r-1", "nightly", 0);
    first.outcome = RunOutcome::Failure;
    first.exit_code = Some(1);
    let mut retry = record("r-2", "nightly", 0);
    retry.attempt = 2;
    retry.node = "node-b".to_owned();
    let mut backfilled = record("r-3", "nightly", -86_400);
    backfilled.backfill = true;
    let mut waiting: RunRecord = record("r-4", "nightly", 60);
    waiting.outcome = RunOutcome::Running;
    waiting.started_at = None;
    waiting.finished_at = None;
    waiting.exit_code = None;
    waiting.output = String::new();
    waiting.attempt = 3;
    waiting.due_at = Some(base() + Duration::seconds(90));
    seed_runs(
        &dir.path().join("aps.db"),
        &[first, retry, backfilled, waiting],
    );
    (dir, url)
}

#[test]
fn history_json_and_table_show_attempt_backfill_and_due_time() {
    let (_dir, url) = seeded_store();

    let json: Vec<Value> =
        serde_json::from_slice(&aps_ok(&["history", "--json", "--store", &url])).unwrap();
    let by_id = |id: &str| {
        json.iter()
            .find(|r| r["run_id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {json:?}"))
    };
    let first = by_id("r-1");
    assert_eq!(first["attempt"], 1, "{first}");
    assert_eq!(first["backfill"], false, "{first}");
    assert!(
        first.get("due_at").is_none(),
        "due_at only when set: {first}"
    );
    assert_eq!(by_id("r-2")["attempt"], 2);
    assert_eq!(by_id("r-3")["backfill"], true);
    let waiting = by_id("r-4");
    assert_eq!(waiting["attempt"], 3);
    let due = waiting["due_at"].as_str().expect("due_at set");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(due).unwrap(),
        base() + Duration::seconds(90)
    );

    let table = String::from_utf8(aps_ok(&["history", "--store", &url])).unwrap();
    let line = |scheduled: &str, outcome: &str| {
        table
            .lines()
            .find(|l| l.starts_with(scheduled) && l.contains(outcome))
            .unwrap_or_else(|| panic!("no {outcome} row at {scheduled}:\n{table}"))
            .to_owned()
    };
    // base() is 2100-01-01 00:00:00.000001 UTC.
    let failed = line("2100-01-01 00:00:00.000", "failure");
    assert!(
        !failed.contains('#') && !failed.contains("backfill"),
        "a first, scheduled run has no marks:\n{table}"
    );
    assert!(
        line("2100-01-01 00:00:00.000", "success").contains("success #2"),
        "{table}"
    );
    let backfilled = line("2099-12-31 00:00:00.000", "success");
    assert!(backfilled.contains("success backfill"), "{table}");
    assert!(!backfilled.contains('#'), "{table}");
    let waiting = line("2100-01-01 00:01:00.000", "running");
    assert!(waiting.contains("running #3"), "{table}");
    assert!(waiting.contains("due 2100-01-01 00:01:30.000"), "{table}");
}

#[test]
fn history_json_and_table_show_the_node() {
    let (_dir, url) = seeded_store();

    let json: Vec<Value> =
        serde_json::from_slice(&aps_ok(&["history", "--json", "--store", &url])).unwrap();
    let node = |id: &str| {
        json.iter()
            .find(|r| r["run_id"] == id)
            .map(|r| r["node"].clone())
    };
    assert_eq!(node("r-1"), Some(Value::from("node-a")), "{json:?}");
    assert_eq!(node("r-2"), Some(Value::from("node-b")), "{json:?}");

    let table = String::from_utf8(aps_ok(&["history", "--store", &url])).unwrap();
    let header = table.lines().next().unwrap();
    let words: Vec<&str> = header.split_whitespace().collect();
    assert!(
        words.windows(2).any(|w| w == ["JOB", "NODE"]),
        "a NODE column after JOB:\n{table}"
    );
    // The cells are aligned under their heading (the table is ASCII here).
    let at = header.find("NODE").unwrap();
    let node_cell = |line: &str| {
        line[at..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{table}");
    for line in rows {
        let expected = if line.contains("success #2") {
            "node-b"
        } else {
            "node-a"
        };
        assert_eq!(node_cell(line), expected, "{table}");
    }
}

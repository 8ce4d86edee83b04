//! Restart with real downtime, in two real processes: one scheduler adds interval jobs
//! (every second) to the SQL store and exits; after ~2 s of downtime a second process
//! starts a `BackgroundScheduler` on the same table and runs what is due. APScheduler's
//! misfire rules must hold across the restart:
//! - `coalesce = true`, grace 30 s: the overdue runs collapse into one;
//! - `coalesce = false`, grace 30 s: every overdue run happens, once;
//! - `coalesce = false`, grace 1 s: runs more than 1 s late are `EVENT_JOB_MISSED`.
//!
//! The processes are this test binary itself, re-run on the test `restart_helper` with
//! `APS_SQL_RESTART_ROLE` set (`add` or `run`); without it that test does nothing.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::event::{EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED};
use apscheduler_core::{Event, JobStore};
use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
use apscheduler_store_sql::SqlJobStore;
use chrono::Utc;
use serde_json::{json, Value};
use support::{server_url, Tables, TempDir, POSTGRES_ENV};

const ROLE: &str = "APS_SQL_RESTART_ROLE";
const URL: &str = "APS_SQL_RESTART_URL";
const TABLE: &str = "APS_SQL_RESTART_TABLE";
/// Lines of the helper's output that carry data start with this.
const MARK: &str = "APS-JSON ";

/// (id, coalesce, misfire grace in seconds)
const JOBS: [(&str, bool, u64); 3] = [
    ("coalesced", true, 30),
    ("every", false, 30),
    ("graced", false, 1),
];

fn emit(v: Value) {
    println!("{MARK}{v}");
}

fn micros(t: &chrono::DateTime<impl chrono::TimeZone>) -> i64 {
    t.timestamp_micros()
}

/// The child process's side. Does nothing unless `APS_SQL_RESTART_ROLE` is set.
#[test]
fn restart_helper() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let url = std::env::var(URL).expect("APS_SQL_RESTART_URL");
    let table = std::env::var(TABLE).expect("APS_SQL_RESTART_TABLE");
    let store = SqlJobStore::builder(url).table_name(table).build().unwrap();
    let engine = Engine::builder()
        .timezone(chrono_tz::UTC)
        .jobstore("default", Arc::new(store))
        .build();
    let scheduler = BackgroundScheduler::from_engine(engine).unwrap();
    scheduler.register_task("tick", |_| Ok(json!("tick")));
    match role.as_str() {
        "add" => {
            // Started paused: jobs go to the store with their first run time, none runs.
            scheduler.start(true).unwrap();
            for (id, coalesce, grace) in JOBS {
                let handle = scheduler
                    .add_job(
                        JobSpec::task("tick")
                            .id(id)
                            .trigger_args("interval", json!({"seconds": 1}))
                            .coalesce(coalesce)
                            .misfire_grace_time(Some(Duration::from_secs(grace))),
                    )
                    .unwrap();
                let first = handle.job().next_run_time.expect("scheduled");
                emit(json!({"added": id, "first": micros(&first)}));
            }
            scheduler.shutdown(false).unwrap();
        }
        "run" => {
            scheduler.add_listener(
                |event: &Event| {
                    if let Event::Execution {
                        code,
                        job_id,
                        scheduled_run_time,
                        ..
                    } = event
                    {
                        let kind = if *code == EVENT_JOB_EXECUTED {
                            "executed"
                        } else if *code == EVENT_JOB_MISSED {
                            "missed"
                        } else {
                            "error"
                        };
                        emit(json!({"event": kind, "job": &**job_id, "t": micros(scheduled_run_time)}));
                    }
                },
                EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR,
            );
            emit(json!({"started": micros(&Utc::now())}));
            scheduler.start(false).unwrap();
            std::thread::sleep(Duration::from_millis(1600));
            scheduler.shutdown(true).unwrap();
            scheduler.engine().flush_events();
            emit(json!({"done": true}));
        }
        other => panic!("unknown role {other}"),
    }
}

/// Runs this test binary as the helper with `role`; returns its data lines.
fn helper(role: &str, url: &str, table: &str) -> Vec<Value> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "restart_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(URL, url)
        .env(TABLE, table)
        .output()
        .expect("run the helper process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helper '{role}' failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        // The harness prints `test restart_helper ... ` before the first line.
        .filter_map(|l| l.find(MARK).map(|i| &l[i + MARK.len()..]))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

async fn restart_scenario(url: &str, table: &str) {
    let added = helper("add", url, table);
    let first: HashMap<String, i64> = added
        .iter()
        .map(|v| {
            (
                v["added"].as_str().unwrap().to_owned(),
                v["first"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(first.len(), 3, "{added:?}");
    // Down until 2.15 s after the earliest first run: each job has missed its runs at
    // +0 s, +1 s and +2 s when the second process starts.
    let earliest = *first.values().min().unwrap();
    let wake = earliest + 2_150_000;
    let wait = wake - micros(&Utc::now());
    if wait > 0 {
        tokio::time::sleep(Duration::from_micros(wait.unsigned_abs())).await;
    }

    let lines = helper("run", url, table);
    let started = lines
        .iter()
        .find_map(|v| v["started"].as_i64())
        .expect("start time");
    assert!(lines.iter().any(|v| v["done"] == json!(true)), "{lines:?}");
    let events = |job: &str, kind: &str| -> Vec<i64> {
        let mut ts: Vec<i64> = lines
            .iter()
            .filter(|v| v["job"] == json!(job) && v["event"] == json!(kind))
            .map(|v| v["t"].as_i64().unwrap())
            .collect();
        ts.sort_unstable();
        ts
    };
    for (id, _, _) in JOBS {
        assert!(events(id, "error").is_empty(), "{id}: errors: {lines:?}");
        let f = first[id];
        let overdue: Vec<i64> = (0..3).map(|k| f + k * 1_000_000).collect();
        assert!(
            overdue.iter().all(|t| *t < started),
            "{id}: not down long enough"
        );
        let executed = events(id, "executed");
        let missed = events(id, "missed");
        let rel = |ts: &[i64]| -> Vec<f64> { ts.iter().map(|t| (t - f) as f64 / 1e6).collect() };
        eprintln!(
            "{id}: restarted at +{:.3} s; executed at {:?}, missed at {:?} (s after the first run time)",
            (started - f) as f64 / 1e6,
            rel(&executed),
            rel(&missed)
        );
        let mut all = executed.clone();
        all.extend(&missed);
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(
            unique.len(),
            all.len(),
            "{id}: a run time reported twice: {lines:?}"
        );
        // After the restart the job keeps running on schedule.
        assert!(
            executed.iter().any(|t| *t > started),
            "{id}: no run after the restart: {lines:?}"
        );
        match id {
            "coalesced" => {
                assert!(missed.is_empty(), "{id}: {lines:?}");
                let caught_up = executed.iter().filter(|t| **t <= overdue[2]).count();
                assert!(
                    caught_up <= 1,
                    "{id}: overdue runs not coalesced: {lines:?}"
                );
                assert!(
                    executed.iter().filter(|t| **t < started).count() <= 1,
                    "{id}: {lines:?}"
                );
            }
            "every" => {
                assert!(missed.is_empty(), "{id}: {lines:?}");
                for t in &overdue {
                    assert!(
                        executed.contains(t),
                        "{id}: overdue run {t} not run: {lines:?}"
                    );
                }
            }
            "graced" => {
                // More than 1 s late at any moment after the restart: missed.
                for t in &overdue[..2] {
                    assert!(missed.contains(t), "{id}: {t} should be missed: {lines:?}");
                }
                // The run 2 s after the first is reported once, either way.
                assert!(
                    executed.contains(&overdue[2]) != missed.contains(&overdue[2]),
                    "{id}: {lines:?}"
                );
            }
            _ => unreachable!(),
        }
    }

    // The jobs are still in the table, scheduled after the last run.
    let store = SqlJobStore::builder(url).table_name(table).build().unwrap();
    let jobs = store.get_all_jobs().await.unwrap();
    assert_eq!(jobs.len(), 3);
    for job in jobs {
        assert!(micros(&job.next_run_time.unwrap()) > started);
    }
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn restart_sqlite() {
    let dir = TempDir::new();
    let url = dir.sqlite_url("jobs.sqlite");
    restart_scenario(&url, "apscheduler_jobs").await;
}

#[tokio::test]
async fn restart_postgres() {
    let Some(url) = server_url(POSTGRES_ENV, "restart_postgres") else {
        return;
    };
    let tables = Tables::new(&url);
    restart_scenario(&url, &tables.table()).await;
}

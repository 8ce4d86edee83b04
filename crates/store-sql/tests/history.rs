//! The run history (`SqlRunHistory`, `<table>_runs`) on every backend: the testkit's
//! conformance suite (`apscheduler_testkit::history::run_all`) on a fresh table, a
//! batch of 1,000 records in one call, unreadable rows, a foreign table under the
//! history's name, ids the table cannot hold, reconnection after a shutdown, and
//! schedulers preparing the table together.
//!
//! `million_rows_*` (ignored) load 1,000,000 records and time `query_runs`; run them
//! with the server variables set:
//!
//! ```text
//! APS_TEST_POSTGRES_URL=postgres://root@127.0.0.1:5432/test \
//! APS_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/test \
//! cargo test --release -p apscheduler-store-sql --test history -- --ignored --nocapture --test-threads 1
//! ```

mod support;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use apscheduler_core::{ErrorKind, JobStore, RunHistory, RunOutcome, RunQuery, RunRecord};
use apscheduler_store_sql::SqlJobStore;
use apscheduler_testkit::history::{base, record};
use chrono::Duration;
use support::{on_every_backend, server_url, Raw, Tables, TempDir, MYSQL_ENV, POSTGRES_ENV};

on_every_backend!(
    history_conformance,
    latest_runs_come_back_byte_for_byte,
    a_batch_of_1000_records_and_pruning_it,
    unreadable_rows_are_serialization_errors,
    refuses_a_foreign_table_under_the_history_name,
    ids_the_table_cannot_hold,
    survives_a_store_restart,
    schedulers_preparing_together,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_history_conformance() {
    let store = SqlJobStore::connect("sqlite::memory:").unwrap();
    apscheduler_testkit::history::run_all(store.run_history().unwrap()).await;
    store.shutdown().await.unwrap();
}

/// The testkit's suite, on a fresh table.
async fn history_conformance(tables: &Tables) {
    let store = tables.store();
    apscheduler_testkit::history::run_all(store.run_history().expect("SQL keeps history")).await;
    store.shutdown().await.unwrap();
}

fn history_of(store: &SqlJobStore) -> Arc<dyn RunHistory> {
    store.run_history().expect("SQL keeps history")
}

fn all_of(job: &str) -> RunQuery {
    RunQuery {
        job_id: Some(job.to_owned()),
        limit: 10_000,
        ..RunQuery::default()
    }
}

/// 1,000 records (10 jobs, 100 runs each, every outcome) in one `record_runs` call
/// all come back, newest first; pruning by count and by age takes the right ones.
async fn a_batch_of_1000_records_and_pruning_it(tables: &Tables) {
    let store = tables.store();
    let history = history_of(&store);
    history.prepare().await.unwrap();
    let records: Vec<RunRecord> = (0..1000)
        .map(|i| {
            let mut r = record(&format!("b-{i:04}"), &format!("b-job-{}", i % 10), i);
            r.outcome = RunOutcome::ALL[(i as usize / 10) % RunOutcome::ALL.len()];
            if r.outcome == RunOutcome::Running {
                r.finished_at = None;
            }
            r.output = format!("run {i}\n").repeat(i as usize % 7);
            r
        })
        .collect();
    let started = Instant::now();
    history.record_runs(&records).await.unwrap();
    eprintln!(
        "{}: 1,000 records in one record_runs: {:?}",
        store.backend(),
        started.elapsed()
    );

    let everything = RunQuery {
        limit: 5000,
        ..RunQuery::default()
    };
    let found = history.query_runs(&everything).await.unwrap();
    let mut expected = records.clone();
    expected.reverse();
    assert_eq!(found.len(), 1000);
    assert!(
        found == expected,
        "all 1,000 records come back, newest first"
    );

    // Writing the batch again replaces, never duplicates.
    history.record_runs(&records).await.unwrap();
    assert_eq!(history.query_runs(&everything).await.unwrap().len(), 1000);

    let job = "b-job-3";
    let of_job: Vec<&RunRecord> = expected.iter().filter(|r| r.job_id == job).collect();
    let running = of_job
        .iter()
        .filter(|r| r.outcome == RunOutcome::Running)
        .count();
    assert_eq!(of_job.len(), 100);
    let removed = history.prune_job_runs(job, 10).await.unwrap();
    assert_eq!(removed as usize, 100 - running - 10);
    let left = history.query_runs(&all_of(job)).await.unwrap();
    let kept: Vec<RunRecord> = of_job
        .iter()
        .filter(|r| r.outcome != RunOutcome::Running)
        .take(10)
        .chain(of_job.iter().filter(|r| r.outcome == RunOutcome::Running))
        .map(|r| (*r).clone())
        .collect();
    let mut kept_sorted = kept.clone();
    kept_sorted.sort_by(|a, b| (b.scheduled_at, &b.run_id).cmp(&(a.scheduled_at, &a.run_id)));
    assert_eq!(
        left, kept_sorted,
        "the newest 10 ended runs and every running one"
    );
    assert_eq!(
        history.query_runs(&all_of("b-job-4")).await.unwrap().len(),
        100
    );

    // Age: everything ended before the 500th second goes (other jobs and b-job-3 alike).
    let cut = base() + Duration::seconds(500);
    let before = history.query_runs(&everything).await.unwrap();
    let doomed = before
        .iter()
        .filter(|r| r.scheduled_at < cut && r.outcome != RunOutcome::Running)
        .count();
    assert_eq!(
        history.prune_runs_before(cut).await.unwrap() as usize,
        doomed
    );
    let after = history.query_runs(&everything).await.unwrap();
    assert_eq!(after.len(), before.len() - doomed);
    assert!(after
        .iter()
        .all(|r| r.scheduled_at >= cut || r.outcome == RunOutcome::Running));
    store.shutdown().await.unwrap();
}

/// A row this build cannot read fails the query with `Serialization`, naming the run
/// and the value.
async fn unreadable_rows_are_serialization_errors(tables: &Tables) {
    let store = tables.store();
    let history = history_of(&store);
    history.prepare().await.unwrap();
    history
        .record_runs(&[
            record("bad-1", "bad-job", 0),
            record("good-1", "good-job", 0),
        ])
        .await
        .unwrap();
    let raw = Raw::connect(tables.url()).await;
    let runs = raw.quote(store.runs_table_name());
    raw.exec(&format!(
        "UPDATE {runs} SET outcome = 'exploded' WHERE run_id = 'bad-1'"
    ))
    .await;
    let err = history.query_runs(&all_of("bad-job")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(
        err.message().contains("'bad-1'") && err.message().contains("'exploded'"),
        "{err}"
    );
    assert_eq!(
        history.query_runs(&all_of("good-job")).await.unwrap().len(),
        1
    );
    raw.close().await;
    store.shutdown().await.unwrap();
}

/// A table under the history's name without its columns is refused, not written to.
async fn refuses_a_foreign_table_under_the_history_name(tables: &Tables) {
    let store = tables.store();
    let raw = Raw::connect(tables.url()).await;
    let runs = raw.quote(store.runs_table_name());
    raw.exec(&format!(
        "CREATE TABLE {runs} (id INTEGER PRIMARY KEY, note TEXT)"
    ))
    .await;
    let history = history_of(&store);
    let err = history.prepare().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert!(err.message().contains("run_id"), "{err}");
    let err = history
        .record_runs(&[record("f-1", "f-job", 0)])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert_eq!(
        raw.int(&format!("SELECT COUNT(*) FROM {runs}")).await,
        Some(0)
    );
    raw.close().await;
    store.shutdown().await.unwrap();
}

/// Ids longer than 191 characters or holding NUL are refused when written and match
/// nothing when queried.
async fn ids_the_table_cannot_hold(tables: &Tables) {
    let store = tables.store();
    let history = history_of(&store);
    history.prepare().await.unwrap();
    let long = "x".repeat(192);
    for (field, bad) in [
        ("run_id", record(&long, "j", 0)),
        ("job_id", record("r", "a\0b", 0)),
        ("node", {
            let mut r = record("r", "j", 0);
            r.node = long.clone();
            r
        }),
    ] {
        let err = history
            .record_runs(&[record("ok", "j", 0), bad])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.message().contains(field), "{err}");
    }
    assert!(history.query_runs(&all_of("j")).await.unwrap().is_empty());
    assert!(history.query_runs(&all_of(&long)).await.unwrap().is_empty());
    assert!(history
        .query_runs(&all_of("a\0b"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(history.prune_job_runs("a\0b", 0).await.unwrap(), 0);
    let changed = history
        .interrupt_running(&long, base(), "gone")
        .await
        .unwrap();
    assert!(changed.is_empty());
    store.shutdown().await.unwrap();
}

/// The history shares the store's pool: after the store shuts down it reconnects on
/// its next call, and a second store on the same table sees the same records.
async fn survives_a_store_restart(tables: &Tables) {
    let table = tables.table();
    let store = tables.store_on(&table);
    store.start("default").await.unwrap();
    let history = history_of(&store);
    history.prepare().await.unwrap();
    let mut running = record("sr-1", "sr-job", 0);
    running.outcome = RunOutcome::Running;
    running.finished_at = None;
    history.record_runs(&[running.clone()]).await.unwrap();
    store.shutdown().await.unwrap();

    assert_eq!(
        history.query_runs(&all_of("sr-job")).await.unwrap(),
        vec![running.clone()]
    );
    store.shutdown().await.unwrap();

    let other = tables.store_on(&table);
    let changed = history_of(&other)
        .interrupt_running("node-a", base() + Duration::seconds(5), "restarted")
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].outcome, RunOutcome::Interrupted);
    assert_eq!(
        history.query_runs(&all_of("sr-job")).await.unwrap(),
        changed
    );
    store.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
}

/// Three stores on one table preparing their histories at once all succeed, and
/// share the records.
async fn schedulers_preparing_together(tables: &Tables) {
    let table = tables.table();
    let stores = [
        tables.store_on(&table),
        tables.store_on(&table),
        tables.store_on(&table),
    ];
    let histories: Vec<_> = stores.iter().map(history_of).collect();
    let (a, b, c) = tokio::join!(
        histories[0].prepare(),
        histories[1].prepare(),
        histories[2].prepare()
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    histories[1]
        .record_runs(&[record("pt-1", "pt-job", 0)])
        .await
        .unwrap();
    for h in &histories {
        h.prepare().await.unwrap();
        assert_eq!(h.query_runs(&all_of("pt-job")).await.unwrap().len(), 1);
    }
    for s in &stores {
        s.shutdown().await.unwrap();
    }
}

// ---------------------------------------------------------------------------------
// Timings on 1,000,000 rows (ignored: run them by hand, see the module docs).

/// How many rows the timed checks load (`APS_HISTORY_ROWS`, default 1,000,000).
fn million() -> usize {
    std::env::var("APS_HISTORY_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Record `i` of the load: 1,000 jobs fired once a minute each (a millisecond apart),
/// 2 % failures, 1 % missed, the last 20 still running, on three nodes, ~120 bytes of
/// output.
fn loaded(i: usize, total: usize) -> RunRecord {
    let at = base()
        + Duration::seconds((i / 1000) as i64 * 60)
        + Duration::milliseconds((i % 1000) as i64);
    let mut r = record(
        &format!("{:08x}-0000-7000-8000-{:012x}", i / 1000, i),
        &format!("job-{:04}", i % 1000),
        0,
    );
    r.scheduled_at = at;
    r.started_at = Some(at + Duration::microseconds(1500));
    r.finished_at = Some(at + Duration::milliseconds(250));
    r.node = format!("node-{}", i % 3);
    r.output = format!(
        "run {i} of job-{:04}: copied 1234 files, 56 MiB, 0 errors\nall done\n",
        i % 1000
    );
    if i % 50 == 7 {
        r.outcome = RunOutcome::Failure;
        r.exit_code = Some(1);
        r.message = Some("exit status 1".into());
    } else if i % 100 == 11 {
        r.outcome = RunOutcome::Missed;
        r.started_at = None;
        r.exit_code = None;
        r.output = String::new();
        r.message = Some("missed by 12 s".into());
    }
    if i + 20 >= total {
        r.outcome = RunOutcome::Running;
        r.finished_at = None;
        r.exit_code = None;
    }
    r
}

/// Loads [`million`] rows through `record_runs` (batches of 1,000), then times each
/// kind of `query_runs(limit 100)` (best and worst of 5 runs, after one warm-up).
async fn time_queries(store: &SqlJobStore) {
    let history = history_of(store);
    history.prepare().await.unwrap();
    let total = million();
    let started = Instant::now();
    for batch in 0..total.div_ceil(1000) {
        let records: Vec<RunRecord> = (batch * 1000..((batch + 1) * 1000).min(total))
            .map(|i| loaded(i, total))
            .collect();
        history.record_runs(&records).await.unwrap();
    }
    let load = started.elapsed();
    eprintln!(
        "{}: loaded {total} rows in {:.1} s ({:.0} rows/s)",
        store.backend(),
        load.as_secs_f64(),
        total as f64 / load.as_secs_f64()
    );
    let middle = base() + Duration::seconds((total / 1000 / 2) as i64 * 60);
    let queries = [
        ("no filter", RunQuery::default()),
        (
            "job_id",
            RunQuery {
                job_id: Some("job-0500".into()),
                ..RunQuery::default()
            },
        ),
        (
            "outcome failure",
            RunQuery {
                outcome: Some(RunOutcome::Failure),
                ..RunQuery::default()
            },
        ),
        (
            "since/until (1 h in the middle)",
            RunQuery {
                since: Some(middle),
                until: Some(middle + Duration::hours(1)),
                ..RunQuery::default()
            },
        ),
        (
            "job_id + since/until",
            RunQuery {
                job_id: Some("job-0500".into()),
                since: Some(middle - Duration::hours(24)),
                until: Some(middle),
                ..RunQuery::default()
            },
        ),
        (
            "job_id + outcome missed",
            RunQuery {
                job_id: Some("job-0011".into()),
                outcome: Some(RunOutcome::Missed),
                ..RunQuery::default()
            },
        ),
        (
            "node (no index)",
            RunQuery {
                node: Some("node-1".into()),
                ..RunQuery::default()
            },
        ),
    ];
    for (name, query) in &queries {
        let found = history.query_runs(query).await.unwrap();
        assert!(!found.is_empty() && found.len() <= 100, "{name}");
        let mut times: Vec<StdDuration> = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let again = history.query_runs(query).await.unwrap();
            times.push(t.elapsed());
            assert_eq!(again.len(), found.len());
        }
        times.sort();
        eprintln!(
            "{}: query_runs(limit 100, {name}): {} rows, best {:.2} ms, worst {:.2} ms",
            store.backend(),
            found.len(),
            times[0].as_secs_f64() * 1e3,
            times[4].as_secs_f64() * 1e3
        );
    }
    let t = Instant::now();
    let pruned = history.prune_job_runs("job-0500", 100).await.unwrap();
    eprintln!(
        "{}: prune_job_runs(job-0500, keep 100): {pruned} rows in {:.2} ms",
        store.backend(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let changed = history
        .interrupt_running("node-1", middle, "stopped")
        .await
        .unwrap();
    eprintln!(
        "{}: interrupt_running(node-1): {} rows in {:.2} ms",
        store.backend(),
        changed.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
}

/// `query_runs` timings on 1,000,000 SQLite rows (a temporary file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "loads 1,000,000 rows: run by hand with --ignored --nocapture"]
async fn million_rows_sqlite() {
    let dir = TempDir::new();
    let tables = Tables::new(&dir.sqlite_url("history.sqlite"));
    let store = tables.store();
    time_queries(&store).await;
    store.shutdown().await.unwrap();
}

/// `query_runs` timings on 1,000,000 PostgreSQL rows (a table dropped at the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "loads 1,000,000 rows: run by hand with --ignored --nocapture"]
async fn million_rows_postgres() {
    let Some(url) = server_url(POSTGRES_ENV, "million_rows_postgres") else {
        return;
    };
    let tables = Tables::new(&url);
    let store = tables.store();
    time_queries(&store).await;
    store.shutdown().await.unwrap();
}

/// `query_runs` timings on 1,000,000 MySQL/MariaDB rows (a table dropped at the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "loads 1,000,000 rows: run by hand with --ignored --nocapture"]
async fn million_rows_mysql() {
    let Some(url) = server_url(MYSQL_ENV, "million_rows_mysql") else {
        return;
    };
    let tables = Tables::new(&url);
    let store = tables.store();
    time_queries(&store).await;
    store.shutdown().await.unwrap();
}

/// `latest_runs` (SQLite reads the rows as one value) gives back each record as
/// `query_runs` does: output and message with quotes, backslashes, control characters,
/// NUL and non-ASCII text, empty and absent values, every column.
async fn latest_runs_come_back_byte_for_byte(tables: &Tables) {
    let store = tables.store();
    let history = history_of(&store);
    history.prepare().await.unwrap();
    let mut odd = record("odd-1", "odd\"job", 3);
    odd.output = "a \"quoted\" \\ line\n\t\u{0}\u{1}\u{7f} é ✓ \u{1F600}\r\n".to_owned();
    odd.message = Some("\\u0000 is not a NUL here; \"this\" is".to_owned());
    odd.exit_code = Some(-3);
    odd.http_status = Some(503);
    let mut plain = record("plain-1", "plain", 2);
    plain.output = String::new();
    plain.message = None;
    plain.started_at = None;
    plain.finished_at = None;
    let older = record("odd-0", "odd\"job", 1);
    history
        .record_runs(&[odd.clone(), plain.clone(), older])
        .await
        .unwrap();
    let ids = vec!["odd\"job".to_owned(), "plain".to_owned(), "none".to_owned()];
    let mut latest = history.latest_runs(&ids).await.unwrap();
    latest.sort_by(|a, b| a.job_id.cmp(&b.job_id));
    let mut expected = Vec::new();
    for job in ["odd\"job", "plain"] {
        let mut q = all_of(job);
        q.limit = 1;
        expected.extend(history.query_runs(&q).await.unwrap());
    }
    assert_eq!(latest, expected);
    assert_eq!(latest[0].output, odd.output);
    assert_eq!(latest[0].message, odd.message);
    assert_eq!(latest[1].message, None);
    store.shutdown().await.unwrap();
}

//! MySQL/MariaDB (`APS_TEST_MYSQL_URL`): a pass's claim and release are scripts of
//! several statements sent as one query, their values written as hexadecimal literals.
//! These tests check what that changes: a script the server stops midway leaves no
//! lock and no change behind (its connection is closed, so the server rolls its
//! transaction back); the records written with a release are part of its transaction;
//! releases and history writes too large for a script take prepared statements.

mod support;

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{Job, JobRelease, JobStore, RunQuery, RunRecord};
use apscheduler_store_sql::SqlJobStore;
use apscheduler_testkit::history::record;
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};
use serde_json::json;
use support::{server_url, Raw, Tables, MYSQL_ENV};

/// A trigger on the job table `table` that refuses every update of a row.
fn refusing_trigger(table: &str) -> String {
    format!(
        "CREATE TRIGGER `{table}_refuse` BEFORE UPDATE ON `{table}` FOR EACH ROW \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'updates refused by the test'"
    )
}

/// Waits until another session can lock row `id` of `table` without waiting
/// (`NOWAIT`): the transaction of a closed session is rolled back once the server has
/// seen the connection go, which is not at once.
async fn wait_unlocked(raw: &Raw, table: &str, id: &str) {
    let Raw::MySql(pool) = raw else {
        unreachable!("a MySQL pool")
    };
    let sql = format!("SELECT id FROM `{table}` WHERE id = '{id}' FOR UPDATE NOWAIT");
    let mut last = None;
    for _ in 0..300 {
        let mut tx = pool.begin().await.expect("begin");
        match sqlx::query(&sql).fetch_all(&mut *tx).await {
            Ok(_) => {
                tx.rollback().await.expect("rollback");
                return;
            }
            Err(e) => last = Some(e),
        }
        drop(tx);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("row {id} of {table} is still locked 30 s after the failed script: {last:?}");
}

fn moved_to(job: &Job, seconds: i64) -> JobRelease {
    JobRelease::Update(Job {
        next_run_time: Some(at(seconds)),
        ..job.clone()
    })
}

/// A claim and a release the server stops midway (a trigger refuses the `UPDATE`
/// after the rows were locked) fail, leave the rows unlocked and unchanged, and the
/// records sent with the release unwritten; the store works again once the trigger is
/// gone.
async fn a_script_stopped_midway_leaves_nothing(tables: &Tables) {
    let table = tables.table();
    let store = tables.store_on(&table);
    store.start("default").await.unwrap();
    let history = store.run_history().expect("SQL keeps history");
    history.prepare().await.unwrap();
    for (id, t) in [("a", 1), ("b", 2)] {
        store
            .add_job(sample_job(id, Some(at(t)), interval_trigger(60)), false)
            .await
            .unwrap();
    }
    let raw = Raw::connect(tables.url()).await;
    raw.exec(&refusing_trigger(&table)).await;

    let failed = store.acquire_due_jobs("s1", utc(10), 10, LEASE).await;
    let e = failed.expect_err("the trigger refuses the claim's update");
    assert!(e.to_string().contains("refused by the test"), "{e}");
    wait_unlocked(&raw, &table, "a").await;
    assert_eq!(
        raw.int(&format!(
            "SELECT COUNT(*) FROM `{table}` WHERE lease_holder IS NOT NULL"
        ))
        .await,
        Some(0),
        "the failed claim leased nothing"
    );

    raw.exec(&format!("DROP TRIGGER `{table}_refuse`")).await;
    let claimed = store
        .acquire_due_jobs("s1", utc(10), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.jobs.len(), 2, "{claimed:?}");

    raw.exec(&refusing_trigger(&table)).await;
    let releases: Vec<JobRelease> = claimed.jobs.iter().map(|j| moved_to(j, 30)).collect();
    let records = [record("stopped-1", "a", 1)];
    let failed = store
        .release_jobs_recorded("s1", releases.clone(), &records)
        .await;
    let e = failed.expect_err("the trigger refuses the release's update");
    assert!(e.to_string().contains("refused by the test"), "{e}");
    wait_unlocked(&raw, &table, "a").await;
    wait_unlocked(&raw, &table, "b").await;
    let all = RunQuery {
        limit: 100,
        ..RunQuery::default()
    };
    assert!(
        history.query_runs(&all).await.unwrap().is_empty(),
        "the records went with the failed release"
    );
    assert_eq!(
        raw.int(&format!(
            "SELECT COUNT(*) FROM `{table}` WHERE lease_holder = 's1'"
        ))
        .await,
        Some(2),
        "the failed release dropped no lease"
    );
    for (id, t) in [("a", 1), ("b", 2)] {
        let job = store.lookup_job(id).await.unwrap().expect("still stored");
        assert_eq!(
            job.next_run_time,
            Some(at(t)),
            "the failed release moved {id}"
        );
    }

    raw.exec(&format!("DROP TRIGGER `{table}_refuse`")).await;
    let released = store
        .release_jobs_recorded("s1", releases, &records)
        .await
        .unwrap();
    assert!(released.lost.is_empty(), "{released:?}");
    assert_eq!(released.next_run_time, Some(Some(utc(30))));
    let written = history.query_runs(&all).await.unwrap();
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0].run_id, "stopped-1");
    assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(30)));
    store.shutdown().await.unwrap();
}

/// Jobs whose states together exceed a script's budget (1 MiB) are released, and run
/// records whose output does are written, through prepared statements.
async fn large_writes_take_prepared_statements(tables: &Tables) {
    let store: SqlJobStore = tables.store();
    store.start("default").await.unwrap();
    let big = "x".repeat(400 << 10);
    for id in ["a", "b", "c"] {
        let mut job = sample_job(id, Some(at(1)), interval_trigger(60));
        job.args = Arc::new(vec![json!(big)]);
        store.add_job(job, false).await.unwrap();
    }
    let claimed = store
        .acquire_due_jobs("s1", utc(10), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.jobs.len(), 3, "{:?}", claimed.corrupt);
    let releases = claimed.jobs.iter().map(|j| moved_to(j, 40)).collect();
    let released = store.release_jobs("s1", releases).await.unwrap();
    assert!(released.lost.is_empty(), "{released:?}");
    for id in ["a", "b", "c"] {
        let job = store.lookup_job(id).await.unwrap().expect("still stored");
        assert_eq!(job.next_run_time, Some(at(40)));
        assert_eq!(job.args[0], json!(big));
    }
    assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(40)));

    let history = store.run_history().expect("SQL keeps history");
    history.prepare().await.unwrap();
    let records: Vec<RunRecord> = (0..2)
        .map(|i| {
            let mut r = record(&format!("large-{i}"), "a", i);
            r.output = format!("{i}").repeat(700 << 10);
            r
        })
        .collect();
    history.record_runs(&records).await.unwrap();
    let mut written = history
        .query_runs(&RunQuery {
            limit: 10,
            ..RunQuery::default()
        })
        .await
        .unwrap();
    written.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    assert_eq!(written.len(), 2);
    for (w, r) in written.iter().zip(&records) {
        assert_eq!(w.run_id, r.run_id);
        assert_eq!(w.output, r.output);
    }
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_a_script_stopped_midway_leaves_nothing() {
    let Some(url) = server_url(MYSQL_ENV, "mysql_a_script_stopped_midway_leaves_nothing") else {
        return;
    };
    a_script_stopped_midway_leaves_nothing(&Tables::new(&url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_large_writes_take_prepared_statements() {
    let Some(url) = server_url(MYSQL_ENV, "mysql_large_writes_take_prepared_statements") else {
        return;
    };
    large_writes_take_prepared_statements(&Tables::new(&url)).await;
}

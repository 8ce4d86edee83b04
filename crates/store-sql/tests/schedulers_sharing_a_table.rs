//! Schedulers sharing one table, on every backend: a fire time runs once however many
//! schedulers claim it, the testkit's scheduler checks (clock skew included); and
//! changes heard (PostgreSQL's `LISTEN` / `NOTIFY`) or polled for (MySQL/MariaDB).

mod support;

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::JobStore;
use apscheduler_store_sql::SqlJobStore;
use serde_json::json;
use support::{on_every_backend, server_url, Raw, Tables, MYSQL_ENV, POSTGRES_ENV};

on_every_backend!(
    two_schedulers_share_a_table,
    scheduler_over_store_shared_check,
    clock_skew_never_starts_a_fire_time_twice,
    declared_jobs_keep_their_schedule,
    runs_are_leased_rows_by_default,
);

/// Two schedulers (two engines, each with its own store and pool) share one table: a
/// job every 100 ms runs once per run time, never twice.
async fn two_schedulers_share_a_table(tables: &Tables) {
    use apscheduler_core::event::EVENT_JOB_EXECUTED;
    use apscheduler_core::Event;
    use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
    use std::sync::Mutex;

    let table = tables.table();
    let runs: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let schedulers: Vec<BackgroundScheduler> = ["node-a", "node-b"]
        .into_iter()
        .map(|node| {
            let store = SqlJobStore::builder(tables.url())
                .table_name(table.clone())
                .build()
                .unwrap();
            let engine = Engine::builder()
                .scheduler_id(node)
                .timezone(chrono_tz::UTC)
                .jobstore("default", Arc::new(store))
                .build();
            let scheduler = BackgroundScheduler::from_engine(engine).unwrap();
            scheduler.register_task("work", |_| Ok(json!(null)));
            let runs = runs.clone();
            scheduler.add_listener(
                move |event: &Event| {
                    if let Event::Execution {
                        scheduled_run_time, ..
                    } = event
                    {
                        runs.lock()
                            .unwrap()
                            .push((node.to_owned(), scheduled_run_time.timestamp_micros()));
                    }
                },
                EVENT_JOB_EXECUTED,
            );
            scheduler
        })
        .collect();
    // Started on a runtime-free thread: the front-ends block on their own runtime.
    let runs_seen = tokio::task::spawn_blocking(move || {
        for s in &schedulers {
            s.start(false).unwrap();
        }
        schedulers[0]
            .add_job(
                JobSpec::task("work")
                    .id("shared")
                    .trigger_args("interval", json!({"seconds": 0.1})),
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(2000));
        for s in &schedulers {
            s.shutdown(true).unwrap();
        }
    });
    runs_seen.await.unwrap();
    let runs = runs.lock().unwrap().clone();
    let mut times: Vec<i64> = runs.iter().map(|(_, t)| *t).collect();
    times.sort_unstable();
    let before = times.len();
    times.dedup();
    assert_eq!(times.len(), before, "a run time ran twice: {runs:?}");
    assert!(before >= 10, "too few runs: {runs:?}");
}

/// A scheduler whose stores are all persistent keeps its runs as leased rows of the
/// store unless told otherwise (decided at its first start); told otherwise, or on the
/// memory store, it keeps them itself.
async fn runs_are_leased_rows_by_default(tables: &Tables) {
    use apscheduler_engine::{AsyncScheduler, Engine, JobSpec};

    let table = tables.table();
    let ran = |choice: Option<bool>, job: &'static str| {
        let store = Arc::new(tables.store_on(&table));
        async move {
            let mut builder = Engine::builder()
                .timezone(chrono_tz::UTC)
                .jobstore("default", store.clone());
            if let Some(on) = choice {
                builder = builder.leased_runs(on);
            }
            let scheduler = AsyncScheduler::from_builder(builder).unwrap();
            assert_eq!(scheduler.engine().leased_runs(), choice);
            let (tx, rx) = tokio::sync::oneshot::channel();
            let tx = std::sync::Mutex::new(Some(tx));
            scheduler.register_task("work", move |_| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                Ok(json!(null))
            });
            scheduler.start(false).await.unwrap();
            let leased = scheduler.engine().leased_runs();
            scheduler
                .add_job(JobSpec::task("work").id(job))
                .await
                .unwrap();
            tokio::time::timeout(Duration::from_secs(20), rx)
                .await
                .expect("the job ran")
                .unwrap();
            scheduler.shutdown(true).await.unwrap();
            let rows = store.runs().unwrap().runs_of_job(job).await.unwrap();
            (leased, rows.len())
        }
    };
    assert_eq!(ran(None, "by-default").await, (Some(true), 1));
    assert_eq!(ran(Some(false), "history-records").await, (Some(false), 0));

    let memory = AsyncScheduler::new().unwrap();
    memory.start(false).await.unwrap();
    assert_eq!(memory.engine().leased_runs(), Some(false));
    memory.shutdown(true).await.unwrap();
}

/// The testkit's shared scheduler check, each store opened anew on one table.
async fn scheduler_over_store_shared_check(tables: &Tables) {
    let table = tables.table();
    apscheduler_testkit::scheduler::check_scheduler_over_store(|| {
        Arc::new(tables.store_on(&table)) as Arc<dyn JobStore>
    })
    .await;
}

/// Declared jobs across restarts and replicas (`apscheduler_testkit::declared`).
async fn declared_jobs_keep_their_schedule(tables: &Tables) {
    let table = tables.table();
    apscheduler_testkit::declared::check_declared_jobs(|| {
        Arc::new(tables.store_on(&table)) as Arc<dyn JobStore>
    })
    .await;
}

/// Two schedulers 5 s apart on one table (`apscheduler_testkit::scheduler::check_clock_skew`).
async fn clock_skew_never_starts_a_fire_time_twice(tables: &Tables) {
    let table = tables.table();
    let (ahead, on_time) = apscheduler_testkit::scheduler::check_clock_skew(|| {
        Arc::new(tables.store_on(&table)) as Arc<dyn JobStore>
    })
    .await;
    eprintln!("clock skew: runs by the node ahead {ahead}, on time {on_time}");
}

/// PostgreSQL tells the other schedulers on a table about each change (`LISTEN` /
/// `NOTIFY`), and a listener whose connection was terminated listens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_changes() {
    let Some(url) = server_url(POSTGRES_ENV, "postgres_notifies_changes") else {
        return;
    };
    let tables = Tables::new(&url);
    let table = tables.table();
    let listening = tables.store_on(&table);
    let writer = tables.store_on(&table);
    apscheduler_testkit::store::check_change_notifications(&listening, &writer, || async {
        let raw = Raw::connect(&url).await;
        raw.exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN \"apscheduler_jobs_%' AND pid <> pg_backend_pid()",
        )
        .await;
        raw.close().await;
    })
    .await;
}

/// SQLite and MySQL/MariaDB have no change channel: schedulers poll.
#[test]
fn only_postgres_declares_notifications() {
    for (url, notifies) in [
        ("sqlite::memory:", false),
        ("mysql://root@127.0.0.1/test", false),
        ("postgres://root@127.0.0.1/test", true),
    ] {
        let store = SqlJobStore::connect(url).unwrap();
        assert_eq!(store.capabilities().notifications, notifies, "{url}");
    }
}

/// A scheduler on MySQL/MariaDB (no change channel) looks at the store every second
/// (`EngineBuilder::change_poll`), however far its next fire time, so that another
/// process's changes take effect within a second; on PostgreSQL (notifications) it
/// is not polled for changes: with runs kept as history records it sleeps until the
/// fire time, with leased runs (`leased_runs(true)`) until its next lease upkeep (a
/// third of the lease: the sweep that takes over a dead scheduler's runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_polls_only_stores_that_cannot_notify() {
    use apscheduler_engine::{Engine, JobSpec, DEFAULT_CHANGE_POLL, DEFAULT_LEASE};
    for (var, polled, leased) in [
        (MYSQL_ENV, true, false),
        (POSTGRES_ENV, false, false),
        (MYSQL_ENV, true, true),
        (POSTGRES_ENV, false, true),
    ] {
        let Some(url) = server_url(var, "a_scheduler_polls_only_stores_that_cannot_notify") else {
            continue;
        };
        let tables = Tables::new(&url);
        for poll in [Some(DEFAULT_CHANGE_POLL), None] {
            let engine = Engine::builder()
                .jobstore("default", Arc::new(tables.store()))
                .change_poll(poll)
                .leased_runs(leased)
                .build();
            engine.register_task("noop", |_| Ok(json!(null)));
            engine.start(false).await.unwrap();
            engine
                .add_job(
                    JobSpec::task("noop")
                        .id("hourly")
                        .trigger_args("interval", json!({"hours": 1})),
                )
                .await
                .unwrap();
            let wait = engine.process_jobs().await.expect("a next wake-up");
            if polled && poll.is_some() {
                assert!(wait <= DEFAULT_CHANGE_POLL, "{var}: waits {wait:?}");
            } else if leased {
                assert!(
                    wait > DEFAULT_CHANGE_POLL && wait <= DEFAULT_LEASE / 3,
                    "{var} ({poll:?}), leased runs: waits {wait:?}"
                );
            } else {
                assert!(
                    wait > Duration::from_secs(3500),
                    "{var} ({poll:?}): waits {wait:?}"
                );
            }
            engine.shutdown(true).await.unwrap();
        }
    }
}

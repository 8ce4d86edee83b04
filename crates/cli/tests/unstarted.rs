//! A node that dies between the claim of a fire time and its start: the fire time is
//! started once, by another node, on every shared store with its own run history.
//!
//! Engines in this process on real servers (`APS_TEST_POSTGRES_URL`,
//! `APS_TEST_MYSQL_URL`, `APS_TEST_REDIS_URL`, `APS_TEST_ZOOKEEPER_URL`,
//! `APS_TEST_MONGODB_URL`; tables, key prefix, path or collection of the test's own),
//! real time. The dying node runs on a runtime of its own, and its run history stops
//! answering at one point of its pass: after the `running` record of its claimed fire
//! time is written and before the release (the release never applied), or after the
//! release applied and before the start is written. The runtime is then dropped: its
//! passes, heartbeat and connections stop at once, as in a process killed. Two live
//! nodes (each with its own connections) go on. The fire time has nanoseconds, as an
//! interval trigger started at "now" has, where every run history keeps whole
//! microseconds.
//!
//! Checked: the fire time ran exactly once, on a live node; the dead node's record is
//! `interrupted` with no start time; nothing is left `running`. With the node time-out
//! shorter than the lease and longer, so that the dead node is reaped before its claim
//! expires and after another node took the job over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::{
    async_trait, Error, JobStore, NodeRegistry, RunElsewhere, RunHistory, RunOutcome, RunQuery,
    RunRecord,
};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_testkit::server::{random_namespace, server_url};
use chrono::{DateTime, Timelike, Utc};
use serde_json::json;

/// Where the dying node's pass stops.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Death {
    /// After its claimed fire time's `running` record is written, before the release.
    BeforeRelease,
    /// After the release applied, before the run's start is written.
    BeforeStart,
}

/// The dying node's run history: the store's, but the write at `death` never answers
/// (the begin write is applied first, the start write not at all).
#[derive(Debug)]
struct Dying {
    inner: Arc<dyn RunHistory>,
    death: Death,
}

#[async_trait]
impl RunHistory for Dying {
    async fn prepare(&self) -> Result<(), Error> {
        self.inner.prepare().await
    }
    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error> {
        let claimed = !records.is_empty()
            && records
                .iter()
                .all(|r| r.outcome == RunOutcome::Running && r.due_at.is_none());
        let begin = claimed && records.iter().all(|r| r.started_at.is_none());
        match self.death {
            Death::BeforeRelease if begin => {
                self.inner.record_runs(records).await?;
                std::future::pending().await
            }
            _ => self.inner.record_runs(records).await,
        }
    }
    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        match self.death {
            Death::BeforeStart => std::future::pending().await,
            Death::BeforeRelease => self.inner.record_starts(records).await,
        }
    }
    fn nodes(&self) -> Option<&dyn NodeRegistry> {
        self.inner.nodes()
    }
    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        self.inner.query_runs(query).await
    }
    async fn running_elsewhere(&self, node: &str) -> Result<Vec<RunElsewhere>, Error> {
        self.inner.running_elsewhere(node).await
    }
    async fn prune_job_runs(&self, job_id: &str, keep: usize) -> Result<u64, Error> {
        self.inner.prune_job_runs(job_id, keep).await
    }
    async fn prune_runs_before(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        self.inner.prune_runs_before(before).await
    }
    async fn interrupt_running(
        &self,
        node: &str,
        now: DateTime<Utc>,
        message: &str,
    ) -> Result<Vec<RunRecord>, Error> {
        self.inner.interrupt_running(node, now, message).await
    }
}

/// A shared store, under a namespace of the test's own.
#[derive(Clone, Debug)]
enum Server {
    Sql(String),
    Redis(String),
    ZooKeeper(String),
    MongoDb(String),
}

impl Server {
    /// A new connection to the store under `ns` (opened on the current runtime).
    fn open(&self, ns: &str) -> Arc<dyn JobStore> {
        match self {
            Server::Sql(url) => Arc::new(
                apscheduler_store_sql::SqlJobStore::builder(url)
                    .table_name(ns)
                    .build()
                    .unwrap(),
            ),
            Server::Redis(url) => Arc::new(
                apscheduler_store_redis::RedisJobStore::builder(url)
                    .prefix(format!("{ns}."))
                    .build()
                    .unwrap(),
            ),
            Server::ZooKeeper(hosts) => Arc::new(
                apscheduler_store_zookeeper::ZooKeeperJobStore::builder(hosts)
                    .path(format!("/{ns}"))
                    .build()
                    .unwrap(),
            ),
            Server::MongoDb(url) => Arc::new(
                apscheduler_store_mongodb::MongoDbJobStore::builder(url)
                    .collection(ns)
                    .build()
                    .unwrap(),
            ),
        }
    }
}

/// The fire times each node started: (node, fire time).
type Started = Arc<Mutex<Vec<(String, DateTime<Utc>)>>>;

/// A node `name` on `store` and `history`, heartbeating every 100 ms, running the task
/// `work` inline (noting its start in `started`).
fn node(
    name: &str,
    store: Arc<dyn JobStore>,
    history: Arc<dyn RunHistory>,
    (lease, node_timeout): (Duration, Duration),
    started: &Started,
) -> Engine {
    let engine = Engine::builder()
        .timezone(chrono_tz::UTC)
        .jobstore("default", store)
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id(name)
        .lease(lease)
        // The history-records protocol (leased runs keep the claim in the run's row).
        .leased_runs(false)
        .run_history(
            history,
            HistoryOptions {
                heartbeat: Duration::from_millis(100),
                node_timeout,
                record_starts: true,
                ..HistoryOptions::default()
            },
        )
        .build();
    let (name, started) = (name.to_owned(), started.clone());
    engine.register_task("work", move |ctx| {
        started
            .lock()
            .unwrap()
            .push((name.clone(), ctx.scheduled_run_time.with_timezone(&Utc)));
        Ok(json!(null))
    });
    engine
}

/// One node dies at `death` with the job's fire time claimed; two live nodes go on for
/// the lease and the node time-out, and a few seconds more.
fn dies(server: &Server, death: Death, timing: (Duration, Duration)) {
    let ns = random_namespace();
    let started: Started = Arc::default();
    // With nanoseconds, as a trigger started at "now" has; the histories keep whole
    // microseconds.
    let soon = Utc::now() + chrono::Duration::milliseconds(700);
    let fire_time = soon
        .with_nanosecond(soon.nanosecond() / 1000 * 1000 + 789)
        .unwrap();

    let rt_dead = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dead = rt_dead.block_on(async {
        let store = server.open(&ns);
        let history = store.run_history().expect("a store with a run history");
        history.prepare().await.unwrap();
        let dying: Arc<dyn RunHistory> = Arc::new(Dying {
            inner: history.clone(),
            death,
        });
        let dead = node("dead", store, dying, timing, &started);
        dead.start(false).await.unwrap();
        dead.add_job(
            JobSpec::task("work")
                .id("job")
                .trigger_args("interval", json!({"hours": 1}))
                .next_run_time(Some(fire_time.with_timezone(&chrono_tz::UTC)))
                .misfire_grace_time(Some(Duration::from_secs(60)))
                .coalesce(false),
        )
        .await
        .unwrap();
        // Registered (its heartbeat task writes at once).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !history
            .nodes()
            .unwrap()
            .list_nodes()
            .await
            .unwrap()
            .iter()
            .any(|n| n.node == "dead")
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "dead's registration"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wait = (fire_time - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_millis(10)).await;
        // Well within the claim's lease: the test's node time-out is shorter than it.
        let pass = tokio::time::timeout(Duration::from_millis(500), dead.process_jobs()).await;
        assert!(pass.is_err(), "the dying node's pass went past {death:?}");
        dead
    });
    // Killed: its tasks, timers and connections end with its runtime.
    drop(rt_dead);
    std::mem::forget(dead);
    assert!(started.lock().unwrap().is_empty(), "the dead node ran");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut live = Vec::new();
        for name in ["live-1", "live-2"] {
            let store = server.open(&ns);
            let history = store.run_history().unwrap();
            let engine = node(name, store, history, timing, &started);
            engine.start(false).await.unwrap();
            live.push(engine);
        }
        // Past the lease and the node time-out, and a few passes more.
        let (lease, node_timeout) = timing;
        let until = tokio::time::Instant::now() + lease.max(node_timeout) + Duration::from_secs(3);
        while tokio::time::Instant::now() < until {
            for engine in &live {
                engine.process_jobs().await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for engine in &live {
            engine.flush_history(Duration::from_secs(10)).await;
        }
        let store = server.open(&ns);
        let history = store.run_history().unwrap();
        let records = history
            .query_runs(&RunQuery {
                job_id: Some("job".into()),
                ..RunQuery::default()
            })
            .await
            .unwrap();
        let what = format!("{server:?}, {death:?}, lease and node time-out {timing:?}");
        let ran = started.lock().unwrap().clone();
        assert_eq!(
            ran.len(),
            1,
            "{what}: started {ran:?}; records {records:#?}"
        );
        assert_ne!(ran[0].0, "dead", "{what}");
        assert_eq!(
            ran[0].1.timestamp_micros(),
            fire_time.timestamp_micros(),
            "{what}: {ran:?}"
        );
        let theirs: Vec<_> = records.iter().filter(|r| r.node == "dead").collect();
        assert_eq!(theirs.len(), 1, "{what}: {records:#?}");
        assert_eq!(
            (theirs[0].outcome, theirs[0].started_at),
            (RunOutcome::Interrupted, None),
            "{what}: {records:#?}"
        );
        let ours: Vec<_> = records.iter().filter(|r| r.node != "dead").collect();
        assert_eq!(ours.len(), 1, "{what}: {records:#?}");
        assert_eq!(ours[0].outcome, RunOutcome::Success, "{what}: {records:#?}");
        assert_eq!(ours[0].node, ran[0].0, "{what}: {records:#?}");
        // Released to the dead node: the node that reaped it started the fire time.
        // Not released: the job's next claimer did, as a run like any other.
        let message = ours[0].message.as_deref().unwrap_or_default();
        match death {
            Death::BeforeStart => assert!(
                message.contains("released to node dead, which died before starting it"),
                "{what}: {message}"
            ),
            Death::BeforeRelease => assert_eq!(message, "", "{what}"),
        }
        for engine in &live {
            engine.shutdown(true).await.unwrap();
        }
        store.remove_all_jobs().await.unwrap();
        history
            .prune_runs_before(Utc::now() + chrono::Duration::days(1))
            .await
            .unwrap();
        eprintln!("{what}: the fire time ran once, on {}", ran[0].0);
    });
}

/// Each way of dying, reaped before its claim's lease expired and after.
fn each_death(server: &Server) {
    let secs = Duration::from_secs;
    // Reaped (1 s) before the claim's lease (4 s) expires, then reaped (2 s) after
    // the lease (1 s) expired and another node took the job over.
    for timing in [(secs(4), secs(1)), (secs(1), secs(2))] {
        dies(server, Death::BeforeRelease, timing);
    }
    dies(server, Death::BeforeStart, (secs(4), secs(1)));
}

#[test]
fn postgres() {
    let Some(url) = server_url(
        "APS_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
        "a node dying between claim and start, on PostgreSQL",
    ) else {
        return;
    };
    each_death(&Server::Sql(url));
}

#[test]
fn mysql() {
    let Some(url) = server_url(
        "APS_TEST_MYSQL_URL",
        "mysql://root@127.0.0.1:3306/test",
        "a node dying between claim and start, on MySQL/MariaDB",
    ) else {
        return;
    };
    each_death(&Server::Sql(url));
}

#[test]
fn redis() {
    let Some(url) = server_url(
        "APS_TEST_REDIS_URL",
        "redis://127.0.0.1:6379/",
        "a node dying between claim and start, on Redis",
    ) else {
        return;
    };
    each_death(&Server::Redis(url));
}

#[test]
fn zookeeper() {
    let Some(hosts) = server_url(
        "APS_TEST_ZOOKEEPER_URL",
        "127.0.0.1:2181",
        "a node dying between claim and start, on ZooKeeper",
    ) else {
        return;
    };
    each_death(&Server::ZooKeeper(hosts));
}

#[test]
fn mongodb() {
    let Some(url) = server_url(
        "APS_TEST_MONGODB_URL",
        "mongodb://127.0.0.1:27017/?directConnection=true",
        "a node dying between claim and start, on MongoDB",
    ) else {
        return;
    };
    each_death(&Server::MongoDb(url));
}

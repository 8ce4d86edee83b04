//! Four schedulers on one PostgreSQL table with their run history claim a burst of due
//! jobs by partition: once each has read the others' heartbeats, each runs mostly the
//! jobs of the partitions it owns (rendezvous hashing over the four node names), where
//! claims of the whole due head would spread them at random (a quarter each). Every
//! fire time still runs once.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{JobStore, RunHistory, RunQuery};
use apscheduler_engine::{owned_partitions, AsyncScheduler, Engine, HistoryOptions, JobSpec};
use chrono::Utc;
use serde_json::json;
use support::{server_url, Raw, Tables, POSTGRES_ENV};

const NODES: usize = 4;
const JOBS: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_schedulers_each_claim_their_own_partitions_first() {
    let Some(url) = server_url(
        POSTGRES_ENV,
        "four_schedulers_each_claim_their_own_partitions_first",
    ) else {
        return;
    };
    let tables = Tables::new(&url);
    let table = tables.table();
    let names: Vec<String> = (0..NODES).map(|i| format!("part-{i}")).collect();
    let mut engines = Vec::new();
    let mut history: Option<Arc<dyn RunHistory>> = None;
    for name in &names {
        let store = Arc::new(tables.store_on(&table));
        let h = store.run_history().expect("SQL keeps history");
        history.get_or_insert_with(|| h.clone());
        let builder = Engine::builder()
            .jobstore("default", store)
            .scheduler_id(name.clone())
            .run_history(
                h,
                HistoryOptions {
                    node: Some(name.clone()),
                    heartbeat: Duration::from_millis(100),
                    node_timeout: Duration::from_secs(10),
                    cluster_max_instances: false,
                    ..HistoryOptions::default()
                },
            );
        let scheduler = AsyncScheduler::from_builder(builder).unwrap();
        scheduler
            .engine()
            .register_task("noop", |_| Ok(json!(null)));
        scheduler.start(false).await.unwrap();
        engines.push(scheduler);
    }
    let history = history.unwrap();
    let registry = history.nodes().expect("a node registry");
    // Each has read the registry with all four in it (a heartbeat after the last one
    // joined).
    for _ in 0..600 {
        if registry.list_nodes().await.unwrap().len() == NODES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(registry.list_nodes().await.unwrap().len(), NODES);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let at = (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let specs: Vec<JobSpec> = (0..JOBS)
        .map(|i| {
            JobSpec::task("noop")
                .id(format!("burst-{i:05}"))
                .trigger_args("date", json!({"run_date": at}))
                .misfire_grace_time(Some(Duration::from_secs(120)))
        })
        .collect();
    engines[0].engine().add_jobs(specs).await.unwrap();

    let query = RunQuery {
        limit: JOBS * 2,
        ..RunQuery::default()
    };
    let mut runs = Vec::new();
    for _ in 0..600 {
        for e in &engines {
            e.engine().flush_history(Duration::from_secs(5)).await;
        }
        runs = history.query_runs(&query).await.unwrap();
        if runs.len() >= JOBS && runs.iter().all(|r| r.finished_at.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for e in &engines {
        e.shutdown(true).await.unwrap();
    }
    assert_eq!(runs.len(), JOBS, "every fire time ran once");
    let distinct: HashSet<&str> = runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(distinct.len(), JOBS, "a fire time ran twice");

    // Each job's partition, as the store computes it.
    let raw = Raw::connect(&url).await;
    let Raw::Postgres(pool) = &raw else {
        unreachable!()
    };
    let ids: Vec<String> = (0..JOBS).map(|i| format!("burst-{i:05}")).collect();
    let partition: HashMap<String, i32> = sqlx::query_as(
        "SELECT id, (('x' || substr(md5(id), 1, 8))::bit(32)::INTEGER & 1023) \
         FROM UNNEST($1::TEXT[]) AS v(id)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    raw.close().await;
    let owner: HashMap<u32, &str> = names
        .iter()
        .flat_map(|n| {
            owned_partitions(n, &names, 1024)
                .into_iter()
                .map(move |p| (p, n.as_str()))
        })
        .collect();
    let mut own = 0;
    let mut by_node: HashMap<&str, (usize, usize)> = HashMap::new();
    for r in &runs {
        let p = u32::try_from(partition[&r.job_id]).unwrap();
        let mine = owner[&p] == r.node;
        let e = by_node.entry(owner[&p]).or_default();
        e.0 += 1;
        if mine {
            own += 1;
            e.1 += 1;
        }
    }
    let share = own as f64 / JOBS as f64;
    eprintln!("runs on their partition's owner: {own} of {JOBS} ({share:.2}); by owner (jobs, run by it): {by_node:?}");
    // Claims of the whole head would give about a quarter.
    assert!(
        share > 0.5,
        "{own} of {JOBS} ran on their partition's owner"
    );
}

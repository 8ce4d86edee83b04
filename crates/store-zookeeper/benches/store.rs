//! ZooKeeper job store throughput: `cargo bench -p apscheduler-store-zookeeper --bench store`.
//!
//! Needs a ZooKeeper server in `APS_TEST_ZOOKEEPER_URL` (e.g. `127.0.0.1:2181`); prints a
//! notice and measures nothing without it. Works under its own random root path and
//! removes its jobs at the end.
//!
//! - `add_jobs`: one batch of 1,000 jobs (`multi` requests of at most 512 KiB), per job;
//! - `add_job`: 1,000 jobs one call each, per job;
//! - `claim+release`: 2,000 due jobs claimed 1,024 at a time (the engine's batch) and
//!   released with a new run time, per job;
//! - with 100,000 stored jobs (run times spread over a day): `get_next_run_time`, and a
//!   claim when nothing is due.

use std::time::Instant;

use apscheduler_core::{Job, JobStore};
use apscheduler_store_zookeeper::ZooKeeperJobStore;
use apscheduler_testkit::bench::{report, store_throughput, Rounds};
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};

async fn bench(url: &str) {
    let path = format!("/{}", apscheduler_testkit::server::random_namespace());
    let store = ZooKeeperJobStore::builder(url)
        .path(&path)
        .build()
        .expect("store");
    store.start("default").await.expect("connect");
    let rounds = Rounds {
        add_jobs: 10,
        add_job: 5,
        claim_release: 5,
    };
    store_throughput(&store, rounds).await;

    // 100,000 stored jobs, run times spread over a day from 1,000 s on (nothing due).
    let trigger = interval_trigger(60);
    let many: Vec<Job> = (0..100_000)
        .map(|i| {
            sample_job(
                &format!("many-{i:06}"),
                Some(at(1000 + (i as i64 * 86_400) / 100_000)),
                trigger.clone(),
            )
        })
        .collect();
    let start = Instant::now();
    for chunk in many.chunks(1000) {
        store.add_jobs(chunk.to_vec(), false).await.unwrap();
    }
    report(
        "add_jobs (100,000 in batches of 1,000)",
        100_000,
        vec![start.elapsed()],
    );
    let mut samples = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        store.get_next_run_time().await.unwrap();
        samples.push(start.elapsed());
    }
    report("get_next_run_time, 100,000 jobs (one call)", 1, samples);
    let mut samples = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let acquired = store
            .acquire_due_jobs("bench", utc(500), 1024, LEASE)
            .await
            .unwrap();
        assert!(acquired.jobs.is_empty());
        samples.push(start.elapsed());
    }
    report("claim with nothing due, 100,000 jobs", 1, samples);

    store.remove_all_jobs().await.unwrap();
    store.shutdown().await.unwrap();
}

fn main() {
    // `cargo test --benches` runs this with `--bench`-less arguments: measure only
    // when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Ok(url) = std::env::var("APS_TEST_ZOOKEEPER_URL") else {
        println!("note: set APS_TEST_ZOOKEEPER_URL (e.g. 127.0.0.1:2181) to run the ZooKeeper store bench");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench(&url));
}

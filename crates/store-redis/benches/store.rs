//! Redis job store throughput: `cargo bench -p apscheduler-store-redis --bench store`.
//!
//! Needs a Redis server in `APS_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379/`); prints
//! a notice and measures nothing without it. Works under its own random key prefix and
//! deletes its keys at the end.
//!
//! - `add_jobs`: one batch of 1,000 jobs (one script call), per job;
//! - `add_job`: 1,000 jobs one call each, per job;
//! - `claim+release`: 2,000 due jobs claimed 1,024 at a time (the engine's batch) and
//!   released with a new run time, per job.

use apscheduler_core::JobStore;
use apscheduler_store_redis::RedisJobStore;
use apscheduler_testkit::bench::{store_throughput, Rounds};

async fn bench(url: &str) {
    let prefix = format!("aps-bench.{}.", uuid::Uuid::new_v4().simple());
    let store = RedisJobStore::builder(url)
        .prefix(&prefix)
        .build()
        .expect("store");
    store.start("default").await.expect("connect");
    let rounds = Rounds {
        add_jobs: 30,
        add_job: 5,
        claim_release: 15,
    };
    store_throughput(&store, rounds).await;
    store.shutdown().await.unwrap();
}

fn main() {
    // `cargo test --benches` runs this with `--bench`-less arguments: measure only
    // when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Ok(url) = std::env::var("APS_TEST_REDIS_URL") else {
        println!("note: set APS_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/) to run the Redis store bench");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench(&url));
}

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

use std::time::{Duration, Instant};

use apscheduler_core::{Job, JobRelease, JobStore};
use apscheduler_store_zookeeper::ZooKeeperJobStore;
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};

fn jobs(n: usize) -> Vec<Job> {
    let trigger = interval_trigger(60);
    (0..n)
        .map(|i| {
            sample_job(
                &format!("job-{i:05}"),
                Some(at(i as i64 % 100)),
                trigger.clone(),
            )
        })
        .collect()
}

fn report(what: &str, jobs: usize, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let per_job = |d: Duration| d.as_secs_f64() * 1e6 / jobs as f64;
    let median = samples[samples.len() / 2];
    println!(
        "{what:<44} per job: median {:>7.2} µs, best {:>7.2} µs  (whole run: median {:>8.2} ms, {} samples)",
        per_job(median),
        per_job(samples[0]),
        median.as_secs_f64() * 1e3,
        samples.len()
    );
}

async fn bench(url: &str) {
    let path = format!("/{}", apscheduler_testkit::server::random_namespace());
    let store = ZooKeeperJobStore::builder(url)
        .path(&path)
        .build()
        .expect("store");
    store.start("default").await.expect("connect");

    // add_jobs: 1,000 in one batch.
    let batch = jobs(1000);
    let mut samples = Vec::new();
    for _ in 0..10 {
        store.remove_all_jobs().await.unwrap();
        let start = Instant::now();
        store.add_jobs(batch.clone(), false).await.unwrap();
        samples.push(start.elapsed());
    }
    report("add_jobs (batch of 1,000)", 1000, samples);

    // add_job: 1,000 calls.
    let mut samples = Vec::new();
    for _ in 0..5 {
        store.remove_all_jobs().await.unwrap();
        let start = Instant::now();
        for job in batch.clone() {
            store.add_job(job, false).await.unwrap();
        }
        samples.push(start.elapsed());
    }
    report("add_job (1,000 single calls)", 1000, samples);

    // claim + release of 2,000 due jobs.
    let due = jobs(2000);
    let mut samples = Vec::new();
    let mut claim_only = Vec::new();
    for _ in 0..5 {
        store.remove_all_jobs().await.unwrap();
        store.add_jobs(due.clone(), false).await.unwrap();
        let start = Instant::now();
        let mut claiming = Duration::ZERO;
        let mut total = 0;
        loop {
            let t = Instant::now();
            let acquired = store
                .acquire_due_jobs("bench", utc(1000), 1024, LEASE)
                .await
                .unwrap();
            claiming += t.elapsed();
            if acquired.jobs.is_empty() {
                break;
            }
            total += acquired.jobs.len();
            let releases = acquired
                .jobs
                .into_iter()
                .map(|mut job| {
                    job.next_run_time = Some(at(1_000_000));
                    JobRelease::Update(job)
                })
                .collect();
            store.release_jobs("bench", releases).await.unwrap();
        }
        assert_eq!(total, 2000, "every due job is claimed once");
        samples.push(start.elapsed());
        claim_only.push(claiming);
    }
    report("claim+release (2,000 due, batches of 1,024)", 2000, samples);
    report("  of which claim (acquire_due_jobs)", 2000, claim_only);

    let mut samples = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        store.get_next_run_time().await.unwrap();
        samples.push(start.elapsed());
    }
    report("get_next_run_time (one call)", 1, samples);

    // 100,000 stored jobs, run times spread over a day from 1,000 s on (nothing due).
    store.remove_all_jobs().await.unwrap();
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

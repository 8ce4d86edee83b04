//! Rough figures against the server at `APS_TEST_MONGODB_URL` (ignored by default):
//!
//! ```text
//! APS_TEST_MONGODB_URL=mongodb://127.0.0.1:27117/?directConnection=true \
//!     cargo test -p apscheduler-store-mongodb --release --test perf -- --ignored --nocapture
//! ```

mod common;

use std::time::{Duration, Instant};

use apscheduler_core::{Job, JobRelease, JobStore};
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};

fn jobs(prefix: &str, n: usize) -> Vec<Job> {
    (0..n)
        .map(|i| {
            sample_job(
                &format!("{prefix}-{i:05}"),
                Some(at(i as i64 % 60)),
                interval_trigger(60),
            )
        })
        .collect()
}

fn per_job(total: Duration, n: usize) -> String {
    format!(
        "{total:.2?} total, {:.1} µs/job",
        total.as_secs_f64() * 1e6 / n as f64
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; needs APS_TEST_MONGODB_URL"]
async fn figures() {
    let Some(db) = common::TestDb::new("figures") else {
        return;
    };
    let store = db.store_on("perf");
    store.start("default").await.unwrap();

    // add_jobs: 1,000 jobs in one batch.
    let batch = jobs("add", 1000);
    let started = Instant::now();
    store.add_jobs(batch, false).await.unwrap();
    println!(
        "add_jobs, 1,000 jobs in one batch: {}",
        per_job(started.elapsed(), 1000)
    );

    let batch = jobs("add", 1000);
    let started = Instant::now();
    store.add_jobs(batch, true).await.unwrap();
    println!(
        "add_jobs (replace_existing), 1,000 jobs: {}",
        per_job(started.elapsed(), 1000)
    );
    store.remove_all_jobs().await.unwrap();

    // add_job one by one, for comparison.
    let started = Instant::now();
    for job in jobs("one", 200) {
        store.add_job(job, false).await.unwrap();
    }
    println!(
        "add_job one by one, 200 jobs: {}",
        per_job(started.elapsed(), 200)
    );
    store.remove_all_jobs().await.unwrap();

    // 2,000 due jobs: claim (batches of `limit`) and release each batch with a new
    // run time, as a scheduler does.
    for limit in [100, 2000] {
        store.add_jobs(jobs("due", 2000), false).await.unwrap();
        let (mut claiming, mut releasing, mut claimed) = (Duration::ZERO, Duration::ZERO, 0);
        let total = Instant::now();
        loop {
            let started = Instant::now();
            let acquired = store
                .acquire_due_jobs("perf", utc(100), limit, LEASE)
                .await
                .unwrap();
            claiming += started.elapsed();
            if acquired.jobs.is_empty() {
                break;
            }
            claimed += acquired.jobs.len();
            let releases = acquired
                .jobs
                .into_iter()
                .map(|job| {
                    let next = job.next_run_time.map(|t| t + chrono::Duration::hours(1));
                    JobRelease::Update(Job {
                        next_run_time: next,
                        ..job
                    })
                })
                .collect();
            let started = Instant::now();
            store.release_jobs("perf", releases).await.unwrap();
            releasing += started.elapsed();
        }
        let total = total.elapsed();
        assert_eq!(claimed, 2000);
        println!(
            "claim+release of 2,000 due jobs (limit {limit}): {}; claim {}; release {}",
            per_job(total, 2000),
            per_job(claiming, 2000),
            per_job(releasing, 2000)
        );
        let started = Instant::now();
        let next = store.get_next_run_time().await.unwrap();
        println!(
            "get_next_run_time with 2,000 jobs: {:.2?}",
            started.elapsed()
        );
        assert!(next.is_some());
        let started = Instant::now();
        assert_eq!(store.get_all_jobs().await.unwrap().len(), 2000);
        println!("get_all_jobs of 2,000 jobs: {:.2?}", started.elapsed());
        store.remove_all_jobs().await.unwrap();
    }
    store.shutdown().await.unwrap();
}

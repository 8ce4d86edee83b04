//! The memory store at scale: a million jobs, the due claim of the first 100, and the
//! resident memory per job.

use std::time::Duration;

use apscheduler_core::{Job, JobRelease, JobStore};
use apscheduler_store_memory::MemoryJobStore;
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc};

/// Jobs in the store, one every second from the base instant: a million in release
/// builds (`cargo test --release`, about a second); 200,000 in debug builds, where a
/// million takes 7 to 13 s.
const JOBS: i64 = if cfg!(debug_assertions) {
    200_000
} else {
    1_000_000
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Fills a store with `count` interval jobs, added in an order unrelated to their run
/// times (so the index really sorts). The jobs share the template's trigger, task, name
/// and executor, as jobs built from one `add_job` call site do.
async fn fill(store: &MemoryJobStore, count: i64) {
    let template = sample_job("template", None, interval_trigger(3600));
    let base = at(0);
    for i in 0..count {
        let n = (i * 7_919) % count;
        let job = Job {
            id: format!("job-{n:07}").into(),
            next_run_time: Some(base + chrono::Duration::seconds(n)),
            ..template.clone()
        };
        store.add_job(job, false).await.unwrap();
    }
}

#[test]
fn many_jobs_claim_the_first_hundred() {
    runtime().block_on(async {
        let store = MemoryJobStore::new();
        fill(&store, JOBS).await;
        assert_eq!(store.len(), JOBS as usize);
        assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(0)));

        // Everything is due; the claim takes the first 100 by run time.
        let now = utc(JOBS);
        let lease = Duration::from_secs(60);
        let acquired = store.acquire_due_jobs("s1", now, 100, lease).await.unwrap();
        let ids: Vec<String> = acquired.jobs.iter().map(|j| j.id.to_string()).collect();
        let expected: Vec<String> = (0..100).map(|n| format!("job-{n:07}")).collect();
        assert_eq!(ids, expected);
        assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(100)));

        let next = store.acquire_due_jobs("s2", now, 100, lease).await.unwrap();
        assert_eq!(&*next.jobs[0].id, "job-0000100");
        assert_eq!(&*next.jobs[99].id, "job-0000199");

        let releases: Vec<JobRelease> = acquired
            .jobs
            .into_iter()
            .map(|job| {
                JobRelease::Update(Job {
                    next_run_time: Some(at(JOBS + 10)),
                    ..job
                })
            })
            .collect();
        store.release_jobs("s1", releases).await.unwrap();
        assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(200)));

        let middle = format!("job-{:07}", JOBS / 2);
        store.remove_job(&middle).await.unwrap();
        assert!(store.lookup_job(&middle).await.unwrap().is_none());
        assert_eq!(store.len(), JOBS as usize - 1);
        let last = format!("job-{:07}", JOBS - 1);
        assert!(store.lookup_job(&last).await.unwrap().is_some());
    });
}

/// The process's resident set size in bytes (Linux only).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Prints the resident memory a million interval jobs cost in the store (jobs
/// included). Run alone: `cargo test --release -p apscheduler-store-memory --test scale
/// -- --ignored --nocapture`.
#[test]
#[ignore = "measurement; run alone in release"]
fn resident_memory_per_job() {
    const COUNT: i64 = 1_000_000;
    runtime().block_on(async {
        let Some(before) = resident_bytes() else {
            return;
        };
        let store = MemoryJobStore::new();
        fill(&store, COUNT).await;
        let after = resident_bytes().unwrap_or(before);
        let per_job = after.saturating_sub(before) / COUNT as u64;
        eprintln!("{COUNT} interval jobs: {per_job} bytes of resident memory per job");
        assert_eq!(store.len(), COUNT as usize);
    });
}

//! The job store throughput benchmark every store's `benches/store.rs` runs, through
//! the store's own API (`JobStore::add_jobs`, `add_job`, `acquire_due_jobs` +
//! `release_jobs`, `get_next_run_time`): the store's inner path, not what a scheduler's
//! `add_job` costs.

use std::time::{Duration, Instant};

use apscheduler_core::{Job, JobRelease, JobStore};

use crate::store::{at, interval_trigger, sample_job, utc, LEASE};

/// How often each measurement is repeated (the median is reported).
#[derive(Debug, Clone, Copy)]
pub struct Rounds {
    /// `add_jobs` of one batch of 1,000.
    pub add_jobs: usize,
    /// 1,000 single `add_job` calls.
    pub add_job: usize,
    /// Claim and release 2,000 due jobs.
    pub claim_release: usize,
}

/// `n` interval jobs `job-00000`, ... due within the first 100 seconds.
pub fn jobs(n: usize) -> Vec<Job> {
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

/// Prints one line: the median and best of `samples`, per job.
pub fn report(what: &str, jobs: usize, mut samples: Vec<Duration>) {
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

/// Measures and prints, on a started, empty store: `add_jobs` (batches of 1,000),
/// `add_job` (1,000 single calls), claim + release of 2,000 due jobs in batches of 1,024
/// (the engine's batch), and `get_next_run_time`. Leaves the store empty.
///
/// # Panics
/// When a store call fails, or a due job is not claimed exactly once.
pub async fn store_throughput(store: &dyn JobStore, rounds: Rounds) {
    let batch = jobs(1000);
    let mut samples = Vec::new();
    for _ in 0..rounds.add_jobs {
        store.remove_all_jobs().await.unwrap();
        let start = Instant::now();
        store.add_jobs(batch.clone(), false).await.unwrap();
        samples.push(start.elapsed());
    }
    report("add_jobs (batch of 1,000)", 1000, samples);

    let mut samples = Vec::new();
    for _ in 0..rounds.add_job {
        store.remove_all_jobs().await.unwrap();
        let start = Instant::now();
        for job in batch.clone() {
            store.add_job(job, false).await.unwrap();
        }
        samples.push(start.elapsed());
    }
    report("add_job (1,000 single calls)", 1000, samples);

    let due = jobs(2000);
    let mut samples = Vec::new();
    let mut claim_only = Vec::new();
    for _ in 0..rounds.claim_release {
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
    store.remove_all_jobs().await.unwrap();
}

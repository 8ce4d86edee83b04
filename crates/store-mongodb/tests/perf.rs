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

/// The run history at 100,000 records (1,000 jobs × 100 runs, written in batches of
/// 1,000 with `record_runs`), then 1,000 runs starting and ending (`record_runs` on
/// its insert and its replacing path), `query_runs` with a limit of 100 (without a
/// filter, by job, by outcome) and both prunings. The collection is dropped at the
/// end. Run it with
///
/// ```text
/// APS_TEST_MONGODB_URL=mongodb://127.0.0.1:27117/?directConnection=true \
///     cargo test -p apscheduler-store-mongodb --release --test perf history_figures \
///     -- --ignored --nocapture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; needs APS_TEST_MONGODB_URL"]
async fn history_figures() {
    use apscheduler_core::{RunHistory, RunOutcome, RunQuery, RunRecord};

    const JOBS: usize = 1000;
    const RUNS: usize = 100;
    let Some(db) = common::TestDb::new("history_figures") else {
        return;
    };
    let store = db.store_on("perf_history");
    let history = store.history();
    history.prepare().await.unwrap();

    let t0 = apscheduler_testkit::history::base();
    let record = |job: usize, run: usize| {
        let at =
            t0 + chrono::Duration::minutes(run as i64) + chrono::Duration::milliseconds(job as i64);
        let outcome = match (job + run) % 50 {
            0 => RunOutcome::Missed,
            1..=4 => RunOutcome::Failure,
            _ => RunOutcome::Success,
        };
        RunRecord {
            run_id: format!("{job:04}-{run:03}-{:08x}", (job * 7919 + run) as u32),
            job_id: format!("job-{job:04}"),
            scheduled_at: at,
            started_at: Some(at + chrono::Duration::microseconds(1500)),
            finished_at: Some(at + chrono::Duration::milliseconds(250)),
            outcome,
            exit_code: Some(i32::from(outcome != RunOutcome::Success)),
            http_status: None,
            output: format!("run {run} of job {job}: done\n"),
            message: (outcome != RunOutcome::Success).then(|| "exit status 1".to_owned()),
            node: format!("node-{}", job % 4),
            attempt: 1,
            backfill: false,
            due_at: None,
        }
    };

    // Batch n holds run n of every job: 1,000 jobs firing each minute.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for run in 0..RUNS {
        let batch: Vec<RunRecord> = (0..JOBS).map(|job| record(job, run)).collect();
        let t = Instant::now();
        history.record_runs(&batch).await.unwrap();
        slowest = slowest.max(t.elapsed());
    }
    let total = started.elapsed();
    println!(
        "record_runs, {} records in batches of {JOBS}: {total:.2?} ({:.1} µs/record; slowest batch {slowest:.2?})",
        JOBS * RUNS,
        total.as_secs_f64() * 1e6 / (JOBS * RUNS) as f64
    );
    // What a scheduler writes: 1,000 runs start (new `running` records: the insert
    // path), then end (the same run ids, ended: the replacing path).
    let mut batch: Vec<RunRecord> = (0..JOBS).map(|job| record(job, RUNS)).collect();
    for r in &mut batch {
        r.outcome = RunOutcome::Running;
        r.finished_at = None;
    }
    let t = Instant::now();
    history.record_runs(&batch).await.unwrap();
    println!(
        "record_runs, {JOBS} new running records: {:.2?}",
        t.elapsed()
    );
    let batch: Vec<RunRecord> = (0..JOBS).map(|job| record(job, RUNS)).collect();
    let t = Instant::now();
    history.record_runs(&batch).await.unwrap();
    println!(
        "record_runs, the same {JOBS} records ended (replacing): {:.2?}",
        t.elapsed()
    );

    let queries = [
        ("no filter", RunQuery::default()),
        (
            "by job",
            RunQuery {
                job_id: Some("job-0500".into()),
                ..RunQuery::default()
            },
        ),
        (
            "by outcome (failure, 8 %)",
            RunQuery {
                outcome: Some(RunOutcome::Failure),
                ..RunQuery::default()
            },
        ),
        (
            "by outcome (missed, 2 %)",
            RunQuery {
                outcome: Some(RunOutcome::Missed),
                ..RunQuery::default()
            },
        ),
    ];
    for (what, query) in &queries {
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..5 {
            let t = Instant::now();
            found = history.query_runs(query).await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        assert_eq!(found, 100, "{what}");
        println!(
            "query_runs (limit 100) {what}: median {:.2?} (min {:.2?}, max {:.2?}) over 5",
            times[2], times[0], times[4]
        );
    }
    let t = Instant::now();
    let pruned = history.prune_job_runs("job-0500", 10).await.unwrap();
    println!(
        "prune_job_runs (keep 10 of 101): {pruned} removed in {:.2?}",
        t.elapsed()
    );
    let t = Instant::now();
    let pruned = history
        .prune_runs_before(t0 + chrono::Duration::minutes(10))
        .await
        .unwrap();
    println!(
        "prune_runs_before (the first 10 minutes): {pruned} removed in {:.2?}",
        t.elapsed()
    );

    db.collection("perf_history_runs")
        .await
        .drop()
        .await
        .unwrap();
    store.shutdown().await.unwrap();
}

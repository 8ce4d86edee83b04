//! Process pool figures (workers re-execute this binary, hence `harness = false`):
//!
//! 1. 2,000 trivial jobs due at once through a pool of 2: the time from the first
//!    `submit` until every outcome is reported (cold: workers started on demand; warm:
//!    already running). APScheduler's `ProcessPoolExecutor(2)` takes about 0.36 s.
//! 2. A CPU-bound task (~200 ms of integer mixing) × 8 on a pool of 1 and a pool of 2.
//!
//! Run with `cargo bench -p apscheduler-executor-process --bench throughput`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apscheduler_core::serde_json::json;
use apscheduler_core::Executor;
use apscheduler_executor_process::ProcessPoolExecutor;
use apscheduler_testkit::executor::{TaskSet, NOOP};
use common::{Counter, SPIN};

/// Submits `n` runs of `task` (with `args`) to a started pool and waits for them all.
fn submit_all(
    pool: &ProcessPoolExecutor,
    counter: &Counter,
    done_before: usize,
    n: usize,
    task: &str,
    args: &[apscheduler_core::serde_json::Value],
) -> Duration {
    let tasks = TaskSet::new();
    let mut template = tasks.job_run("job", NOOP);
    template.task_name = Some(task.into());
    template.args = Arc::new(args.to_vec());
    let runs: Vec<_> = (0..n)
        .map(|i| {
            let mut run = template.clone();
            run.job_id = format!("job-{i}").into();
            run
        })
        .collect();
    let started = Instant::now();
    for run in runs {
        pool.submit(run).expect("submit");
    }
    let counts = counter.wait_finished(done_before + n, Duration::from_secs(120));
    let took = started.elapsed();
    assert_eq!(counts.failed, 0, "no run may fail");
    took
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn trivial_jobs() {
    const JOBS: usize = 2_000;
    const ROUNDS: usize = 7;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..ROUNDS {
        let counter = Counter::new();
        let pool = ProcessPoolExecutor::new(2);
        pool.start(counter.clone()).expect("start");
        cold.push(submit_all(&pool, &counter, 0, JOBS, NOOP, &[]));
        warm.push(submit_all(&pool, &counter, JOBS, JOBS, NOOP, &[]));
        pool.shutdown(true);
    }
    let show = |xs: &[Duration]| {
        xs.iter()
            .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("{JOBS} trivial jobs, pool of 2, until every outcome is reported (ms):");
    println!(
        "  cold (workers started on demand): median {:.1} ms   [{}]",
        median(cold.clone()).as_secs_f64() * 1e3,
        show(&cold)
    );
    println!(
        "  warm (workers already running):   median {:.1} ms   [{}]",
        median(warm.clone()).as_secs_f64() * 1e3,
        show(&warm)
    );
    let per_job = median(warm).as_secs_f64() * 1e6 / JOBS as f64;
    println!("  = {per_job:.1} µs per job (APScheduler ProcessPoolExecutor(2): ~180 µs)");
}

fn cpu_bound() {
    // Calibrate ~200 ms of work in this process.
    let probe = 2_000_000u64;
    let started = Instant::now();
    common::spin(probe);
    let per_round = started.elapsed().as_secs_f64() / probe as f64;
    let rounds = (0.2 / per_round) as u64;
    let started = Instant::now();
    common::spin(rounds);
    println!(
        "CPU-bound task: {rounds} rounds, {:.0} ms in-process",
        started.elapsed().as_secs_f64() * 1e3
    );

    let mut results = Vec::new();
    for workers in [1, 2] {
        let counter = Counter::new();
        let pool = ProcessPoolExecutor::new(workers);
        pool.start(counter.clone()).expect("start");
        // Start the workers first, so only the work is timed.
        submit_all(&pool, &counter, 0, workers, NOOP, &[]);
        let cpu_before = children_cpu_seconds();
        let took = submit_all(&pool, &counter, workers, 8, SPIN, &[json!(rounds)]);
        // Reaped workers' CPU time shows in this process's `cutime`.
        pool.shutdown(true);
        let cpu = children_cpu_seconds() - cpu_before;
        println!(
            "  8 jobs on a pool of {workers}: {:.0} ms wall, {:.0} ms worker CPU \
             (parallelism {:.2})",
            took.as_secs_f64() * 1e3,
            cpu * 1e3,
            cpu / took.as_secs_f64()
        );
        results.push(took);
    }
    println!(
        "  pool of 2 / pool of 1 = {:.2} (0.50 = both cores fully used)",
        results[1].as_secs_f64() / results[0].as_secs_f64()
    );
}

/// The user + system CPU time of this process's reaped children (`/proc/self/stat`
/// fields `cutime` and `cstime`, at the usual 100 ticks per second).
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rfind(')')
        .map(|i| stat[i + 1..].split_whitespace().collect())
        .unwrap_or_default();
    // After the comm: state is field 3, so cutime (16) and cstime (17) sit at 13, 14.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(13) + ticks(14)) / 100.0
}

fn main() {
    let registry = common::registry();
    apscheduler_executor_process::worker_main(&registry);

    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` / `cargo test --benches` probes.
        return;
    }
    // `throughput trivial` or `throughput cpu` runs one part.
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!(
        "available parallelism: {:?}",
        std::thread::available_parallelism()
    );
    if only.as_deref().is_none_or(|o| o == "trivial") {
        trivial_jobs();
    }
    if only.as_deref().is_none_or(|o| o == "cpu") {
        cpu_bound();
    }
}

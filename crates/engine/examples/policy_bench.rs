//! `policy_bench`: what run policies cost, and how fast a backfill plans and runs.
//!
//! ```text
//! cargo run --release -p apscheduler-engine --example policy_bench [ROUNDS]
//! policy_bench cost default|policy     (one round of add and burst, for bench/policy-bench.sh)
//! ```
//!
//! Through the public API (`AsyncScheduler`, the default memory store), every figure
//! the median of ROUNDS (default 5) rounds, each in a fresh scheduler:
//!
//! - **add**: 100,000 interval jobs of one hour added before start, µs per add, jobs
//!   with the default policy and jobs with a policy (catch-up window, retry, overlap).
//! - **burst**: 10,000 date jobs due at the same instant, run inline by one pass under
//!   a manual clock: ms for the pass, default policy and with a policy.
//! - **plan**: a dry-run backfill of 100,000 fire times (an every-minute job, about 69
//!   days), ms, with a history holding 10,000 successful runs in the range.
//! - **rate**: a backfill of 300 fire times at 100/s and of 2,000 at 1,000/s (no-op
//!   task, inline): the achieved rate, from the call to the last run's end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apscheduler_core::{
    Catchup, CatchupMode, ManualClock, Overlap, RetryPolicy, RunHistory, RunOutcome, RunPolicy,
    RunRecord,
};
use apscheduler_engine::{
    AsyncScheduler, BackfillRequest, Engine, HistoryOptions, InlineExecutor, JobSpec,
};
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn policy() -> RunPolicy {
    RunPolicy {
        retry: Some(RetryPolicy::new(3, Duration::from_secs(10))),
        overlap: Overlap::BufferOne,
        catchup: Some(Catchup {
            window: Duration::from_secs(3 * 3600),
            mode: CatchupMode::All,
        }),
        ..RunPolicy::default()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn range(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.3}-{max:.3}")
}

/// µs per add of 100,000 interval jobs before start.
async fn add(with_policy: bool) -> f64 {
    let scheduler = AsyncScheduler::from_builder(Engine::builder()).unwrap();
    scheduler.register_task("noop", |_| Ok(json!(null)));
    let spec = |i: usize| {
        let spec = JobSpec::task("noop")
            .id(format!("job-{i}"))
            .trigger_args("interval", json!({"hours": 1}));
        if with_policy {
            spec.policy(policy())
        } else {
            spec
        }
    };
    let began = Instant::now();
    for i in 0..100_000 {
        scheduler.add_job(spec(i)).await.unwrap();
    }
    began.elapsed().as_secs_f64() * 1e6 / 100_000.0
}

/// ms for one pass running 10,000 date jobs due at once, inline.
async fn burst(with_policy: bool) -> f64 {
    let clock = Arc::new(ManualClock::new(t0() - chrono::Duration::seconds(1)));
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .build();
    let ran = Arc::new(AtomicUsize::new(0));
    let count = ran.clone();
    engine.register_task("noop", move |_| {
        count.fetch_add(1, Ordering::Relaxed);
        Ok(json!(null))
    });
    engine.start(false).await.unwrap();
    for i in 0..10_000 {
        let spec = JobSpec::task("noop")
            .id(format!("job-{i}"))
            .trigger_args("date", json!({"run_date": t0().to_rfc3339()}));
        let spec = if with_policy {
            spec.policy(policy())
        } else {
            spec
        };
        engine.add_job(spec).await.unwrap();
    }
    clock.set(t0());
    let began = Instant::now();
    engine.process_jobs().await;
    let took = began.elapsed().as_secs_f64() * 1e3;
    assert_eq!(ran.load(Ordering::Relaxed), 10_000);
    engine.shutdown(false).await.unwrap();
    took
}

async fn with_history() -> (AsyncScheduler, Arc<MemoryRunHistory>, Arc<AtomicUsize>) {
    let history = Arc::new(MemoryRunHistory::new());
    let engine = Engine::builder()
        .clock(Arc::new(ManualClock::new(
            t0() + chrono::Duration::days(100),
        )))
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .run_history(history.clone(), HistoryOptions::default())
        .build();
    let ended = Arc::new(AtomicUsize::new(0));
    let count = ended.clone();
    engine.register_task("noop", move |_| {
        count.fetch_add(1, Ordering::Relaxed);
        Ok(json!(null))
    });
    engine.start(false).await.unwrap();
    let scheduler = AsyncScheduler::from_engine(engine).unwrap();
    scheduler
        .add_job(
            JobSpec::task("noop")
                .id("minutely")
                .trigger_args("cron", json!({"minute": "*"})),
        )
        .await
        .unwrap();
    (scheduler, history, ended)
}

/// ms to plan (dry run) 100,000 fire times, 10,000 of them already succeeded.
async fn plan() -> f64 {
    let (scheduler, history, _) = with_history().await;
    let records: Vec<RunRecord> = (0..10_000)
        .map(|i| {
            let t = t0() + chrono::Duration::minutes(i * 10);
            let mut r = RunRecord::pending(format!("r{i}"), "minutely", t, "node");
            r.outcome = RunOutcome::Success;
            r.started_at = Some(t);
            r.finished_at = Some(t);
            r
        })
        .collect();
    history.record_runs(&records).await.unwrap();
    let request = BackfillRequest {
        dry_run: true,
        force: true,
        ..BackfillRequest::new(t0(), t0() + chrono::Duration::minutes(100_000))
    };
    let began = Instant::now();
    let report = scheduler.backfill("minutely", &request).await.unwrap();
    let took = began.elapsed().as_secs_f64() * 1e3;
    assert_eq!(
        report.to_run.len() + report.already_succeeded.len(),
        100_000
    );
    assert_eq!(report.already_succeeded.len(), 10_000);
    took
}

/// Runs per second achieved backfilling `n` fire times at `rate`.
async fn rate(n: i64, rate: f64) -> f64 {
    let (scheduler, _, ended) = with_history().await;
    let request = BackfillRequest {
        rate_per_sec: rate,
        ..BackfillRequest::new(t0(), t0() + chrono::Duration::minutes(n))
    };
    let began = Instant::now();
    scheduler.backfill("minutely", &request).await.unwrap();
    while ended.load(Ordering::Relaxed) < n as usize {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // n runs at `rate` span (n - 1) intervals: the first starts at once.
    (n - 1) as f64 / began.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `policy_bench cost default|policy`: one round of add and burst in this process,
    // as `bench/policy-bench.sh` compares builds.
    if std::env::args().nth(1).as_deref() == Some("cost") {
        let with = std::env::args().nth(2).as_deref() == Some("policy");
        let a = add(with).await;
        let b = burst(with).await;
        println!("add {a:.3} burst {b:.3}");
        return;
    }
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("ROUNDS: a number"))
        .unwrap_or(5);
    let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();
    let mut measure = |name, v: Vec<f64>| rows.push((name, v));
    let (mut a0, mut a1, mut b0, mut b1, mut p, mut r1, mut r2) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        // Interleaved, each first every other round, so that drift on a shared machine
        // and the allocator's state touch both alike.
        let first = round % 2 == 1;
        for with in [first, !first] {
            let (a, b) = if with {
                (&mut a1, &mut b1)
            } else {
                (&mut a0, &mut b0)
            };
            a.push(add(with).await);
            b.push(burst(with).await);
        }
        p.push(plan().await);
        r1.push(rate(300, 100.0).await);
        r2.push(rate(2000, 1000.0).await);
    }
    measure(
        "add 100,000 interval jobs before start, default policy: µs per add",
        a0,
    );
    measure(
        "add 100,000 interval jobs before start, with a policy: µs per add",
        a1,
    );
    measure(
        "10,000 date jobs due at once, one inline pass, default policy: ms",
        b0,
    );
    measure(
        "10,000 date jobs due at once, one inline pass, with a policy: ms",
        b1,
    );
    measure(
        "dry-run backfill of 100,000 fire times (10,000 succeeded): ms",
        p,
    );
    measure("backfill of 300 fire times at 100/s: runs/s achieved", r1);
    measure(
        "backfill of 2,000 fire times at 1,000/s: runs/s achieved",
        r2,
    );
    println!("| measure | median | range ({rounds} rounds) |");
    println!("|---|---:|---|");
    for (name, v) in rows {
        let r = range(&v);
        println!("| {name} | {:.3} | {r} |", median(v));
    }
}

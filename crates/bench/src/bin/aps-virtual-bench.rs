//! `aps-virtual-bench`: a year of a once-a-minute cron job on virtual time, through what
//! a user's test calls: `AsyncScheduler` (real main loop, memory store, async executor)
//! on `VirtualClock` in a tokio runtime whose time is paused. Beside it, in the same
//! run, the peer (`tokio-cron-scheduler`, the same cron job on the same paused runtime)
//! for one virtual day: it reads the system clock, so paused time does not move its
//! schedule.
//!
//! ```text
//! aps-virtual-bench [ROUNDS]     (default 5)
//! ```
//! A third line steps the engine by hand instead (`Engine::process_jobs` on a
//! `ManualClock`, the run inline in the pass), as docs/scheduler.md shows.
//!
//! Prints per round the wall time, the CPU time and the runs of each; the figures in
//! docs/PERFORMANCE.md come from a release build.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apscheduler_core::{Clock, VirtualClock};
use apscheduler_engine::{AsyncScheduler, Engine, JobSpec};
use chrono::{DateTime, Utc};
use serde_json::json;

// The CPU-time helper of `aps-bench` (this binary uses only it).
#[allow(dead_code)]
#[path = "../measure.rs"]
mod measure;

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn paused_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
}

/// Runs of a once-a-minute cron job over `span` of virtual time, through `AsyncScheduler`.
async fn ours(span: Duration) -> Result<usize, Box<dyn std::error::Error>> {
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse()?;
    let clock = Arc::new(VirtualClock::starting_at(start));
    let scheduler =
        AsyncScheduler::from_builder(Engine::builder().clock(clock).timezone(chrono_tz::UTC))?;
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    scheduler.register_async_task("tick", move |_ctx| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(json!(null))
        }
    });
    scheduler
        .add_job(JobSpec::task("tick").trigger_args("cron", json!({"minute": "*"})))
        .await?;
    scheduler.start(false).await?;
    // Half a minute short of the span: the last fire time is inside it.
    tokio::time::sleep(span - Duration::from_secs(30)).await;
    scheduler.shutdown(true).await?;
    Ok(runs.load(Ordering::Relaxed))
}

/// Runs of a once-a-minute cron job over `span`, stepped by hand: `Engine::process_jobs`
/// on a `ManualClock` moved by each pass's wait, the run inline in the pass.
async fn stepped(span: Duration) -> Result<usize, Box<dyn std::error::Error>> {
    use apscheduler_core::ManualClock;
    use apscheduler_engine::InlineExecutor;
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse()?;
    let end = start + chrono::Duration::from_std(span)?;
    let clock = Arc::new(ManualClock::new(start));
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    engine.register_task("tick", move |_ctx| {
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(json!(null))
    });
    engine
        .add_job(JobSpec::task("tick").trigger_args("cron", json!({"minute": "*"})))
        .await?;
    engine.start(false).await?;
    while let Some(wait) = engine.process_jobs().await {
        let next = clock.now() + chrono::Duration::from_std(wait)?;
        if next >= end {
            break;
        }
        clock.set(next);
    }
    engine.shutdown(true).await?;
    Ok(runs.load(Ordering::Relaxed))
}

/// Runs of the peer's once-a-minute cron job over `span` of virtual time.
async fn peer(span: Duration) -> Result<usize, Box<dyn std::error::Error>> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let sched = JobScheduler::new().await?;
    sched
        .add(Job::new_async("0 * * * * *", move |_id, _sched| {
            let counter = counter.clone();
            Box::pin(async move {
                counter.fetch_add(1, Ordering::Relaxed);
            })
        })?)
        .await?;
    sched.start().await?;
    tokio::time::sleep(span - Duration::from_secs(30)).await;
    let mut sched = sched;
    sched.shutdown().await?;
    Ok(runs.load(Ordering::Relaxed))
}

/// Runs `run` on a fresh paused runtime and prints its runs, wall time and CPU time.
fn round<F>(label: &str, run: F) -> Result<(), Box<dyn std::error::Error>>
where
    F: std::future::Future<Output = Result<usize, Box<dyn std::error::Error>>>,
{
    let (wall, cpu) = (Instant::now(), measure::cpu_time());
    let runs = paused_runtime()?.block_on(run)?;
    println!(
        "{label}: {runs} runs, wall {:.3} s, CPU {:.2} s",
        wall.elapsed().as_secs_f64(),
        (measure::cpu_time() - cpu).as_secs_f64()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 5,
    };
    for n in 1..=rounds {
        round(
            &format!("round {n}: AsyncScheduler + VirtualClock, a year (525,600 fire times)"),
            ours(YEAR),
        )?;
        round(
            &format!("round {n}: Engine::process_jobs + ManualClock, stepped by hand, a year"),
            stepped(YEAR),
        )?;
        round(
            &format!("round {n}: tokio-cron-scheduler on paused time, a day (1,440 fire times)"),
            peer(DAY),
        )?;
    }
    Ok(())
}

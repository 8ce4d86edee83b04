//! A scheduler's store traffic measured through a [`LatencyProxy`] (feature
//! `scheduler`): the round trips one main-loop pass with due jobs makes, and the start
//! lateness of runs when every round trip to the store costs extra time.
//!
//! Both checks take `make`, which builds a store (with its run history beside it,
//! when `history` is asked for) that connects to the proxy's address instead of the
//! server's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::{JobStore, RunHistory};
use apscheduler_engine::{
    AsyncScheduler, Engine, EngineBuilder, HistoryOptions, InlineExecutor, JobSpec,
};
use chrono::Utc;
use serde_json::json;

use crate::proxy::LatencyProxy;

/// A store built by the caller over the proxy, and the run history kept beside it.
pub type Made = (Arc<dyn JobStore>, Option<Arc<dyn RunHistory>>);

/// The round trips of one measured pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassRoundTrips {
    /// From the pass's start until it returned: claim, running records, release,
    /// notification, next run time.
    pub pass: u64,
    /// After the pass, until the run history holds the runs' ends.
    pub history_end: u64,
}

/// History options that keep background traffic out of a measured pass: the
/// heartbeat and the pruning come once an hour.
fn quiet_history() -> HistoryOptions {
    HistoryOptions {
        heartbeat: Duration::from_secs(3600),
        node_timeout: Duration::from_secs(7200),
        prune_interval: Duration::from_secs(3600),
        ..HistoryOptions::default()
    }
}

/// Measures the round trips of `passes` main-loop passes, each with `jobs` due jobs
/// (interval jobs of one second, run inline), over the store `make` builds on the
/// proxy's address; with `history`, the store's run history records the runs (with
/// its defaults: `max_instances` held across nodes, so each pass also reads the other
/// nodes' runs). The proxy adds no delay. The runs are kept as history records
/// (`leased_runs(false)`): [`round_trips_per_pass_with`] measures leased runs. Returns
/// each pass's figures.
///
/// # Panics
/// When the store cannot be started or a job cannot be added.
pub async fn round_trips_per_pass<F>(
    upstream: SocketAddr,
    make: F,
    history: bool,
    jobs: usize,
    passes: usize,
) -> Vec<PassRoundTrips>
where
    F: Fn(SocketAddr) -> Made,
{
    round_trips_per_pass_with(
        upstream,
        make,
        |b| b.leased_runs(false),
        history,
        jobs,
        passes,
    )
    .await
}

/// [`round_trips_per_pass`] on a scheduler that `configure` sets up further (for
/// example with leased runs, `EngineBuilder::leased_runs`).
///
/// # Panics
/// When the store cannot be started or a job cannot be added.
pub async fn round_trips_per_pass_with<F>(
    upstream: SocketAddr,
    make: F,
    configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
    history: bool,
    jobs: usize,
    passes: usize,
) -> Vec<PassRoundTrips>
where
    F: Fn(SocketAddr) -> Made,
{
    let proxy = LatencyProxy::start(upstream, Duration::ZERO).await;
    let (store, run_history) = make(proxy.addr());
    let mut builder = configure(
        Engine::builder()
            .timezone(chrono_tz::UTC)
            .jobstore("default", store)
            .executor("default", Arc::new(InlineExecutor::new())),
    );
    if history {
        let run_history = run_history.expect("a run history beside the store");
        builder = builder.run_history(run_history, quiet_history());
    }
    let engine = builder.build();
    engine.register_task("nothing", |_| Ok(json!(null)));
    engine.start(false).await.expect("start the scheduler");
    let first = Utc::now().with_timezone(&chrono_tz::UTC) + chrono::Duration::seconds(1);
    for i in 0..jobs {
        engine
            .add_job(
                JobSpec::task("nothing")
                    .id(format!("rtt-{i}"))
                    .trigger_args("interval", json!({"seconds": 1}))
                    .next_run_time(Some(first))
                    .misfire_grace_time(Some(Duration::from_secs(30))),
            )
            .await
            .expect("add a job");
    }
    let mut figures = Vec::with_capacity(passes);
    for n in 0..passes {
        // Each pass at a fire time of every job, the writer idle before it.
        let at = first + chrono::Duration::seconds(i64::try_from(n).unwrap_or(0));
        let wait = (at.with_timezone(&Utc) - Utc::now())
            .to_std()
            .unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
        engine.flush_history(Duration::from_secs(10)).await;
        let before = proxy.round_trips();
        engine.process_jobs().await;
        let after_pass = proxy.round_trips();
        engine.flush_history(Duration::from_secs(10)).await;
        let after_end = proxy.round_trips();
        figures.push(PassRoundTrips {
            pass: after_pass - before,
            history_end: after_end - after_pass,
        });
    }
    engine.shutdown(true).await.expect("shutdown");
    figures
}

/// The start lateness of runs when each round trip to the store costs
/// `2 * delay_each_way` more: `jobs` interval jobs of one second run for `seconds` on a
/// scheduler (its own main loop, a thread pool) over the store `make` builds on the
/// proxy's address; with `history`, the runs are recorded. The runs are kept as
/// history records (`leased_runs(false)`): [`start_lateness_with`] measures leased
/// runs. Returns every run's lateness (its start on the task's thread less its fire
/// time), sorted.
///
/// # Panics
/// When the store cannot be started or a job cannot be added.
pub async fn start_lateness<F>(
    upstream: SocketAddr,
    make: F,
    history: bool,
    delay_each_way: Duration,
    jobs: usize,
    seconds: u64,
) -> Vec<Duration>
where
    F: Fn(SocketAddr) -> Made,
{
    start_lateness_with(
        upstream,
        make,
        |b| b.leased_runs(false),
        history,
        delay_each_way,
        jobs,
        seconds,
    )
    .await
}

/// [`start_lateness`] on a scheduler that `configure` sets up further (for example
/// with leased runs, `EngineBuilder::leased_runs`).
///
/// # Panics
/// When the store cannot be started or a job cannot be added.
pub async fn start_lateness_with<F>(
    upstream: SocketAddr,
    make: F,
    configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
    history: bool,
    delay_each_way: Duration,
    jobs: usize,
    seconds: u64,
) -> Vec<Duration>
where
    F: Fn(SocketAddr) -> Made,
{
    let proxy = LatencyProxy::start(upstream, delay_each_way).await;
    let (store, run_history) = make(proxy.addr());
    let mut builder = configure(
        Engine::builder()
            .timezone(chrono_tz::UTC)
            .jobstore("default", store),
    );
    if history {
        let run_history = run_history.expect("a run history beside the store");
        builder = builder.run_history(run_history, HistoryOptions::default());
    }
    let scheduler = AsyncScheduler::from_builder(builder).expect("a scheduler");
    let late: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let seen = late.clone();
    scheduler.register_task("lateness", move |ctx| {
        let now = Utc::now();
        let fire = ctx.scheduled_run_time.with_timezone(&Utc);
        let by = (now - fire).to_std().unwrap_or_default();
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(by);
        Ok(json!(null))
    });
    scheduler.start(false).await.expect("start the scheduler");
    // The first fire time two seconds out: the jobs are stored (one batch) and the
    // connections open by then.
    let first = Utc::now().with_timezone(&chrono_tz::UTC) + chrono::Duration::seconds(2);
    let specs = (0..jobs)
        .map(|i| {
            JobSpec::task("lateness")
                .id(format!("late-{i}"))
                .trigger_args("interval", json!({"seconds": 1}))
                .next_run_time(Some(first))
                .misfire_grace_time(Some(Duration::from_secs(30)))
        })
        .collect();
    scheduler.add_jobs(specs).await.expect("add the jobs");
    tokio::time::sleep(Duration::from_secs(2 + seconds)).await;
    scheduler.shutdown(true).await.expect("shutdown");
    let mut late = std::mem::take(&mut *late.lock().unwrap_or_else(|e| e.into_inner()));
    late.sort();
    late
}

/// The `p`-th percentile (0 to 100) of sorted `values`.
///
/// # Panics
/// When `values` is empty.
pub fn percentile(values: &[Duration], p: usize) -> Duration {
    assert!(!values.is_empty(), "no values");
    let i = (values.len() * p).div_ceil(100).saturating_sub(1);
    values[i.min(values.len() - 1)]
}

//! `aps-start-bench`: what writing each run's start to the history before it starts
//! costs (`HistoryOptions::record_starts`), through the public API.
//!
//! ```text
//! aps-start-bench POSTGRES_URL [PASSES]
//! ```
//! A scheduler on a PostgreSQL store with its run history (a table of its own, dropped
//! at the end), 64 jobs due every second: the time of one pass that claims, records,
//! releases and starts the 64 (`Engine::process_jobs`), with `record_starts` off and
//! on, alternately twice each (PASSES passes a round, default 15). Prints the median
//! and the 90th percentile of each setting, over its rounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apscheduler_core::JobStore as _;
use apscheduler_engine::{Engine, HistoryOptions, JobSpec};
use apscheduler_store_sql::SqlJobStore;
use serde_json::json;

type BoxError = Box<dyn std::error::Error>;

const DUE: usize = 64;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .ok_or("usage: aps-start-bench POSTGRES_URL [PASSES]")?
        .clone();
    let passes: usize = args.get(1).map_or(Ok(15), |a| a.parse())?;
    let table = format!("bench_start_{}", std::process::id());
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for (round, record_starts) in [false, true, false, true].into_iter().enumerate() {
            let store = Arc::new(SqlJobStore::builder(&url).table_name(&table).build()?);
            let history = Arc::new(store.history());
            let engine = Engine::builder()
                .jobstore("default", store.clone())
                // The protocol its figures in docs/PERFORMANCE.md were measured with.
                .leased_runs(false)
                .run_history(
                    history,
                    HistoryOptions {
                        record_starts,
                        ..HistoryOptions::default()
                    },
                )
                .build();
            engine.register_task("noop", |_| Ok(json!(null)));
            engine.start(true).await?;
            if round == 0 {
                let specs = (0..DUE).map(|i| {
                    JobSpec::task("noop")
                        .id(format!("due-{i:02}"))
                        .trigger_args("interval", json!({"seconds": 1}))
                        .misfire_grace_time(None)
                });
                engine.add_jobs(specs.collect()).await?;
            }
            engine.resume()?;
            for _ in 0..passes {
                // The 64 are due again each second.
                tokio::time::sleep(Duration::from_millis(1_100)).await;
                let start = Instant::now();
                engine.process_jobs().await;
                times[usize::from(record_starts)].push(start.elapsed().as_secs_f64() * 1e3);
            }
            engine.shutdown(true).await?;
        }
        let store = SqlJobStore::builder(&url).table_name(&table).build()?;
        store.start("default").await?;
        store.remove_all_jobs().await?;
        store.shutdown().await?;
        for (name, mut t) in ["record_starts off", "record_starts on"]
            .into_iter()
            .zip(times)
        {
            t.sort_by(f64::total_cmp);
            let p = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
            println!(
                "{name}: pass of {DUE} runs, median {:.2} ms, p90 {:.2} ms ({} passes)",
                p(0.5),
                p(0.9),
                t.len()
            );
        }
        Ok::<(), BoxError>(())
    })
}

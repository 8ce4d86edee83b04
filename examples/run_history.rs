//! Run history (beyond APScheduler, which keeps none): every run's start, end, outcome,
//! output and node, recorded by the scheduler into a store's history with one builder
//! call, and read back with a query.
//!
//! Here the history is the memory store's; a SQL, Redis or MongoDB store hands out its
//! own with `store.run_history()` (`docs/stores.md`), and the `aps` daemon records into
//! it (`docs/cli.md`). One job succeeds, one fails with an exit code and output; the
//! example stops after two runs of each.
//!
//! Run: `cargo run -p apscheduler --example run_history`

use std::sync::Arc;
use std::time::Duration;

use apscheduler::core::{JobStore, RunQuery};
use apscheduler::prelude::*;
use apscheduler::scheduler::{EngineBuilder, HistoryOptions};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryJobStore::new());
    let history = store.run_history().expect("the memory store keeps history");
    let scheduler = BackgroundScheduler::from_builder(
        EngineBuilder::default()
            .jobstore("default", store)
            // The one call: record runs into this history (100 per job kept by default).
            .run_history(history.clone(), HistoryOptions::default()),
    )?;
    scheduler.register_task("backup", |ctx| {
        // The run id the history record carries.
        let run = ctx.run_id.as_deref().unwrap_or("-");
        Ok(json!({ "output": format!("backed up (run {run})\n"), "exit_code": 0 }))
    });
    scheduler.register_task("report", |_ctx| {
        Err(TaskFailure::new("exit", "exit status 2")
            .with_detail(json!({ "exit_code": 2, "output": "no data for today\n" }))
            .into())
    });
    for (id, task) in [("backup", "backup"), ("report", "report")] {
        scheduler.add_job(
            JobSpec::task(task)
                .id(id)
                .trigger_args("interval", json!({"seconds": 0.2})),
        )?;
    }
    scheduler.start(false)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let runs = runtime.block_on(async {
        loop {
            scheduler
                .engine()
                .flush_history(Duration::from_secs(5))
                .await;
            let runs = history.query_runs(&RunQuery::default()).await?;
            let ended = |job: &str| {
                runs.iter()
                    .filter(|r| r.job_id == job && r.outcome.is_final())
                    .count()
            };
            if ended("backup") >= 2 && ended("report") >= 2 {
                return Ok::<_, apscheduler::core::Error>(runs);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })?;
    scheduler.shutdown(true)?;

    for r in runs.iter().filter(|r| r.outcome.is_final()) {
        println!(
            "{} {:<7} {:<8} exit={:<4} {}",
            r.scheduled_at.format("%H:%M:%S%.3f"),
            r.job_id,
            r.outcome.as_str(),
            r.exit_code.map_or("-".into(), |c| c.to_string()),
            r.output.trim_end()
        );
    }
    Ok(())
}

//! `aps-sql-bench`: adding jobs to a running scheduler with a SQL store, through the
//! scheduler's public API (`BackgroundScheduler::add_job`, `add_jobs`), the calls a
//! user makes. `bench/sql-add-bench.sh` runs it beside APScheduler 3.11 doing the same
//! calls (`bench/apscheduler_sql_add.py`).
//!
//! ```text
//! aps-sql-bench URL [ADDS] [THREADS] [BATCH]
//! ```
//! `APS_SQLITE_SYNC_FULL=1` runs SQLite with `sqlite_sync_full(true)` (a disk sync per
//! commit) instead of the default (`synchronous = NORMAL` in WAL mode).
//! Prints one JSON object: `add_ms` (one thread, median of 3 rounds of ADDS adds),
//! `add_concurrent_ms` (THREADS threads adding at once: wall time per add),
//! `batch_jobs_per_s` (one `add_jobs` call of BATCH jobs), and, marked as the inner
//! path it is, `inner_store_add_ms` (the store's own `JobStore::add_job`, no scheduler).

use std::sync::Arc;
use std::time::Instant;

use apscheduler_core::JobStore;
use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
use apscheduler_store_sql::SqlJobStore;
use serde_json::json;

fn every_hour(id: String) -> JobSpec {
    JobSpec::task("noop")
        .id(id)
        .trigger_args("interval", json!({"hours": 1}))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: aps-sql-bench URL [ADDS] [THREADS] [BATCH]")?;
    let adds: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let threads: usize = args.next().map_or(Ok(8), |a| a.parse())?;
    let batch: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let table = format!("bench_{}", std::process::id());
    let store = Arc::new(
        SqlJobStore::builder(&url)
            .table_name(&table)
            .sqlite_sync_full(std::env::var("APS_SQLITE_SYNC_FULL").is_ok_and(|v| v == "1"))
            .build()?,
    );
    // The protocol its figures in docs/PERFORMANCE.md were measured with.
    let builder = Engine::builder()
        .jobstore("default", store.clone())
        .leased_runs(false);
    let scheduler = BackgroundScheduler::from_builder(builder)?;
    scheduler.register_task("noop", |_| Ok(json!(null)));
    scheduler.start(false)?;

    let mut rounds = Vec::new();
    for round in 0..3 {
        let start = Instant::now();
        for i in 0..adds {
            scheduler.add_job(every_hour(format!("seq-{round}-{i}")))?;
        }
        rounds.push(start.elapsed().as_secs_f64() * 1e3 / adds as f64);
    }
    rounds.sort_by(f64::total_cmp);
    let add_ms = rounds[1];

    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let scheduler = &scheduler;
            scope.spawn(move || {
                for i in 0..adds / threads {
                    scheduler
                        .add_job(every_hour(format!("conc-{t}-{i}")))
                        .expect("add_job");
                }
            });
        }
    });
    let add_concurrent_ms = start.elapsed().as_secs_f64() * 1e3 / (adds / threads * threads) as f64;

    let specs: Vec<JobSpec> = (0..batch)
        .map(|i| every_hour(format!("batch-{i}")))
        .collect();
    let start = Instant::now();
    let added = scheduler.add_jobs(specs)?;
    let batch_jobs_per_s = added.len() as f64 / start.elapsed().as_secs_f64();

    // The inner path, for comparison: the store's own `add_job`, no scheduler.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let template = scheduler
        .get_job("batch-0")?
        .ok_or("batch-0")?
        .job()
        .clone();
    let start = Instant::now();
    runtime.block_on(async {
        for i in 0..adds {
            let job = apscheduler_core::Job {
                id: format!("inner-{i}").into(),
                ..template.clone()
            };
            store.add_job(job, false).await?;
        }
        Ok::<_, apscheduler_core::Error>(())
    })?;
    let store_add_ms = start.elapsed().as_secs_f64() * 1e3 / adds as f64;

    scheduler.remove_all_jobs(None)?;
    scheduler.shutdown(true)?;
    println!(
        "{}",
        json!({
            "url": url.split('@').next_back(),
            "add_ms": add_ms,
            "add_rounds_ms": rounds,
            "threads": threads,
            "add_concurrent_ms": add_concurrent_ms,
            "batch": batch,
            "batch_jobs_per_s": batch_jobs_per_s,
            "inner_store_add_ms": store_add_ms,
        })
    );
    Ok(())
}

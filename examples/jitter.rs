//! The `jitter` option (`interval_demo_3.py` of the seeds, and the cron variant):
//! a random 0..=jitter seconds added to each fire time, so that many servers running the
//! same job do not all start at the same instant.
//!
//! ```python
//! from apscheduler.schedulers.blocking import BlockingScheduler
//!
//! def job_function():
//!     print("Hello World")
//!
//! aBlockingScheduler = BlockingScheduler()
//!
//! # 每小時 (上下浮動 120 秒區間內) 運行 job_function
//! aBlockingScheduler.add_job(job_function, 'interval', hours=1, jitter=120)
//!
//! # 每小時上下浮動 120 秒觸發
//! aBlockingScheduler.add_job(job_function, 'cron', hour='*', jitter=120)
//!
//! aBlockingScheduler.start()
//! ```
//!
//! The example starts the scheduler, prints each job's next run time and how far the
//! jitter moved it, and shuts down (the first run would be an hour away).
//!
//! Run: `cargo run -p apscheduler --example jitter`

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler::core::chrono::{self, DurationRound};
use apscheduler::events::EVENT_SCHEDULER_STARTED;
use apscheduler::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = Arc::new(BlockingScheduler::new()?);
    scheduler.register_task("job_function", |_ctx| {
        println!("Hello World");
        Ok(json!(null))
    });

    // add_job(job_function, 'interval', hours=1, jitter=120)
    scheduler.add_job(
        JobSpec::task("job_function")
            .trigger_args("interval", json!({"hours": 1, "jitter": 120}))
            .id("interval_jitter"),
    )?;
    // add_job(job_function, 'cron', hour='*', jitter=120)
    scheduler.add_job(
        JobSpec::task("job_function")
            .trigger_args("cron", json!({"hour": "*", "jitter": 120}))
            .id("cron_jitter"),
    )?;

    let (started_tx, started_rx) = mpsc::channel();
    scheduler.add_listener(
        move |_event| {
            let _ = started_tx.send(());
        },
        EVENT_SCHEDULER_STARTED,
    );
    let stopper = Arc::clone(&scheduler);
    thread::spawn(move || {
        // Once started (the event comes after the jobs are stored).
        let _ = started_rx.recv_timeout(Duration::from_secs(2));
        let started = stopper.engine().now();
        let top_of_next_hour = started
            .duration_trunc(chrono::Duration::hours(1))
            .unwrap_or(started)
            + chrono::Duration::hours(1);
        if let Ok(jobs) = stopper.get_jobs(None) {
            for job in jobs {
                let Some(next) = job.next_run_time else {
                    continue;
                };
                let next = next.with_timezone(&chrono::Utc);
                // Without jitter: one hour after start (interval), the top of the next
                // hour (cron).
                let exact = if &*job.id == "interval_jitter" {
                    started + chrono::Duration::hours(1)
                } else {
                    top_of_next_hour
                };
                let moved = (next - exact).num_milliseconds() as f64 / 1000.0;
                println!(
                    "{:<16} {}  next run {next} (moved {moved:.0} s by the jitter)",
                    job.id, job.trigger
                );
            }
        }
        let _ = stopper.shutdown(true);
    });

    scheduler.start(false)?;
    Ok(())
}

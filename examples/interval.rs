//! The `interval` trigger (`interval_demo_1.py` of the seeds): runs at a fixed period.
//!
//! ```python
//! from apscheduler.schedulers.blocking import BlockingScheduler
//!
//! def job_function():
//!     print("Hello World")
//!
//! aBlockingScheduler = BlockingScheduler()
//!
//! # 每 2 小時觸發
//! aBlockingScheduler.add_job(job_function, 'interval', hours=2)
//!
//! # 將週期觸發的時間範圍設定在 2024-01-01 00:00:00 至 2024-01-02 00:00:00
//! aBlockingScheduler.add_job(
//!     job_function,
//!     'interval',
//!     hours=2,
//!     start_date='2024-01-01 00:00:00',
//!     end_date='2024-01-02 00:00:00'
//! )
//!
//! aBlockingScheduler.start()
//! ```
//!
//! The bounded job's range has passed by now, so its trigger has no fire time left and the
//! scheduler removes it at start (EVENT_JOB_REMOVED). To see runs without waiting two
//! hours, a third job runs every second; the example stops after two of its runs.
//!
//! Run: `cargo run -p apscheduler --example interval`

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler::events::EVENT_JOB_REMOVED;
use apscheduler::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = Arc::new(BlockingScheduler::new()?);
    scheduler.register_task("job_function", |_ctx| {
        println!("Hello World");
        Ok(json!(null))
    });

    // add_job(job_function, 'interval', hours=2)
    scheduler.add_job(
        JobSpec::task("job_function")
            .trigger_args("interval", json!({"hours": 2}))
            .id("every_two_hours"),
    )?;
    // hours=2, start_date='2024-01-01 00:00:00', end_date='2024-01-02 00:00:00'
    scheduler.add_job(
        JobSpec::task("job_function")
            .trigger_args(
                "interval",
                json!({"hours": 2, "start_date": "2024-01-01 00:00:00", "end_date": "2024-01-02 00:00:00"}),
            )
            .id("bounded"),
    )?;
    // The demonstration: every second.
    scheduler.add_job(
        JobSpec::task("job_function")
            .trigger_args("interval", json!({"seconds": 1}))
            .id("every_second"),
    )?;

    let (ran_tx, ran_rx) = mpsc::channel();
    scheduler.add_listener(
        move |event| {
            if event.code() == EVENT_JOB_REMOVED {
                println!(
                    "removed: job '{}' (no fire time left)",
                    event.job_id().unwrap_or("?")
                );
            } else {
                let _ = ran_tx.send(());
            }
        },
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_REMOVED,
    );
    let stopper = Arc::clone(&scheduler);
    thread::spawn(move || {
        for _ in 0..2 {
            if ran_rx.recv_timeout(Duration::from_secs(3)).is_err() {
                break;
            }
        }
        let _ = stopper.print_jobs(None);
        let _ = stopper.shutdown(true);
    });

    scheduler.start(false)?;
    Ok(())
}

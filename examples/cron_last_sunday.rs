//! A decorated `cron` job on the last Sunday of every month (the seeds).
//!
//! ```python
//! @aBlockingScheduler.scheduled_job('cron', id='my_job_id', day='last sun')
//! def some_decorated_task():
//!     print("I am printed at 00:00:00 on the last Sunday of every month!")
//! ```
//!
//! The example registers the job, starts the scheduler, prints the job and its next few
//! fire times, and shuts down.
//!
//! Run: `cargo run -p apscheduler --example cron_last_sunday`

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler::events::EVENT_SCHEDULER_STARTED;
use apscheduler::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = Arc::new(BlockingScheduler::new()?);

    // @scheduled_job('cron', id='my_job_id', day='last sun')
    scheduler
        .scheduled_job("cron", json!({"day": "last sun"}))
        .id("my_job_id")
        .register("some_decorated_task", |_ctx| {
            println!("I am printed at 00:00:00 on the last Sunday of every month!");
            Ok(json!(null))
        })?;

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
        let _ = stopper.print_jobs(None);
        if let Ok(Some(job)) = stopper.get_job("my_job_id") {
            let mut next = job.next_run_time;
            for _ in 0..4 {
                let Some(t) = next else { break };
                println!("    {}", t.format("%a %Y-%m-%d %H:%M:%S %Z"));
                next = job.trigger.next_fire_time(Some(&t), &t);
            }
        }
        let _ = stopper.shutdown(true);
    });

    scheduler.start(false)?;
    Ok(())
}

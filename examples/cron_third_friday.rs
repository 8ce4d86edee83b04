//! The `cron` trigger (`cron_demo.py` of the seeds): the 3rd Friday of June, July,
//! August, November and December, at 00:00, 01:00, 02:00 and 03:00.
//!
//! ```python
//! from apscheduler.schedulers.blocking import BlockingScheduler
//!
//! def job_function():
//!     print("Hello World")
//!
//! aBlockingScheduler = BlockingScheduler()
//!
//! # 任務會在 6、7、8、11 和 12 月的第 3 個週五 00:00、01:00、02:00 和 03:00 觸發
//! aBlockingScheduler.add_job(
//!     job_function,
//!     'cron',
//!     month='6-8,11-12',
//!     day='3rd fri',
//!     hour='0-3'
//! )
//!
//! aBlockingScheduler.start()
//! ```
//!
//! The example starts the scheduler, prints the job with its next run time and the next
//! few fire times of its trigger, and shuts down.
//!
//! Run: `cargo run -p apscheduler --example cron_third_friday`

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler::events::EVENT_SCHEDULER_STARTED;
use apscheduler::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = Arc::new(BlockingScheduler::new()?);
    scheduler.register_task("job_function", |_ctx| {
        println!("Hello World");
        Ok(json!(null))
    });

    // add_job(job_function, 'cron', month='6-8,11-12', day='3rd fri', hour='0-3')
    scheduler.add_job(
        JobSpec::task("job_function")
            .trigger_args(
                "cron",
                json!({"month": "6-8,11-12", "day": "3rd fri", "hour": "0-3"}),
            )
            .id("third_friday"),
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
        let _ = stopper.print_jobs(None);
        if let Ok(Some(job)) = stopper.get_job("third_friday") {
            let mut next = job.next_run_time;
            println!("next fire times:");
            for _ in 0..6 {
                let Some(t) = next else { break };
                println!("    {t}");
                next = job.trigger.next_fire_time(Some(&t), &t);
            }
        }
        let _ = stopper.shutdown(true);
    });

    scheduler.start(false)?;
    Ok(())
}

//! A standard crontab expression (the seeds): 00:00 on days 1-15 of May to August.
//!
//! ```python
//! aBlockingScheduler.add_job(job_function, CronTrigger.from_crontab('0 0 1-15 may-aug *'))
//! ```
//!
//! `CronTrigger::from_crontab(text, timezone)` reads the five fields
//! `minute hour day month day_of_week`; a built trigger is passed with `JobSpec::trigger`.
//! The example prints the job and its next fire times and shuts down.
//!
//! Run: `cargo run -p apscheduler --example crontab`

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler::events::EVENT_SCHEDULER_STARTED;
use apscheduler::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = Arc::new(BlockingScheduler::new()?);
    let tz = scheduler.engine().timezone();
    scheduler.register_task("job_function", |_ctx| {
        println!("Hello World");
        Ok(json!(null))
    });

    // CronTrigger.from_crontab('0 0 1-15 may-aug *')
    let trigger = CronTrigger::from_crontab("0 0 1-15 may-aug *", tz)?;
    scheduler.add_job(JobSpec::task("job_function").trigger(trigger).id("crontab"))?;

    // A wrong field count is a typed error naming the field and the value.
    if let Err(e) = CronTrigger::from_crontab("0 0 1-15 may-aug", tz) {
        println!("from_crontab('0 0 1-15 may-aug'): {e}");
    }

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
        if let Ok(Some(job)) = stopper.get_job("crontab") {
            let mut next = job.next_run_time;
            for _ in 0..3 {
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

//! A `cron` job with an end date (the seeds): Monday to Friday at 05:30 until
//! 2014-05-30.
//!
//! ```python
//! # 在 2014-05-30 00:00:00 前每週一到每週五 5:30 運行
//! aBlockingScheduler.add_job(
//!     job_function,
//!     'cron',
//!     day_of_week='mon-fri',
//!     hour=5,
//!     minute=30,
//!     end_date='2014-05-30'
//! )
//! ```
//!
//! 2014-05-30 has passed, so the trigger has no fire time left: the scheduler removes
//! the job at start (EVENT_JOB_REMOVED), as APScheduler does. The fire times it had in
//! its last week are printed from the trigger itself, as of 2014-05-27; a second job with
//! an end date a week from now shows the same schedule still running.
//!
//! Run: `cargo run -p apscheduler --example cron_end_date`

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler::core::chrono;
use apscheduler::core::time::parse_datetime;
use apscheduler::events::{EVENT_JOB_REMOVED, EVENT_SCHEDULER_STARTED};
use apscheduler::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = Arc::new(BlockingScheduler::new()?);
    let tz = scheduler.engine().timezone();
    scheduler.register_task("job_function", |_ctx| {
        println!("Hello World");
        Ok(json!(null))
    });

    // add_job(job_function, 'cron', day_of_week='mon-fri', hour=5, minute=30, end_date='2014-05-30')
    let seed = json!({"day_of_week": "mon-fri", "hour": 5, "minute": 30, "end_date": "2014-05-30"});
    scheduler.add_job(
        JobSpec::task("job_function")
            .trigger_args("cron", seed.clone())
            .id("until_2014"),
    )?;

    // What it did in its last week.
    let then = parse_datetime("now", "2014-05-27 00:00:00", tz)?;
    let trigger = AnyTrigger::from_args("cron", &seed, tz, then)?;
    let mut next = trigger.next_fire_time(None, &then);
    print!("{trigger} as of 2014-05-27 fired at:");
    while let Some(t) = next {
        print!(" {}", t.format("%a %Y-%m-%d %H:%M"));
        next = trigger.next_fire_time(Some(&t), &t);
    }
    println!(" (and never again)");

    // The same schedule, ending a week from now.
    let in_a_week = (scheduler.engine().now().with_timezone(&tz) + chrono::Duration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    scheduler.add_job(
        JobSpec::task("job_function")
            .trigger_args(
                "cron",
                json!({"day_of_week": "mon-fri", "hour": 5, "minute": 30, "end_date": in_a_week}),
            )
            .id("until_next_week"),
    )?;

    let (started_tx, started_rx) = mpsc::channel();
    scheduler.add_listener(
        move |event| {
            if event.code() == EVENT_JOB_REMOVED {
                println!(
                    "removed: job '{}' (no fire time left)",
                    event.job_id().unwrap_or("?")
                );
            } else {
                // EVENT_SCHEDULER_STARTED comes once every pending job is stored.
                let _ = started_tx.send(());
            }
        },
        EVENT_JOB_REMOVED | EVENT_SCHEDULER_STARTED,
    );
    let stopper = Arc::clone(&scheduler);
    thread::spawn(move || {
        let _ = started_rx.recv_timeout(Duration::from_secs(2));
        let _ = stopper.print_jobs(None);
        let _ = stopper.shutdown(true);
    });

    scheduler.start(false)?;
    Ok(())
}

//! Daylight saving time (the seeds' 夏令時問題): a daily 03:30 job in a zone with DST.
//!
//! ```python
//! aBlockingScheduler.add_job(job_function, 'cron', hour=3, minute=30)
//! ```
//!
//! The seeds warn that in a zone such as Europe/Helsinki such a job may be skipped or
//! run twice when the clocks change, and advise UTC. Under apscheduler-rs's DST policy
//! (see the `apscheduler-triggers` docs) 03:30 fires exactly once on both nights: in
//! the spring-forward gap at the instant 03:30 denotes with the offset before the jump
//! (04:30 EEST), on the fall-back night at its first occurrence. UTC remains the
//! simplest choice.
//! The example prints the fire times over Helsinki's change-over nights of 2024 for both
//! zones, adds the job to a UTC scheduler, and shuts down.
//!
//! Run: `cargo run -p apscheduler --example cron_dst`

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler::core::time::parse_datetime;
use apscheduler::events::EVENT_SCHEDULER_STARTED;
use apscheduler::prelude::*;
use serde_json::json;

fn fire_times(tz: Tz, from: &str, count: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let now = parse_datetime("now", from, tz)?;
    let trigger = CronTrigger::builder()
        .hour(3)
        .minute(30)
        .timezone(tz)
        .build()?;
    let mut out = Vec::new();
    let mut next = trigger.next_fire_time(None, &now);
    while let Some(t) = next {
        if out.len() == count {
            break;
        }
        out.push(t.to_rfc3339());
        next = trigger.next_fire_time(Some(&t), &t);
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let helsinki: Tz = "Europe/Helsinki".parse()?;
    for (label, from) in [
        ("spring forward", "2024-03-30 12:00:00"),
        ("fall back", "2024-10-26 12:00:00"),
    ] {
        println!("{label}:");
        println!("  Europe/Helsinki {:?}", fire_times(helsinki, from, 2)?);
        println!("  UTC             {:?}", fire_times(Tz::UTC, from, 2)?);
    }

    // The advice of the seeds: schedule in UTC.
    let scheduler = Arc::new(BlockingScheduler::from_builder(
        Engine::builder().timezone(Tz::UTC),
    )?);
    scheduler.register_task("job_function", |_ctx| {
        println!("Hello World");
        Ok(json!(null))
    });
    // add_job(job_function, 'cron', hour=3, minute=30)
    scheduler.add_job(
        JobSpec::task("job_function")
            .trigger_args("cron", json!({"hour": 3, "minute": 30}))
            .id("daily_0330"),
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
        let _ = stopper.shutdown(true);
    });
    scheduler.start(false)?;
    Ok(())
}

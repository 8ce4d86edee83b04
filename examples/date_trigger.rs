//! The `date` trigger (`data_demo.py` of the seeds): one run at a point in time.
//!
//! ```python
//! from datetime import date
//! from apscheduler.schedulers.blocking import BlockingScheduler
//!
//! aBlockingScheduler = BlockingScheduler()
//!
//! def my_job(text):
//!     print(text)
//!
//! # run at: 2024-01-15 00:00:00
//! aBlockingScheduler.add_job(my_job, 'date', run_date=date(2024, 1, 15), args=['text'])
//!
//! # datetime 類型 (用於精確時間)
//! aBlockingScheduler.add_job(my_job, 'date', run_date=datetime(2024, 1, 1, 00, 00, 00), args=['text'])
//! # 文本類型
//! aBlockingScheduler.add_job(my_job, 'date', run_date='2023-01-01 00:00:00', args=['text'])
//! # 未指定時間 (立即執行)
//! aBlockingScheduler.add_job(my_job, args=['text'])
//!
//! aBlockingScheduler.start()
//! ```
//!
//! The seed's dates lie in the past by now: such a run is later than
//! `misfire_grace_time` (1 s), so it is reported as missed (EVENT_JOB_MISSED) and the job
//! is removed, as in APScheduler. The job without a trigger runs at once, and one more
//! job at "now + 1 s" shows a date run on time; then the example shuts down.
//!
//! Run: `cargo run -p apscheduler --example date_trigger`

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler::core::chrono::{self, TimeZone};
use apscheduler::prelude::*;
use apscheduler::scheduler::JobHandle;
use serde_json::json;

fn added(job: JobHandle) {
    println!("added {:<9} {}", job.id, job.trigger);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = Arc::new(BlockingScheduler::new()?);
    let tz = scheduler.engine().timezone();

    // def my_job(text): print(text)
    scheduler.register_task("my_job", |ctx| {
        println!(
            "{}",
            ctx.arg(0).and_then(|v| v.as_str()).unwrap_or_default()
        );
        Ok(json!(null))
    });

    // run_date=date(2024, 1, 15)
    added(
        scheduler.add_job(
            JobSpec::task("my_job")
                .trigger_args("date", json!({"run_date": "2024-01-15"}))
                .args([json!("text")])
                .id("date"),
        )?,
    );
    // run_date=datetime(2024, 1, 1, 00, 00, 00)
    let datetime = tz
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .ok_or("ambiguous local time")?;
    added(
        scheduler.add_job(
            JobSpec::task("my_job")
                .trigger(DateTrigger::new(datetime))
                .args([json!("text")])
                .id("datetime"),
        )?,
    );
    // run_date='2023-01-01 00:00:00'
    added(
        scheduler.add_job(
            JobSpec::task("my_job")
                .trigger_args("date", json!({"run_date": "2023-01-01 00:00:00"}))
                .args([json!("text")])
                .id("string"),
        )?,
    );
    // add_job(my_job, args=['text']): no trigger = run once, now.
    added(scheduler.add_job(JobSpec::task("my_job").args([json!("text")]).id("now"))?);
    // A date one second ahead, to see a date trigger fire on time.
    let soon = scheduler.engine().now().with_timezone(&tz) + chrono::Duration::seconds(1);
    added(
        scheduler.add_job(
            JobSpec::task("my_job")
                .trigger(DateTrigger::new(soon))
                .args([json!("text, one second later")])
                .id("soon"),
        )?,
    );
    let (ran_tx, ran_rx) = mpsc::channel();
    scheduler.add_listener(
        move |event| {
            if event.code() == EVENT_JOB_MISSED {
                println!(
                    "missed: job '{}' (its date has passed)",
                    event.job_id().unwrap_or("?")
                );
            } else {
                let _ = ran_tx.send(());
            }
        },
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED,
    );
    let stopper = Arc::clone(&scheduler);
    thread::spawn(move || {
        // Two runs: "now" and "soon".
        for _ in 0..2 {
            if ran_rx.recv_timeout(Duration::from_secs(3)).is_err() {
                break;
            }
        }
        let _ = stopper.shutdown(true);
    });

    scheduler.start(false)?;
    Ok(())
}

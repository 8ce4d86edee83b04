//! Modifying and rescheduling jobs (the wedo article's Modifying jobs).
//!
//! ```python
//! job = scheduler.add_job(myfunc, 'interval', minutes=2, id='my_job_id', max_instances=10)
//! # 修改任務的屬性
//! job.modify(max_instances=6, name='Alternate name')
//! # 修改任務的觸發器
//! scheduler.reschedule_job('my_job_id', trigger='cron', minute='*/5')
//! ```
//!
//! `modify` changes options and keeps the schedule; `reschedule_job` gives the job a new
//! trigger and computes its next run time from now.
//!
//! Run: `cargo run -p apscheduler --example modify_reschedule`

use apscheduler::prelude::*;
use serde_json::json;

fn show(label: &str, job: &Job) {
    println!(
        "{label:<16} name={:?} max_instances={} trigger={} next run at {}",
        &*job.name,
        job.max_instances,
        job.trigger,
        job.next_run_time.map_or("-".to_owned(), |t| t.to_string())
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = BackgroundScheduler::new()?;
    scheduler.register_task("myfunc", |_ctx| Ok(json!(null)));
    scheduler.start(false)?;

    // job = scheduler.add_job(myfunc, 'interval', minutes=2, id='my_job_id', max_instances=10)
    let job = scheduler.add_job(
        JobSpec::task("myfunc")
            .trigger_args("interval", json!({"minutes": 2}))
            .id("my_job_id")
            .max_instances(10),
    )?;
    show("added", &job);

    // job.modify(max_instances=6, name='Alternate name')
    let job = job.modify(JobChanges::new().max_instances(6).name("Alternate name"))?;
    show("modified", &job);

    // scheduler.reschedule_job('my_job_id', trigger='cron', minute='*/5')
    if let Some(job) = scheduler.reschedule_job("my_job_id", "cron", json!({"minute": "*/5"}))? {
        show("rescheduled", &job);
    }

    // A bad trigger argument is a typed error naming the field and the value.
    if let Err(e) = scheduler.reschedule_job("my_job_id", "cron", json!({"minute": "*/0"})) {
        println!("reschedule_job(minute='*/0'): {e}");
    }

    scheduler.shutdown(true)?;
    Ok(())
}

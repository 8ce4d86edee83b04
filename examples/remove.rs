//! Removing jobs (the seeds' 移除任務).
//!
//! ```python
//! job = scheduler.add_job(myfunc, 'interval', minutes=2)
//! job.remove()
//! ```
//!
//! ```python
//! scheduler.add_job(myfunc, 'interval', minutes=2, id='my_job_id')
//! scheduler.remove_job('my_job_id')
//! ```
//!
//! A job added with `scheduled_job` can only be removed by id. A job whose trigger has
//! no fire time left is removed by the scheduler itself (a date job after its run).
//!
//! Run: `cargo run -p apscheduler --example remove`

use std::sync::mpsc;
use std::time::Duration;

use apscheduler::events::EVENT_JOB_REMOVED;
use apscheduler::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = BackgroundScheduler::new()?;
    scheduler.register_task("myfunc", |_ctx| {
        println!("myfunc ran");
        Ok(json!(null))
    });
    scheduler.start(false)?;

    // job = scheduler.add_job(myfunc, 'interval', minutes=2); job.remove()
    let job = scheduler
        .add_job(JobSpec::task("myfunc").trigger_args("interval", json!({"minutes": 2})))?;
    println!(
        "added job {}; jobs: {}",
        job.id,
        scheduler.get_jobs(None)?.len()
    );
    job.remove()?;
    println!("job.remove(); jobs: {}", scheduler.get_jobs(None)?.len());

    // scheduler.add_job(myfunc, 'interval', minutes=2, id='my_job_id'); remove_job('my_job_id')
    scheduler.add_job(
        JobSpec::task("myfunc")
            .trigger_args("interval", json!({"minutes": 2}))
            .id("my_job_id"),
    )?;
    println!("added my_job_id; jobs: {}", scheduler.get_jobs(None)?.len());
    scheduler.remove_job("my_job_id")?;
    println!(
        "remove_job('my_job_id'); jobs: {}",
        scheduler.get_jobs(None)?.len()
    );

    // Removing it again: a typed NotFound error.
    if let Err(e) = scheduler.remove_job("my_job_id") {
        println!("remove_job('my_job_id') again: {e} ({:?})", e.kind());
    }

    // A decorated job: removed by id.
    scheduler
        .scheduled_job("interval", json!({"minutes": 2}))
        .id("decorated")
        .register("decorated_task", |_ctx| Ok(json!(null)))?;
    scheduler.remove_job("decorated")?;
    println!(
        "remove_job('decorated'); jobs: {}",
        scheduler.get_jobs(None)?.len()
    );

    // A job whose trigger is exhausted removes itself: run once now.
    let (removed_tx, removed_rx) = mpsc::channel();
    scheduler.add_listener(
        move |event| {
            let _ = removed_tx.send(event.job_id().unwrap_or_default().to_owned());
        },
        EVENT_JOB_REMOVED,
    );
    scheduler.add_job(JobSpec::task("myfunc").id("once"))?;
    let removed = removed_rx.recv_timeout(Duration::from_secs(2))?;
    println!(
        "job '{removed}' was removed after its only run; get_job('once') = {:?}",
        scheduler.get_job("once")?.map(|j| j.id.to_string())
    );

    scheduler.shutdown(true)?;
    Ok(())
}

//! Adding a job with the decorator (`interval_demo_2.py` of the seeds).
//!
//! ```python
//! from apscheduler.schedulers.blocking import BlockingScheduler
//!
//! aBlockingScheduler = BlockingScheduler()
//!
//!
//! @aBlockingScheduler.scheduled_job('interval', id='my_job_id', hours=2)
//! def job_function():
//!     print("Hello World")
//!
//!
//! aBlockingScheduler.start()
//! ```
//!
//! `scheduled_job(kind, args).id(..).register(name, f)` registers the task under `name`
//! and adds the job, like the decorator. A decorated job can only be changed or removed
//! through its id (`remove_job('my_job_id')`). To end quickly, the example runs the job
//! once now (`modify_job('my_job_id', next_run_time=now)`), shows the schedule, removes
//! the job by id and shuts down.
//!
//! Run: `cargo run -p apscheduler --example decorator`

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = Arc::new(BlockingScheduler::new()?);

    // @scheduled_job('interval', id='my_job_id', hours=2)
    scheduler
        .scheduled_job("interval", json!({"hours": 2}))
        .id("my_job_id")
        .register("job_function", |_ctx| {
            println!("Hello World");
            Ok(json!(null))
        })?;

    // Demonstration: run it now once (then every 2 hours).
    let now = scheduler
        .engine()
        .now()
        .with_timezone(&scheduler.engine().timezone());
    scheduler.modify_job("my_job_id", JobChanges::new().next_run_time(Some(now)))?;

    let (ran_tx, ran_rx) = mpsc::channel();
    scheduler.add_listener(
        move |_event| {
            let _ = ran_tx.send(());
        },
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
    );
    let stopper = Arc::clone(&scheduler);
    thread::spawn(move || {
        let _ = ran_rx.recv_timeout(Duration::from_secs(2));
        let _ = stopper.print_jobs(None);
        // scheduler.remove_job('my_job_id')
        let _ = stopper.remove_job("my_job_id");
        let _ = stopper.print_jobs(None);
        let _ = stopper.shutdown(true);
    });

    scheduler.start(false)?;
    Ok(())
}

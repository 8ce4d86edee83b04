//! Event listeners (the seeds' 調度器事件, and the "simple example" of the wedo article).
//!
//! ```python
//! def my_listener(event):
//!     if event.exception:
//!         print("The job crashed :(")
//!     else:
//!         print("The job worked :)")
//!
//! # 當任務執行完或任務出錯時調用 my_listener
//! scheduler.add_listener(my_listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
//! ```
//!
//! ```python
//! def job_func(job_id):
//!     print('job %s is runed at %s' % (job_id, datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')))
//!
//! scheduler = BackgroundScheduler()
//! scheduler.add_job(job_func, trigger='interval', args=[1], id='1', name='a test job',
//!                   max_instances=10, jobstore='default', executor='default', seconds=10)
//! scheduler.add_listener(job_exception_listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
//! scheduler.start()
//! ```
//!
//! Masks combine with `|`. Listeners run on the scheduler's event thread, in order. Here
//! the interval is 1 s instead of 10 s, one more job fails on purpose, and the example
//! stops after three outcomes.
//!
//! Run: `cargo run -p apscheduler --example listeners`

use std::sync::mpsc;
use std::time::Duration;

use apscheduler::core::chrono::Local;
use apscheduler::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = BackgroundScheduler::new()?;

    // def job_func(job_id)
    scheduler.register_task("job_func", |ctx| {
        let job_id = ctx.arg(0).cloned().unwrap_or_default();
        println!(
            "job {job_id} is runed at {}",
            Local::now().format("%Y-%m-%d %H:%M:%S")
        );
        Ok(json!(null))
    });
    // A job that fails, so the listener sees EVENT_JOB_ERROR too.
    scheduler.register_task("crashing_job", |_ctx| Err("division by zero".into()));

    // add_job(job_func, trigger='interval', args=[1], id='1', name='a test job',
    //         max_instances=10, jobstore='default', executor='default', seconds=10)
    scheduler.add_job(
        JobSpec::task("job_func")
            .trigger_args("interval", json!({"seconds": 1}))
            .args([json!(1)])
            .id("1")
            .name("a test job")
            .max_instances(10)
            .jobstore("default")
            .executor("default"),
    )?;
    scheduler.add_job(JobSpec::task("crashing_job").id("crash"))?;

    // def my_listener(event): ...
    // scheduler.add_listener(my_listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    let (seen_tx, seen_rx) = mpsc::channel();
    scheduler.add_listener(
        move |event: &Event| {
            match event.exception() {
                Some(failure) => println!("The job crashed :( ({failure})"),
                None => println!("The job worked :)"),
            }
            let _ = seen_tx.send(());
        },
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
    );

    scheduler.start(false)?;
    for _ in 0..3 {
        seen_rx.recv_timeout(Duration::from_secs(3))?;
    }
    scheduler.shutdown(true)?;
    Ok(())
}

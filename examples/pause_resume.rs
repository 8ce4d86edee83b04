//! Pausing and resuming jobs and the scheduler (the seeds' 暫停和恢復任務 and
//! 暫停與恢復任務進程).
//!
//! ```python
//! scheduler.add_job(myfunc, 'interval', minutes=2, id='my_job_id')
//! scheduler.pause_job('my_job_id')       # apscheduler.schedulers.base.BaseScheduler.pause_job()
//! scheduler.resume_job('my_job_id')      # apscheduler.schedulers.base.BaseScheduler.resume_job()
//! job.pause()                            # apscheduler.job.Job.pause()
//! job.resume()                           # apscheduler.job.Job.resume()
//!
//! scheduler.pause()                      # 調度器暫停正在執行的任務
//! scheduler.resume()                     # 調度器恢復已被暫停的任務
//! scheduler.start(paused=True)           # 啓動時默認所有任務設爲暫停狀態
//! ```
//!
//! A paused job has no next run time; resuming computes it again from now. A paused
//! scheduler keeps its jobs but runs none until resumed.
//!
//! Run: `cargo run -p apscheduler --example pause_resume`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler::prelude::*;
use serde_json::json;

fn describe(job: &Job) -> String {
    match job.next_run_time {
        Some(t) => format!("next run at {t}"),
        None => "paused (no next run time)".to_owned(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = BackgroundScheduler::new()?;
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    scheduler.register_task("myfunc", move |_ctx| {
        counter.fetch_add(1, Ordering::SeqCst);
        println!("myfunc ran");
        Ok(json!(null))
    });
    let (ran_tx, ran_rx) = mpsc::channel();
    scheduler.add_listener(
        move |_event| {
            let _ = ran_tx.send(());
        },
        EVENT_JOB_EXECUTED,
    );

    // scheduler.start(paused=True): nothing runs until resume().
    scheduler.start(true)?;
    println!("started paused: state = {}", scheduler.state().as_str());
    scheduler.add_job(JobSpec::task("myfunc").id("run_now"))?; // no trigger: run now
    thread::sleep(Duration::from_millis(300));
    println!(
        "after 0.3 s paused, myfunc ran {} time(s)",
        runs.load(Ordering::SeqCst)
    );
    scheduler.resume()?;
    ran_rx.recv_timeout(Duration::from_secs(2))?;
    println!(
        "resumed: state = {}, myfunc ran {} time(s)",
        scheduler.state().as_str(),
        runs.load(Ordering::SeqCst)
    );

    // scheduler.add_job(myfunc, 'interval', minutes=2, id='my_job_id')
    let job = scheduler.add_job(
        JobSpec::task("myfunc")
            .trigger_args("interval", json!({"minutes": 2}))
            .id("my_job_id"),
    )?;
    println!("my_job_id: {}", describe(&job));
    // scheduler.pause_job('my_job_id') / scheduler.resume_job('my_job_id')
    println!(
        "pause_job:  {}",
        describe(scheduler.pause_job("my_job_id")?.job())
    );
    if let Some(job) = scheduler.resume_job("my_job_id")? {
        println!("resume_job: {}", describe(&job));
    }
    // job.pause() / job.resume()
    println!("job.pause():  {}", describe(job.pause()?.job()));
    if let Some(job) = job.resume()? {
        println!("job.resume(): {}", describe(&job));
    }

    // scheduler.pause() / scheduler.resume()
    scheduler.pause()?;
    println!("scheduler.pause():  state = {}", scheduler.state().as_str());
    scheduler.resume()?;
    println!("scheduler.resume(): state = {}", scheduler.state().as_str());

    scheduler.shutdown(true)?;
    Ok(())
}

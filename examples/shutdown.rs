//! Shutting the scheduler down (the seeds' 關閉調度器).
//!
//! ```python
//! scheduler.shutdown()
//! ```
//!
//! ```python
//! scheduler.shutdown(wait=False)
//! ```
//!
//! By default, `shutdown` waits for the jobs that are running to finish before it closes
//! the executors and job stores; with `wait=false` it returns at once. Both are shown
//! with a job that takes 0.8 s.
//!
//! Run: `cargo run -p apscheduler --example shutdown`

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use apscheduler::prelude::*;
use serde_json::json;

/// Starts a scheduler whose only job sleeps 0.8 s, and returns once the job is running.
fn scheduler_with_running_job() -> Result<BackgroundScheduler, Box<dyn std::error::Error>> {
    let scheduler = BackgroundScheduler::new()?;
    let (started_tx, started_rx) = mpsc::sync_channel(1);
    scheduler.register_task("slow_job", move |_ctx| {
        let _ = started_tx.try_send(());
        thread::sleep(Duration::from_millis(800));
        println!("    slow_job finished");
        Ok(json!(null))
    });
    scheduler.add_job(JobSpec::task("slow_job"))?;
    scheduler.start(false)?;
    started_rx.recv_timeout(Duration::from_secs(2))?;
    Ok(scheduler)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // scheduler.shutdown()
    let scheduler = scheduler_with_running_job()?;
    let t = Instant::now();
    scheduler.shutdown(true)?;
    println!(
        "shutdown() returned after {:.1} s: it waited for the running job",
        t.elapsed().as_secs_f64()
    );

    // scheduler.shutdown(wait=False)
    let scheduler = scheduler_with_running_job()?;
    let t = Instant::now();
    scheduler.shutdown(false)?;
    println!(
        "shutdown(wait=False) returned after {:.1} s: the job was left running",
        t.elapsed().as_secs_f64()
    );
    println!("state: {}", scheduler.state().as_str());
    Ok(())
}

//! The seeds' mixed configuration: a `default` thread pool of 20 for ordinary jobs and a
//! `processpool` of 2 workers for CPU-bound ones, chosen per job with `executor=`.
//!
//! ```python
//! executors = {
//!     'default': ThreadPoolExecutor(20),
//!     'processpool': ProcessPoolExecutor(5)
//! }
//! scheduler.add_job(cpu_bound, executor='processpool')
//! ```
//!
//! Four ~200 ms CPU-bound jobs run on the two worker processes at once (both cores
//! busy), then the same four run one after the other, for comparison.
//!
//! Run: `cargo run -p apscheduler --example process_pool`

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler::core::TaskRegistry;
use apscheduler::executors::process::{worker_main, ProcessPoolExecutor};
use apscheduler::prelude::*;
use serde_json::json;

/// The named tasks, built the same way in the scheduler and in every worker process.
fn tasks() -> TaskRegistry {
    let mut registry = TaskRegistry::new();
    registry.register("cpu_bound", |_ctx| {
        // About 200 ms of arithmetic on one core.
        let start = Instant::now();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while start.elapsed() < Duration::from_millis(200) {
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
        }
        Ok(json!({"pid": std::process::id(), "x": x % 1000}))
    });
    registry.register("hello", |_ctx| Ok(json!("hello from a thread")));
    registry
}

fn run_batch(
    scheduler: &BackgroundScheduler,
    executor: &str,
    done: &mpsc::Receiver<Event>,
) -> Duration {
    let start = Instant::now();
    for _ in 0..4 {
        scheduler
            .add_job(JobSpec::task("cpu_bound").executor(executor))
            .expect("add job");
    }
    for _ in 0..4 {
        let event = done
            .recv_timeout(Duration::from_secs(30))
            .expect("job finished");
        println!(
            "  {executor}: {}",
            event.retval().cloned().unwrap_or_default()
        );
    }
    start.elapsed()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = tasks();
    // In a worker process this runs the task loop and exits; here it returns at once.
    worker_main(&registry);

    let scheduler = BackgroundScheduler::from_builder(
        Engine::builder()
            .executor("default", Arc::new(ThreadPoolExecutor::new(20)))
            .executor("processpool", Arc::new(ProcessPoolExecutor::new(2)))
            .executor("single", Arc::new(ProcessPoolExecutor::new(1))),
    )?;
    scheduler.engine().register_tasks(&registry);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    scheduler.add_listener(
        move |e| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(e.clone());
            }
        },
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
    );
    scheduler.start(false)?;

    scheduler.add_job(JobSpec::task("hello"))?; // the default thread pool
    let hello = rx.recv_timeout(Duration::from_secs(10))?;
    println!("default: {}", hello.retval().cloned().unwrap_or_default());

    // A closure cannot be sent to another process: refused at add_job, with the reason.
    let refused = scheduler.add_job(JobSpec::closure(|_| Ok(json!(1))).executor("processpool"));
    println!("closure on the process pool: {}", refused.unwrap_err());

    let parallel = run_batch(&scheduler, "processpool", &rx);
    let serial = run_batch(&scheduler, "single", &rx);
    println!(
        "4 CPU-bound jobs: {:.0} ms on 2 workers, {:.0} ms on 1 worker (ratio {:.2})",
        parallel.as_secs_f64() * 1000.0,
        serial.as_secs_f64() * 1000.0,
        parallel.as_secs_f64() / serial.as_secs_f64()
    );
    scheduler.shutdown(true)?;
    Ok(())
}

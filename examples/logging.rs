//! Logging (the seeds' 異常捕獲): the scheduler logs through `tracing` under the target
//! `apscheduler`; turning it up to debug shows every step and every job's error.
//!
//! ```python
//! import logging
//!
//! logging.basicConfig()
//! logging.getLogger('apscheduler').setLevel(logging.DEBUG)
//! ```
//!
//! Here `tracing-subscriber` plays `logging.basicConfig()` and the filter
//! `apscheduler=debug` plays `setLevel(logging.DEBUG)` (`RUST_LOG` overrides it). The
//! example runs one job that works and one that fails, then shuts down.
//!
//! Run: `cargo run -p apscheduler --example logging`

use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::Duration;

use apscheduler::prelude::*;
use serde_json::json;
use tracing_subscriber::EnvFilter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // logging.basicConfig(); logging.getLogger('apscheduler').setLevel(logging.DEBUG)
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("apscheduler=debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();

    let scheduler = BackgroundScheduler::new()?;
    scheduler.register_task("works", |_ctx| Ok(json!("fine")));
    scheduler.register_task("fails", |_ctx| Err("something went wrong".into()));
    scheduler.add_job(JobSpec::task("works").id("works"))?;
    scheduler.add_job(JobSpec::task("fails").id("fails"))?;

    let (done_tx, done_rx) = mpsc::channel();
    scheduler.add_listener(
        move |_event| {
            let _ = done_tx.send(());
        },
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
    );
    scheduler.start(false)?;
    for _ in 0..2 {
        done_rx.recv_timeout(Duration::from_secs(3))?;
    }
    scheduler.shutdown(true)?;
    Ok(())
}

//! Quick start (`quick_start.py` of the seeds):
//!
//! ```python
//! from apscheduler.schedulers.blocking import BlockingScheduler
//!
//! scheduler = BlockingScheduler()
//!
//!
//! # 指定每日的某一個時間點執行一次 (此示例代碼為每日 19:36 執行一次)
//! @scheduler.scheduled_job('cron', hour=19, minute=36)
//! def request_update_status():
//!     print('Doing job')
//!
//!
//! scheduler.start()
//! ```
//!
//! `scheduled_job(..).register(name, f)` is the Rust form of the decorator, and
//! `BlockingScheduler::start` blocks like Python's. So that the example ends by itself, it
//! runs the job once right away (`job.modify(next_run_time=now)`), prints the schedule
//! and shuts down; pass `--forever` to wait for 19:36 instead (Ctrl-C stops it).
//!
//! Run: `cargo run -p apscheduler --example quick_start`

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = Arc::new(BlockingScheduler::new()?);

    // @scheduler.scheduled_job('cron', hour=19, minute=36)
    // def request_update_status(): print('Doing job')
    let job = scheduler
        .scheduled_job("cron", json!({"hour": 19, "minute": 36}))
        .register("request_update_status", |_ctx| {
            println!("Doing job");
            Ok(json!(null))
        })?;

    if !std::env::args().any(|a| a == "--forever") {
        // Demonstration: run it now once; its next run is then 19:36.
        let now = scheduler
            .engine()
            .now()
            .with_timezone(&scheduler.engine().timezone());
        job.modify(JobChanges::new().next_run_time(Some(now)))?;
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
            let _ = stopper.shutdown(true);
        });
    }

    // Blocks until shutdown.
    scheduler.start(false)?;
    Ok(())
}

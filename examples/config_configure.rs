//! Configuring the scheduler, method 3: `configure()` before start (the seeds' 方法三).
//!
//! ```python
//! from pytz import utc
//!
//! from apscheduler.schedulers.background import BackgroundScheduler
//! from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
//! from apscheduler.executors.pool import ProcessPoolExecutor
//!
//! jobstores = {
//!     'mongo': {'type': 'mongodb'},
//!     'sql': SQLAlchemyJobStore(url='sqlite:///jobs.sqlite')
//! }
//! executors = {
//!     'thread': {'type': 'threadpool', 'max_workers': 20},
//!     'process': ProcessPoolExecutor(max_workers=5)
//! }
//! job_defaults = {
//!     'coalesce': False,
//!     'max_instances': 3
//! }
//! aBackgroundScheduler = BackgroundScheduler()
//!
//! # 這裏可以添加任務...
//!
//! aBackgroundScheduler.configure(
//!     jobstores=jobstores, executors=executors, job_defaults=job_defaults, timezone=utc)
//! ```
//!
//! Python's `configure` mixes dictionaries and instances; in Rust the dictionaries are a
//! `SchedulerConfig` given to `configure_with`, and instances are added with
//! `add_jobstore` / `add_executor`, both before `start`. After `start` the configuration
//! is fixed: `configure_with` is an `InvalidState` error.
//!
//! NOTE: the `mongodb` store, the SQL store and the process pool are not part of this
//! build yet: memory stores stand in under `mongo` and `sql`, and an inline executor
//! (APScheduler's `debug`) stands in for the process pool. The typed error of the seed's
//! `{'type': 'mongodb'}` is printed.
//!
//! Run: `cargo run -p apscheduler --example config_configure`

use std::sync::{mpsc, Arc};
use std::time::Duration;

use apscheduler::prelude::*;
use apscheduler::scheduler::{ComponentConfig, InlineExecutor, SchedulerConfig};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // aBackgroundScheduler = BackgroundScheduler()
    let scheduler = BackgroundScheduler::new()?;

    // 這裏可以添加任務...: jobs added now are pending until start.
    scheduler.register_task("job_func", |_ctx| {
        println!("job ran in the 'sql' store on the 'thread' executor");
        Ok(json!(null))
    });
    scheduler.add_job(JobSpec::task("job_func").jobstore("sql").executor("thread"))?;

    // The seed's {'type': 'mongodb'}: a typed error, and nothing is changed.
    let seed = SchedulerConfig::new().with_jobstore("mongo", ComponentConfig::new("mongodb"));
    if let Err(e) = scheduler.engine().configure_with(&seed) {
        println!(
            "configure(jobstores={{'mongo': {{'type': 'mongodb'}}}}): {e} [{:?}]",
            e.kind()
        );
    }

    // jobstores = {'mongo': {'type': 'memory'}}  (stand-in for {'type': 'mongodb'})
    // executors = {'thread': {'type': 'threadpool', 'max_workers': 20}}
    // job_defaults = {'coalesce': False, 'max_instances': 3}, timezone=utc
    let config = SchedulerConfig::from_json_str(
        r#"{
            "jobstores": {"mongo": {"type": "memory"}},
            "executors": {"thread": {"type": "threadpool", "max_workers": 20}},
            "job_defaults": {"coalesce": false, "max_instances": 3},
            "timezone": "UTC"
        }"#,
    )?;
    scheduler.engine().configure_with(&config)?;
    // 'sql': SQLAlchemyJobStore(url='sqlite:///jobs.sqlite')  -- stand-in: a memory store
    scheduler.add_jobstore(Arc::new(MemoryJobStore::new()), "sql")?;
    // 'process': ProcessPoolExecutor(max_workers=5)  -- stand-in: the inline executor
    scheduler.add_executor(Arc::new(InlineExecutor::new()), "process")?;
    println!(
        "timezone: {}, job defaults: {:?}",
        scheduler.engine().timezone(),
        scheduler.engine().job_defaults()
    );

    let (done_tx, done_rx) = mpsc::channel();
    scheduler.add_listener(
        move |_event| {
            let _ = done_tx.send(());
        },
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
    );
    scheduler.start(false)?;
    done_rx.recv_timeout(Duration::from_secs(3))?;

    // 調度器啓動後配置將無法修改: after start, configure is refused.
    if let Err(e) = scheduler.engine().configure_with(&config) {
        println!("configure() after start: {e} [{:?}]", e.kind());
    }
    scheduler.shutdown(true)?;
    Ok(())
}

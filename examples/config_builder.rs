//! Configuring the scheduler, method 1: builder arguments (the seeds' 配置調度器, 方法一).
//!
//! ```python
//! from pytz import utc
//!
//! from apscheduler.schedulers.background import BackgroundScheduler
//! from apscheduler.jobstores.mongodb import MongoDBJobStore
//! from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
//! from apscheduler.executors.pool import ThreadPoolExecutor, ProcessPoolExecutor
//!
//! jobstores = {
//!     'mongo': MongoDBJobStore(),
//!     'sql': SQLAlchemyJobStore(url='sqlite:///jobs.sqlite')
//! }
//! executors = {
//!     'thread': ThreadPoolExecutor(20),
//!     'process': ProcessPoolExecutor(5)
//! }
//! job_defaults = {
//!     'coalesce': False,
//!     'max_instances': 3
//! }
//! aBackgroundScheduler = BackgroundScheduler(
//!     jobstores=jobstores, executors=executors, job_defaults=job_defaults, timezone=utc)
//! ```
//!
//! NOTE: the MongoDB and SQL job stores and the process pool are not part of this build
//! yet. Memory stores stand in under both aliases (`mongo`, `sql`) and the async executor
//! (limited to 5 concurrent runs) stands in for the process pool; the example prints the
//! typed error that asking for the `mongodb` type gives today. Methods 2 and 3 are the
//! `config_map` and `config_configure` examples; all three build the same scheduler.
//!
//! Run: `cargo run -p apscheduler --example config_builder`

use std::sync::{mpsc, Arc};
use std::time::Duration;

use apscheduler::executors::r#async::AsyncExecutor;
use apscheduler::prelude::*;
use apscheduler::scheduler::{ComponentConfig, ComponentRegistry};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The default configuration: BackgroundScheduler() has a 'default' MemoryJobStore and
    // a 'default' ThreadPoolExecutor of 10 workers, in the machine's timezone.
    let _default = BackgroundScheduler::new()?;

    let scheduler = BackgroundScheduler::from_builder(
        Engine::builder()
            // 'mongo': MongoDBJobStore()  -- stand-in: a memory store
            .jobstore("mongo", Arc::new(MemoryJobStore::new()))
            // 'sql': SQLAlchemyJobStore(url='sqlite:///jobs.sqlite')  -- stand-in: a memory store
            .jobstore("sql", Arc::new(MemoryJobStore::new()))
            // 'thread': ThreadPoolExecutor(20)
            .executor("thread", Arc::new(ThreadPoolExecutor::new(20)))
            // 'process': ProcessPoolExecutor(5)  -- stand-in: the async executor, 5 at a time
            .executor("process", Arc::new(AsyncExecutor::new(Some(5))))
            // job_defaults = {'coalesce': False, 'max_instances': 3}
            .job_defaults(JobDefaults {
                coalesce: false,
                max_instances: 3,
                ..JobDefaults::default()
            })
            // timezone=utc
            .timezone(Tz::UTC),
    )?;
    println!("timezone: {}", scheduler.engine().timezone());
    println!("job defaults: {:?}", scheduler.engine().job_defaults());

    // What MongoDBJobStore() gives today, by type name.
    if let Err(e) =
        ComponentRegistry::global().create_store("mongo", &ComponentConfig::new("mongodb"))
    {
        println!("type 'mongodb': {e} [{:?}]", e.kind());
    }

    // One job in the 'sql' store on the 'thread' executor, run now.
    scheduler.register_task("job_func", |ctx| {
        println!("job {} ran", ctx.arg(0).cloned().unwrap_or_default());
        Ok(json!(null))
    });
    scheduler.add_job(
        JobSpec::task("job_func")
            .args([json!(1)])
            .jobstore("sql")
            .executor("thread"),
    )?;
    let (done_tx, done_rx) = mpsc::channel();
    scheduler.add_listener(
        move |_event| {
            let _ = done_tx.send(());
        },
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
    );
    scheduler.start(false)?;
    done_rx.recv_timeout(Duration::from_secs(3))?;
    scheduler.shutdown(true)?;
    Ok(())
}

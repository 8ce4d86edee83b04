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
//! Every component is the real one: the SQL store on a SQLite file in a temporary folder,
//! the MongoDB store on `APS_TEST_MONGODB_URL` (default `mongodb://127.0.0.1:27017/`;
//! when no server answers, the scheduler logs that the store is unavailable and keeps
//! retrying it, and the example's job, which lives in the 'sql' store, still runs), and
//! the process pool. Methods 2 and 3 are the `config_map` and `config_configure`
//! examples; all three build the same scheduler.
//!
//! Run: `cargo run -p apscheduler --example config_builder`

use std::sync::{mpsc, Arc};
use std::time::Duration;

use apscheduler::executors::process::{worker_main, ProcessPoolExecutor};
use apscheduler::prelude::*;
use apscheduler::stores::mongodb::MongoDbJobStore;
use apscheduler::stores::sql::SqlJobStore;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A process pool's workers are copies of this program: in one, this runs the task
    // loop and exits; here it returns at once.
    worker_main(&apscheduler::core::TaskRegistry::new());

    // The default configuration: BackgroundScheduler() has a 'default' MemoryJobStore and
    // a 'default' ThreadPoolExecutor of 10 workers, in the machine's timezone.
    let _default = BackgroundScheduler::new()?;

    let dir = tempfile::tempdir()?;
    let mongo_url = std::env::var("APS_TEST_MONGODB_URL")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27017/".to_owned());
    let scheduler = BackgroundScheduler::from_builder(
        Engine::builder()
            // 'mongo': MongoDBJobStore()
            .jobstore(
                "mongo",
                Arc::new(
                    MongoDbJobStore::builder(mongo_url)
                        .server_selection_timeout(Duration::from_secs(1))
                        .build()?,
                ),
            )
            // 'sql': SQLAlchemyJobStore(url='sqlite:///jobs.sqlite')
            .jobstore(
                "sql",
                Arc::new(SqlJobStore::connect(&format!(
                    "sqlite:///{}/jobs.sqlite",
                    dir.path().display()
                ))?),
            )
            // 'thread': ThreadPoolExecutor(20)
            .executor("thread", Arc::new(ThreadPoolExecutor::new(20)))
            // 'process': ProcessPoolExecutor(5)
            .executor("process", Arc::new(ProcessPoolExecutor::new(5)))
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

//! # apscheduler
//!
//! The facade of apscheduler-rs: the Rust answer to Python's APScheduler. Depend on this
//! crate and pick backends through Cargo features; each piece lives in its own crate.
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `apscheduler-core` | the `Trigger` trait, typed errors, time helpers |
//! | [`triggers`] | `apscheduler-triggers` | date, interval, cron/crontab, calendarinterval, and/or |
//! | [`scheduler`] | `apscheduler-engine` | the engine and the Blocking/Background/Async/Driven schedulers |
//! | [`stores::memory`] | `apscheduler-store-memory` | the default, in-memory job store |
//! | [`executors::thread`] | `apscheduler-executor-thread` | the default thread pool |
//! | [`executors::r#async`](apscheduler_executor_async) | `apscheduler-executor-async` | the tokio executor for async jobs |
//!
//! Persistent job stores (`stores::sql`, `stores::redis`, `stores::mongodb`) and the
//! process pool (`executors::process`) are behind Cargo features.
//!
//! ## Usage
//! A background scheduler running a job every two seconds and one at a fixed time,
//! APScheduler's `add_job(func, 'interval', seconds=2)` and `add_job(func, 'date', ...)`:
//! ```
//! use apscheduler::prelude::*;
//! use std::sync::mpsc;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let scheduler = BackgroundScheduler::new()?;
//! let (tx, rx) = mpsc::channel();
//! let tx = std::sync::Mutex::new(tx);
//! scheduler.register_task("tick", move |ctx| {
//!     tx.lock().unwrap().send(ctx.job_id.to_string()).ok();
//!     Ok(json!({"ok": true}))
//! });
//! scheduler.add_job(JobSpec::task("tick").id("every-2s").trigger_args("interval", json!({"seconds": 2})))?;
//! scheduler.start(false)?;
//! assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(5))?, "every-2s");
//! scheduler.shutdown(true)?;
//! # Ok(()) }
//! ```
//!
//! The triggers alone, to preview a schedule:
//! ```
//! use apscheduler::prelude::*;
//!
//! let tz: Tz = "Europe/Helsinki".parse().unwrap();
//! let trigger = CronTrigger::from_crontab("0 9 * * mon-fri", tz).unwrap();
//! let now = apscheduler::core::time::parse_datetime("now", "2024-06-01 12:00:00", tz).unwrap();
//! let next = trigger.next_fire_time(None, &now).unwrap();
//! assert_eq!(next.to_rfc3339(), "2024-06-03T09:00:00+03:00");
//! ```
//!
//! ## Feature flags
//! - `triggers` (default): the trigger kinds.
//! - `scheduler` (default): the engine, its front-ends, the memory store, the thread
//!   pool and the async executor.
//! - `store-sql-sqlite`, `store-sql-postgres`, `store-sql-mysql`: the SQL job store with
//!   that backend (any mix; `store-sql-postgres` alone builds no SQLite). `store-sql` is
//!   `store-sql-sqlite`.
//! - `store-redis`, `store-mongodb`: the Redis and MongoDB job stores.
//! - `executor-process`: the process pool executor.
//! - `executor-rayon`: the rayon executor for CPU-bound jobs.
//! - `all-stores`, `full`: everything (CI, docs).
//!
//! Configuration files name every enabled store and executor type (`type =
//! "sqlalchemy"`, `type = "processpool"`) without any set-up call: each backend crate
//! registers its types when it is linked. A type whose feature is off gets an error that
//! names the feature.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use apscheduler_core as core;
#[cfg(feature = "triggers")]
pub use apscheduler_triggers as triggers;

/// The scheduler engine and front-ends.
#[cfg(feature = "scheduler")]
pub use apscheduler_engine as scheduler;

/// Event codes and types (`EVENT_JOB_EXECUTED | EVENT_JOB_ERROR`).
pub use apscheduler_core::event as events;

/// The management plane: an axum router with the HTTP API, the dashboard, `/metrics`
/// and `/health`; run metrics and failure webhooks as run observers.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use apscheduler_http as http;

mod backends;
pub use backends::{executors, stores};

/// `serde_json`, for task arguments and return values (`json!`), so programs need not
/// depend on it themselves.
pub use apscheduler_core::serde_json;

/// The names most programs need.
pub mod prelude {
    pub use apscheduler_core::chrono_tz::Tz;
    pub use apscheduler_core::event::{
        Event, EventMask, EVENT_ALL, EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES,
        EVENT_JOB_MISSED,
    };
    pub use apscheduler_core::serde_json::json;
    pub use apscheduler_core::{
        Error, ErrorKind, Job, TaskContext, TaskFailure, TaskResult, Trigger, TriggerError,
    };
    #[cfg(feature = "scheduler")]
    pub use apscheduler_engine::{
        AsyncScheduler, BackgroundScheduler, BlockingScheduler, DrivenScheduler, Engine,
        JobChanges, JobDefaults, JobSpec,
    };
    #[cfg(feature = "scheduler")]
    pub use apscheduler_executor_thread::ThreadPoolExecutor;
    #[cfg(feature = "scheduler")]
    pub use apscheduler_store_memory::MemoryJobStore;
    #[cfg(feature = "triggers")]
    pub use apscheduler_triggers::{
        AndTrigger, AnyTrigger, CalendarIntervalTrigger, CronTrigger, DateTrigger, IntervalTrigger,
        OrTrigger,
    };
}

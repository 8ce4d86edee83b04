//! # apscheduler
//!
//! An advanced job scheduler for Rust: Python's APScheduler 3.x (triggers, job stores,
//! executors, schedulers, events, misfire/coalesce/max_instances, configuration) under
//! the same names, plus several schedulers sharing one store, a run history and a
//! management plane. This crate is the facade: depend on it alone and pick backends
//! with Cargo features; each piece lives in a crate of its own, re-exported here.
//!
//! ## Adding it
//! ```sh
//! cargo add apscheduler                                      # triggers, schedulers, memory store, thread pool
//! cargo add apscheduler --features store-sql-postgres,http   # + the PostgreSQL job store and the HTTP management plane
//! ```
//!
//! ## Quick start
//! A background scheduler with a job every two seconds (APScheduler's
//! `add_job(func, 'interval', seconds=2)`):
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
//! Jobs that survive a restart, in a SQLite file (`--features store-sql-sqlite`; with
//! `store-sql-postgres`, the same code takes a `postgres://` URL):
//! ```
//! use std::sync::Arc;
//! use apscheduler::prelude::*;
//! use apscheduler::stores::sql::SqlJobStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("jobs.sqlite");
//! // SQLAlchemyJobStore(url='sqlite:///jobs.sqlite')
//! let store = SqlJobStore::connect(&format!("sqlite:///{}", path.display()))?;
//! let scheduler = BackgroundScheduler::from_builder(
//!     Engine::builder().jobstore("default", Arc::new(store)),
//! )?;
//! scheduler.register_task("report", |_ctx| Ok(json!(null)));
//! // add_job(report, 'cron', hour=3, id='nightly-report', replace_existing=True)
//! scheduler.add_job(
//!     JobSpec::task("report")
//!         .id("nightly-report")
//!         .trigger_args("cron", json!({"hour": 3}))
//!         .replace_existing(true),
//! )?;
//! scheduler.start(false)?;
//! assert!(scheduler.get_job("nightly-report")?.is_some());
//! scheduler.shutdown(true)?;
//! # Ok(()) }
//! ```
//!
//! A service in several replicas on one store: `AsyncScheduler::connect(url)` (the store
//! a URL names, with its run history), `JobSpec::declare` (a job every replica declares
//! at every start, keeping its schedule) and `run_until_signal()` (until SIGTERM or
//! Ctrl-C, then the runs in flight end); the README's second program,
//! `examples/replicas.rs`, is the whole of it.
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
//! ## Modules
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `apscheduler-core` | the `Trigger`, `JobStore` and `Executor` traits, events, typed errors, time helpers, the job-state codec |
//! | [`triggers`] | `apscheduler-triggers` | date, interval, cron/crontab, calendarinterval, and/or, exclusion calendars |
//! | [`scheduler`] | `apscheduler-engine` | the engine and the Blocking/Background/Async/Driven schedulers |
//! | [`events`] | `apscheduler-core` | event codes and types |
//! | [`stores::memory`] | `apscheduler-store-memory` | the default, in-memory job store |
//! | [`stores::sql`](stores/sql/index.html) | `apscheduler-store-sql` | SQLite, PostgreSQL and MySQL/MariaDB job store and run history |
//! | [`stores::redis`](stores/redis/index.html) | `apscheduler-store-redis` | Redis job store and run history |
//! | [`stores::mongodb`](stores/mongodb/index.html) | `apscheduler-store-mongodb` | MongoDB job store and run history |
//! | [`stores::zookeeper`](stores/zookeeper/index.html) | `apscheduler-store-zookeeper` | ZooKeeper job store and run history |
//! | [`executors::thread`] | `apscheduler-executor-thread` | the default thread pool |
//! | [`executors::async`](executors/async/index.html) | `apscheduler-executor-async` | the tokio executor for async jobs |
//! | [`executors::process`](executors/process/index.html) | `apscheduler-executor-process` | the worker-process pool |
//! | [`executors::rayon`](executors/rayon/index.html) | `apscheduler-executor-rayon` | the rayon pool for CPU-bound jobs |
//! | [`http`](http/index.html) | `apscheduler-http` | the management plane: HTTP API, dashboard, `/metrics`, webhooks |
//! | [`prelude`] | | the names most programs need |
//!
//! ## Feature flags
//! Every feature of this crate's manifest:
//!
//! | feature | brings |
//! |---|---|
//! | `triggers` (default) | [`triggers`]: the trigger kinds |
//! | `scheduler` (default) | [`scheduler`]: the engine and its front-ends, with the memory store, the thread pool and the async executor; implies `triggers` |
//! | `store-sql-sqlite` | [`stores::sql`](stores/sql/index.html) with SQLite (bundled: nothing to install) |
//! | `store-sql-postgres` | [`stores::sql`](stores/sql/index.html) with PostgreSQL (alone, it builds no SQLite) |
//! | `store-sql-mysql` | [`stores::sql`](stores/sql/index.html) with MySQL/MariaDB |
//! | `store-sql` | the same as `store-sql-sqlite` |
//! | `store-redis` | [`stores::redis`](stores/redis/index.html) |
//! | `store-mongodb` | [`stores::mongodb`](stores/mongodb/index.html) |
//! | `store-zookeeper` | [`stores::zookeeper`](stores/zookeeper/index.html) |
//! | `executor-process` | [`executors::process`](executors/process/index.html) |
//! | `executor-rayon` | [`executors::rayon`](executors/rayon/index.html) |
//! | `http` | [`http`](http/index.html): the management plane (axum) |
//! | `all-stores` | every `store-*` feature above |
//! | `full` | `all-stores`, `executor-process`, `executor-rayon` and `http` |
//!
//! The SQL features mix freely. Every feature but `triggers` implies `scheduler`.
//! Configuration files name every enabled store and executor type (`type =
//! "sqlalchemy"`, `type = "processpool"`) without any set-up call: each backend crate
//! registers its types when it is linked. A type whose feature is off gets an error that
//! names the feature.
//!
//! ## Several schedulers on one store
//! **The cluster guarantee.** Each fire time of a job is started at most once across all
//! the schedulers that share a store: a scheduler starts a fire time only after the store
//! has applied the release that moves the job past it, and the store applies a release
//! only from the holder of the job's lease. The one exception is asked for by the job:
//! with `recover` set, a run recorded `interrupted` because its node was taken for dead
//! (killed, or silent longer than the node time-out) is run once more for the same fire
//! time. A fire time is also started at least once if some scheduler is running and
//! reaches the store before the fire time's misfire grace time is over. A fire time
//! claimed by a scheduler that died before its release was applied is started by another
//! scheduler once the claim's lease has expired (5 s by default), so this needs a grace
//! time longer than the lease (the default grace time is 1 s). A fire time is not started
//! when its grace time runs out first (every scheduler stopped or cut off from the store,
//! a store outage, a lease expiring after the grace time), when the reply to its release
//! was lost and the retry does not show within the grace time that the store had not
//! applied it, or when its scheduler shuts down between claim and start. Such a fire time
//! is never dropped silently: it is logged, reported as `EVENT_JOB_MISSED` and, with a run
//! history, recorded `missed` with the reason. `coalesce` and `max_instances` apply on
//! top, as in APScheduler.
//! How it is built and tested: `docs/cluster.md` in the repository.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

#[doc(inline)]
pub use apscheduler_core as core;
#[cfg(feature = "triggers")]
#[doc(inline)]
pub use apscheduler_triggers as triggers;

/// The scheduler engine and front-ends.
#[cfg(feature = "scheduler")]
#[doc(inline)]
pub use apscheduler_engine as scheduler;

/// Event codes and types (`EVENT_JOB_EXECUTED | EVENT_JOB_ERROR`).
pub use apscheduler_core::event as events;

/// The management plane: an axum router with the HTTP API, the dashboard, `/metrics`
/// and `/health`; run metrics and failure webhooks as run observers.
#[cfg(feature = "http")]
#[doc(inline)]
pub use apscheduler_http as http;

/// The README's Rust blocks, compiled by `cargo test --doc` so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

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
        VirtualClock,
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
        AndTrigger, AnyTrigger, CalendarAction, CalendarError, CalendarIntervalTrigger,
        CronTrigger, DateTrigger, ExcludingTrigger, ExclusionCalendar, IntervalTrigger,
        NamedCalendar, OrTrigger,
    };
}

//! # apscheduler-engine
//!
//! The scheduler: one engine ([`Engine`]) with APScheduler 3.x's job API and main loop,
//! and thin front-ends that drive it:
//!
//! | front-end | APScheduler | how the loop runs |
//! |---|---|---|
//! | [`BlockingScheduler`] | `BlockingScheduler` | in the thread calling `start`, until `shutdown` |
//! | [`BackgroundScheduler`] | `BackgroundScheduler` | in its own thread |
//! | [`AsyncScheduler`] | `AsyncIOScheduler` | as a tokio task; async jobs too |
//! | [`DrivenScheduler`] | Tornado/Twisted/Qt/gevent schedulers | by a host event loop (`next_wakeup`, `run_due`) |
//!
//! The engine takes an injectable [`Clock`](apscheduler_core::Clock), so behaviour is
//! tested without sleeping; [`replay`] replays APScheduler's recorded traces through it.
//!
//! ## Usage
//! ```
//! use apscheduler_engine::{BackgroundScheduler, JobSpec};
//! use serde_json::json;
//!
//! let scheduler = BackgroundScheduler::new().unwrap();
//! scheduler.register_task("job_func", |ctx| {
//!     println!("job {} ran", ctx.arg(0).unwrap());
//!     Ok(json!(null))
//! });
//! // add_job(job_func, 'interval', seconds=10, args=[1], id='1', name='a test job')
//! let job = scheduler
//!     .add_job(
//!         JobSpec::task("job_func")
//!             .trigger_args("interval", json!({"seconds": 10}))
//!             .args([json!(1)])
//!             .id("1")
//!             .name("a test job"),
//!     )
//!     .unwrap();
//! scheduler.start(false).unwrap();
//! assert!(scheduler.get_job("1").unwrap().is_some());
//! scheduler.shutdown(true).unwrap();
//! ```
//!
//! ## Feature flags
//! None.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

mod components;
mod config;
mod dispatch;
mod engine;
mod frontends;
mod history;
mod inline;
mod liveness;
mod membership;
mod partition;
pub use partition::{rendezvous as owned_partitions, PARTITIONED_FROM_NODES};
pub mod replay;
mod spec;
mod wake;

/// The component registry, re-exported from core where backend crates reach it.
pub use apscheduler_core::component::{
    ComponentConfig, ComponentKind, ComponentRegistry, ConfigTable, ExecutorFactory, StoreFactory,
};
pub use components::register as register_inline_executor;
pub use config::{
    JobDefaults, JobDefaultsConfig, SchedulerConfig, ENV_PREFIX, ENV_SEPARATOR, FLAT_PREFIX,
};
pub use dispatch::{ListenerFn, ListenerId};
pub use engine::{
    cancelled_by, excluded_calendar, excluded_message, failure_streak, local_timezone,
    next_allowed_run_time, trigger_calendar, Engine, EngineBuilder, PassMarks, PendingRun,
    SchedulerState, DEFAULT_ALIAS, DEFAULT_CHANGE_POLL, DEFAULT_LEASE,
};
pub use engine::{
    BackfillReport, BackfillRequest, BACKFILL_HARD_MAX, BACKFILL_MAX_RATE, DEFAULT_BACKFILL_MAX,
    DEFAULT_BACKFILL_RATE,
};
pub use frontends::{
    AsyncJobHandle, AsyncScheduledJob, AsyncScheduler, BackgroundScheduler, BlockingScheduler,
    DrivenScheduler, JobHandle, JobStatus, ScheduledJob, SyncScheduler,
};
pub use history::{finish_record, outcome_of, HistoryOptions};
pub use inline::InlineExecutor;
pub use spec::{JobChanges, JobSpec};

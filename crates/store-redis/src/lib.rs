//! # apscheduler-store-redis
//!
//! [`RedisJobStore`]: APScheduler's `RedisJobStore` for apscheduler-rs. Jobs are kept in
//! Redis as JSON data (task *names*, arguments, the trigger's tagged JSON; never code),
//! so several schedulers, in one process or on many machines, can share one store:
//! due jobs are claimed with a lease by one atomic Lua script, and every
//! (job, run time) is handed to exactly one scheduler. Beside the jobs it keeps a
//! run history ([`RedisRunHistory`]): what ran, when and how it ended.
//!
//! ## Usage
//! ```no_run
//! use std::sync::Arc;
//!
//! use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
//! use apscheduler_store_redis::RedisJobStore;
//! use serde_json::json;
//!
//! # fn main() -> Result<(), apscheduler_core::Error> {
//! // Nothing connects yet: the store connects when the scheduler starts it.
//! let store = RedisJobStore::builder("redis://127.0.0.1:6379/")
//!     .prefix("myapp.scheduler.")
//!     .build()?;
//! let scheduler = BackgroundScheduler::from_builder(
//!     Engine::builder().jobstore("default", Arc::new(store)),
//! )?;
//! // Jobs in a persistent store run tasks registered by name.
//! scheduler.register_task("report", |_ctx| Ok(json!(null)));
//! scheduler.add_job(
//!     JobSpec::task("report")
//!         .id("nightly-report")
//!         .trigger_args("cron", json!({"hour": 3}))
//!         .replace_existing(true),
//! )?;
//! scheduler.start(false)?;
//! # scheduler.shutdown(true)?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Where the details are
//! - [`KeyLayout`]: the keys under the prefix and what one claim does.
//! - [`RedisJobStore`]: how the store meets the job store contract (connections,
//!   errors, corrupt jobs, leases on the server's clock).
//! - [`RedisJobStoreBuilder`]: the settings, the URL forms (`redis://`,
//!   `redis+sentinel://`, `redis+cluster://`), their options, and what a failover
//!   can lose.
//! - [`RedisRunHistory`]: the run history's keys, query costs and memory.
//!
//! ## Feature flags
//! None. The `redis` crate is used with its tokio connection manager, scripts,
//! Sentinel and async cluster support, and without TLS.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

mod builder;
mod changes;
mod claims;
mod cluster;
mod codec;
mod config;
mod conn;
mod durability;
mod error;
mod history;
mod hosts;
mod jobstore;
mod keys;
mod run_scripts;
mod runs;
mod scripts;
mod sentinel;
mod shards;
mod store;

pub use builder::RedisJobStoreBuilder;
pub use config::{register, RedisStoreConfig};
pub use history::RedisRunHistory;
pub use keys::{validate_prefix, KeyLayout};
pub use store::RedisJobStore;

/// The key prefix used when none is given (APScheduler's `apscheduler.`).
pub const DEFAULT_PREFIX: &str = "apscheduler.";

/// The largest stored job state read or written by default: 1 MiB.
pub const DEFAULT_MAX_STATE_BYTES: usize = 1 << 20;

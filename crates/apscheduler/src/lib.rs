//! # apscheduler
//!
//! The facade of apscheduler-rs: the Rust answer to Python's APScheduler. Depend on this
//! crate and pick backends through Cargo features; each piece lives in its own crate.
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `apscheduler-core` | the `Trigger` trait, typed errors, time helpers |
//! | [`triggers`] | `apscheduler-triggers` | date, interval, cron/crontab, calendarinterval, and/or |
//!
//! The scheduler engine, the job stores (memory, SQL, MongoDB, Redis) and the executors
//! (threads, processes, async) join as their crates land; see the README's crate map.
//!
//! ## Usage
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
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.80) and later.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, rust_2018_idioms)]

pub use apscheduler_core as core;
#[cfg(feature = "triggers")]
pub use apscheduler_triggers as triggers;

/// The names most programs need.
pub mod prelude {
    pub use apscheduler_core::chrono_tz::Tz;
    pub use apscheduler_core::{Error, ErrorKind, Trigger, TriggerError};
    #[cfg(feature = "triggers")]
    pub use apscheduler_triggers::{
        AndTrigger, AnyTrigger, CalendarIntervalTrigger, CronTrigger, DateTrigger,
        IntervalTrigger, OrTrigger,
    };
}

//! # apscheduler-core
//!
//! The shared vocabulary of the apscheduler-rs workspace, written for implementors of
//! triggers, job stores and executors:
//!
//! - [`Trigger`]: computes the next fire time from the previous fire time and now;
//!   its `Display` mirrors APScheduler's repr (`cron[hour='9']`).
//! - [`Job`] and its persisted form [`JobState`]; [`Task`], [`TaskFn`] and the
//!   [`TaskRegistry`] of named tasks.
//! - [`JobStore`]: where jobs live, with an atomic claim-with-lease protocol so several
//!   schedulers can share one store; [`StoreWrapper`]: a store wrapping another one,
//!   forwarding every call to it with a hook around each.
//! - [`RunStore`]: the run contract beside it — a fire time, a retry, a buffered fire
//!   time, a run started by hand are [`Run`] rows, each leased to one scheduler, moved
//!   by atomic compare-and-set steps on the store's clock ([`RunTable`] holds the
//!   contract's decisions for in-memory rows).
//! - [`Executor`]: what runs jobs, reporting outcomes through a [`RunReporter`];
//!   [`run`] holds the one task runner and outcome reporting every executor uses.
//! - [`Event`] and the APScheduler event codes (`EVENT_JOB_EXECUTED | EVENT_JOB_ERROR`).
//! - [`component`]: job stores and executors by type name, for configuration files;
//!   each backend crate registers its own types.
//! - [`RunHistory`]: run records (start, end, outcome, output) kept by stores that
//!   offer history, queried by job, outcome and time, pruned by count and age;
//!   [`NodeRegistry`]: the schedulers sharing a store, with their heartbeats.
//! - [`policy`]: run policies (retries, overlap, catch-up, failure streaks) a job carries.
//! - [`Clock`]: the injectable time source ([`ManualClock`] for tests).
//! - [`TriggerError`] and the API-wide [`Error`] with its matchable [`ErrorKind`].
//! - [`diag`]: [`log_warn!`] and [`log_error!`], which reach stderr when the program
//!   installed no `tracing` subscriber.
//! - [`time`]: timezone lookup, local-time resolution under the DST policy, date
//!   parsing (`2009-11-06 16:30:05` read in a timezone) and RFC 3339 output.
//!
//! It has no async runtime and no database dependency.
//!
//! ## Usage
//! ```
//! use apscheduler_core::time::{parse_datetime, parse_timezone, to_rfc3339};
//!
//! let tz = parse_timezone("timezone", "America/New_York").unwrap();
//! // 02:30 does not exist on the spring-forward day: it denotes 03:30 EDT.
//! let t = parse_datetime("run_date", "2024-03-10 02:30:00", tz).unwrap();
//! assert_eq!(to_rfc3339(&t), "2024-03-10T03:30:00-04:00");
//!
//! let err = parse_timezone("timezone", "Mars/Olympus_Mons").unwrap_err();
//! assert_eq!(err.field(), "timezone");
//! ```
//!
//! ## Feature flags
//! None.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

pub mod cancel;
mod clock;
pub mod codec;
pub mod component;
pub mod diag;
mod error;
pub mod event;
mod executor;
mod forward;
pub mod history;
mod job;
pub mod node;
pub mod policy;
pub mod reach;
pub mod run;
pub mod run_store;
mod shared_policy;
mod store;
mod task;
pub mod time;
mod trigger;

pub use async_trait::async_trait;
pub use cancel::{CancelRequest, CancelSignal};
pub use chrono;
pub use chrono_tz;
pub use clock::{Clock, ManualClock, SystemClock, VirtualClock};
pub use error::{Error, ErrorKind, Result, TriggerError};
pub use event::{Event, EventMask, JobFailure};
pub use executor::{DeferredRun, Executor, InstanceTracker, JobRun, RunReporter, SubmitError};
pub use forward::{Reply, StoreOp, StoreReply, StoreWrapper};
pub use history::{
    Retention, RunElsewhere, RunHistory, RunObserver, RunOutcome, RunQuery, RunRecord, StreakChange,
};
pub use inventory;
pub use job::{default_policy, no_args, no_kwargs, Job, JobState};
pub use node::{NodeInfo, NodeRegistry, RunProtocol};
pub use policy::{Catchup, CatchupMode, Overlap, RetryOn, RetryPolicy, RunPolicy};
pub use run::{
    admit, caught_outcome, failure_from_task_error, finish_run, panic_message,
    report_each_run_time, report_failed, report_outcome, run_sync_task,
};
pub use run_store::{
    Changes, Decide, EndReply, EndedAndReleased, Held, JobFate, JobWrites, NewRun, ReleaseBatch,
    ReleasedAndStarted, ReleasedRuns, Renewed, Run, RunEnd, RunKey, RunOrigin, RunRules, RunState,
    RunSteps, RunStore, RunTable, StartCall, StartReply, StepView, Swept, MISSED_LATE,
    SKIPPED_AT_MAX, SKIPPED_BEHIND_BUFFERED,
};
pub use serde_json;
pub use shared_policy::shared_policy;
pub use store::{
    Acquired, Capabilities, ChangeChannel, ChangeListener, ClaimHint, CorruptJob, JobRelease,
    JobStore, Released, StopListening,
};
pub use task::{
    BoxFuture, Task, TaskContext, TaskError, TaskFailure, TaskFn, TaskRegistry, TaskResult,
};
pub use trigger::Trigger;

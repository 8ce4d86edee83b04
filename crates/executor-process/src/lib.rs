//! # apscheduler-executor-process
//!
//! [`ProcessPoolExecutor`], APScheduler's `ProcessPoolExecutor`: runs **named** tasks in
//! worker processes, so a CPU-bound job uses another core and a job that crashes its
//! process (abort, segfault, `SIGKILL`, `exit`) takes only its worker down. Its
//! [`Executor::kind`](apscheduler_core::Executor::kind) is `processpool` and
//! [`runs_in_process`](apscheduler_core::Executor::runs_in_process) is `false`, so the
//! scheduler refuses closure jobs for it at `add_job` (`ErrorKind::Serialization`).
//!
//! ## The line `main` needs
//! Workers are copies of the program itself: the pool re-executes
//! `std::env::current_exe()` with the [`WORKER_ENV`] environment variable set (the way
//! Python's multiprocessing *spawn* re-imports the main module). The program must turn
//! into a worker at the top of `main`, before argument parsing or anything that writes
//! to stdout, with the **same named tasks** the scheduler uses:
//!
//! ```no_run
//! # use apscheduler_core::TaskRegistry;
//! # fn build_registry() -> TaskRegistry { TaskRegistry::new() }
//! # fn main() {
//! let registry = build_registry(); // the same function in parent and worker
//! apscheduler_executor_process::worker_main(&registry); // exits here in a worker
//! # }
//! ```
//!
//! [`worker_main`] returns at once in the parent (the variable is not set) and never
//! returns in a worker. [`run_worker_if_requested`] is the same but hands the exit code
//! back instead of exiting. Building the registry must be cheap and free of side
//! effects, since every worker builds it too. A worker whose `main` does not call the
//! hook is detected: it fails to greet the pool (the run fails with kind
//! [`WORKER_START_KIND`] and a message naming the fix), and a scheduler it starts
//! refuses to start its own process pool, so workers never multiply.
//!
//! ## Example
//! ```no_run
//! use std::sync::Arc;
//!
//! use apscheduler_core::serde_json::json;
//! use apscheduler_core::TaskRegistry;
//! use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
//! use apscheduler_executor_process::ProcessPoolExecutor;
//!
//! fn tasks() -> TaskRegistry {
//!     let mut registry = TaskRegistry::new();
//!     registry.register("crunch", |ctx| {
//!         let n = ctx.arg(0).and_then(|v| v.as_u64()).unwrap_or(1_000_000);
//!         let sum = (0..n).fold(0u64, |acc, i| acc.wrapping_add(i * i));
//!         Ok(json!({ "sum": sum, "pid": std::process::id() }))
//!     });
//!     registry
//! }
//!
//! fn main() {
//!     let registry = tasks();
//!     apscheduler_executor_process::worker_main(&registry);
//!
//!     let scheduler = BackgroundScheduler::from_builder(
//!         Engine::builder().executor("processpool", Arc::new(ProcessPoolExecutor::new(5))),
//!     )
//!     .unwrap();
//!     scheduler.engine().register_tasks(&registry);
//!     scheduler
//!         .add_job(
//!             JobSpec::task("crunch")
//!                 .trigger_args("interval", json!({ "seconds": 3 }))
//!                 .args([json!(50_000_000)])
//!                 .executor("processpool"),
//!         )
//!         .unwrap();
//!     scheduler.start(false).unwrap();
//!     std::thread::sleep(std::time::Duration::from_secs(10));
//!     scheduler.shutdown(true).unwrap();
//! }
//! ```
//!
//! ## Behavior
//! It implements [`Executor`](apscheduler_core::Executor) like the thread pool:
//!
//! - `submit` refuses a closure ([`SubmitError::Refused`](apscheduler_core::SubmitError)
//!   with `ErrorKind::Serialization`), enforces `max_instances` per job id, reports
//!   `submitted`, then queues the run; it never blocks on running jobs.
//! - Up to `max_workers` worker processes (default [`DEFAULT_MAX_WORKERS`], 10, as
//!   APScheduler) are started as queued runs need them and reused while idle; each has
//!   one driver thread in this process (`aps-process-N`) that feeds it one run at a
//!   time and reports the outcomes.
//! - Each run time of a submission is one request to the worker. Arguments, keyword
//!   arguments and return values are `serde_json` values, so anything a task receives
//!   or returns is serializable by construction: there is no "argument cannot be
//!   pickled" failure mode.
//! - Sync tasks run on the worker's main thread; **async tasks are supported**: each
//!   worker runs them on its own current-thread tokio runtime (with time and I/O
//!   drivers), one at a time.
//! - `shutdown(true)` stops accepting, runs the queued runs, then closes each worker's
//!   stdin (it exits with code 0) and reaps it, and joins the driver threads.
//! - `shutdown(false)` stops accepting, reports each queued run as cancelled (one `Err`
//!   outcome of kind [`CANCELLED_KIND`] per run time, then `finished`) and returns at
//!   once. Running jobs finish in the background and are reported (as the thread pool
//!   does, and as APScheduler's pool does); their remaining run times are cancelled;
//!   idle workers exit at once and busy ones right after their job. With
//!   [`ProcessPoolExecutor::with_kill_on_shutdown`] it instead kills every worker
//!   (`SIGKILL`), reports the killed runs as cancelled and returns once they are
//!   reaped, so no worker process outlives the call. Either way, on Linux a worker
//!   also dies with its pool (`PR_SET_PDEATHSIG`), so none is ever orphaned.
//!
//! ## Faults
//! Every fault becomes an `Err` outcome (`EVENT_JOB_ERROR` in a scheduler); the pool
//! replaces a dead worker with a fresh one when the next run needs it, and other jobs
//! keep running.
//!
//! | what happens | outcome kind | message names |
//! |---|---|---|
//! | the task returns an error | `error`, or a [`TaskFailure`](apscheduler_core::TaskFailure)'s kind | its message, `source()` chain in `chain` |
//! | the task panics (caught in the worker, which survives) | `panic` | the panic message |
//! | the worker dies by a signal (`abort`, segfault, `kill -9`) | [`SIGNAL_KIND`] | `signal 6 (SIGABRT)`, `signal 9 (SIGKILL)`, ... and the pid |
//! | the worker exits (`std::process::exit(3)`) | [`EXIT_KIND`] | `exit code 3` |
//! | the run exceeds [`ProcessPoolExecutor::with_timeout`] (the worker is killed) | [`TIMEOUT_KIND`] | the timeout |
//! | the task name is not registered in the worker | [`UNKNOWN_TASK_KIND`] | the name |
//! | a worker cannot be started or does not greet the pool | [`WORKER_START_KIND`] | the cause and the `main` hook |
//! | a worker sends something that is not a reply | [`PROTOCOL_KIND`] | the decoding error |
//! | `shutdown(false)` cancels or kills the run | [`CANCELLED_KIND`] | |
//!
//! ## Protocol
//! Over the worker's stdin and a private copy of its stdout (its stdout proper is
//! pointed at stderr, so `println!` in a task shows up on the parent's stderr instead
//! of corrupting the protocol). Each message is a frame: a 4-byte little-endian length,
//! then a JSON document. JSON, not bincode, because the payloads are
//! `serde_json::Value`s, which only a self-describing format can decode.
//!
//! 1. worker → pool, once: `{"magic": "apscheduler-rs-process-worker", "version": 1, "pid": 4242}`
//! 2. pool → worker, per run time: `{"job_id": "j", "task": "crunch", "time": {"secs": 1705305600, "nanos": 0, "tz": "Europe/Berlin"}, "args": [..], "kwargs": {..}}`
//! 3. worker → pool: `{"ok": <return value>}` or `{"err": {"kind": "..", "message": "..", "chain": [..]}}`
//!
//! The worker exits with code 0 when its stdin is closed.
//!
//! ## Platform
//! Unix only (Linux is what is tested): it relies on pipes, `poll(2)` and exit
//! signals.
//!
//! ## Feature flags
//! None.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

#[cfg(not(unix))]
compile_error!("apscheduler-executor-process supports Unix platforms only");

mod config;
pub use config::{register, ProcessPoolConfig};
mod pool;
mod protocol;
mod worker;

pub use pool::{ProcessPoolExecutor, DEFAULT_MAX_WORKERS, DEFAULT_START_TIMEOUT};
pub use worker::{is_worker_process, run_worker_if_requested, worker_main, WORKER_ENV};

/// The [`JobFailure::kind`](apscheduler_core::JobFailure) of a run cancelled by
/// `shutdown(false)` (queued, or killed with
/// [`ProcessPoolExecutor::with_kill_on_shutdown`]).
pub const CANCELLED_KIND: &str = "cancelled";
/// The failure kind of a run whose worker was killed by a signal it did not send itself
/// through the pool (abort, segfault, `kill -9`).
pub const SIGNAL_KIND: &str = "signal";
/// The failure kind of a run whose worker exited (`std::process::exit`).
pub const EXIT_KIND: &str = "exit";
/// The failure kind of a run that exceeded the pool's timeout.
pub const TIMEOUT_KIND: &str = "timeout";
/// The failure kind of a run whose task name the worker does not know.
pub const UNKNOWN_TASK_KIND: &str = "unknown-task";
/// The failure kind of a run for which no worker could be started.
pub const WORKER_START_KIND: &str = "worker-start";
/// The failure kind of a run whose worker sent an undecodable reply.
pub const PROTOCOL_KIND: &str = "protocol";

//! The executor conformance suite.
//!
//! Every executor proves the [`Executor`] contract (see its `# Behavior` section and
//! [`RunReporter`]'s) with a few lines in its `tests/conformance.rs`:
//!
//! ```ignore
//! #[test]
//! fn conformance() {
//!     apscheduler_testkit::executor::run_all(|| Arc::new(MyExecutor::new(4)));
//! }
//! ```
//!
//! `make` must return a fresh, **not yet started** executor with room for **at least
//! two** concurrent runs (several checks hold two jobs running at once). Each check
//! starts it with a [`RecordingReporter`], which records every callback in order, and
//! waits on a condition variable (never a bare sleep) with a timeout of
//! [`TIMEOUT`]; a failing check panics with the callbacks recorded so far.
//!
//! ## Tasks, and what a process executor must register
//! Every check builds its [`JobRun`]s through a [`TaskSet`], so each run carries both
//! the resolved [`TaskFn`] (for in-process executors) and its registered name in
//! [`JobRun::task_name`] (for executors that run tasks elsewhere). The tasks only read
//! their JSON arguments and talk to the test process over loopback TCP, so they work
//! unchanged in a worker process. An executor that resolves tasks by name (a process
//! pool) must make the suite's tasks available in its workers, e.g. with
//! [`register_tasks`] on the worker's [`TaskRegistry`]:
//!
//! | name | does |
//! |---|---|
//! | [`ECHO`] | returns `{"job_id", "run_time" (RFC 3339), "args", "kwargs"}` of its context |
//! | [`FAIL`] | returns an error: message `args[0]`, its `source()` chain `args[1..]` |
//! | [`FAIL_KIND`] | returns a `TaskFailure` of kind `args[0]` with message `args[1]` |
//! | [`PANIC`] | panics with the message `args[0]` |
//! | [`BLOCK`] | connects to the [`Gate`] at address `args[0]` and waits until it is released; returns `"released"` |
//! | [`NOOP`] | returns `null` |
//!
//! ## What the suite requires beyond the trait's wording
//! - A failed task's [`JobFailure`] carries the error's `Display` as `message` and its
//!   `source()` chain in `chain`; a plain error has kind `error`, a `TaskFailure` keeps
//!   its own kind; a panic has kind `panic` and the panic message.
//! - A task sees `scheduled_run_time` in the run time's own timezone.
//! - `shutdown(true)` also runs the submissions still queued (it drops nothing).
//! - After `shutdown(false)` every accepted submission is still accounted for: it either
//!   runs (`Ok`) or gets an `Err` outcome per run time, then `finished`.
//! - `submit` before `start` or after `shutdown` fails with
//!   [`SubmitError::NotRunning`], and a refused submission reports nothing.
//!
//! ## Where the parts live
//! - `tasks`: the suite's tasks ([`register_tasks`], [`TaskSet`], [`run_time`]);
//! - `gate`: [`Gate`], which holds [`BLOCK`] tasks;
//! - `recording`: [`RecordingReporter`] and [`assert_single_submission`];
//! - `checks`: [`run_all`] and the `check_*` functions.
//!
//! [`Executor`]: apscheduler_core::Executor
//! [`RunReporter`]: apscheduler_core::RunReporter
//! [`JobRun`]: apscheduler_core::JobRun
//! [`JobRun::task_name`]: apscheduler_core::JobRun::task_name
//! [`TaskFn`]: apscheduler_core::TaskFn
//! [`TaskRegistry`]: apscheduler_core::TaskRegistry
//! [`JobFailure`]: apscheduler_core::JobFailure
//! [`SubmitError::NotRunning`]: apscheduler_core::SubmitError::NotRunning

use std::time::Duration;

mod checks;
mod gate;
mod recording;
mod tasks;

pub use checks::{
    check_callback_order, check_max_instances_one, check_max_instances_two,
    check_not_running_before_start, check_panic, check_return_value, check_run_times_in_order,
    check_shutdown_no_wait, check_shutdown_no_wait_accounts_for_queued, check_shutdown_wait,
    check_submit_after_shutdown, check_task_error, run_all,
};
pub use gate::Gate;
pub use recording::{assert_single_submission, Record, RecordingReporter};
pub use tasks::{register_tasks, run_time, TaskSet, BLOCK, ECHO, FAIL, FAIL_KIND, NOOP, PANIC};

/// How long a check waits for a callback (or a task to start) before failing.
pub const TIMEOUT: Duration = Duration::from_secs(5);

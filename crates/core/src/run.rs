//! Running a task and reporting its outcomes: the one implementation every executor uses.
//!
//! An executor decides *where* a run happens (a pool thread, a worker process, a tokio
//! task, the caller's thread); what happens around it is the same everywhere and lives
//! here: a sync task runs through [`run_sync_task`] (errors keep a
//! [`TaskFailure`](crate::TaskFailure)'s kind, panics become kind `panic`), each run
//! time's result goes to the reporter through [`report_outcome`] (or
//! [`report_each_run_time`] for the whole submission), and [`finish_run`] frees the
//! instance slot before reporting `finished`, as the [`RunReporter`] contract requires.
//! A reporter that panics is logged and never unwinds into the executor's worker.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use chrono::DateTime;
use chrono_tz::Tz;
use serde_json::Value;

use crate::event::JobFailure;
use crate::executor::{InstanceTracker, JobRun, RunReporter, SubmitError};
use crate::task::{TaskContext, TaskFn, TaskResult};

/// The [`JobFailure::kind`] of a plain task error (one that is not a `TaskFailure`).
pub const ERROR_KIND: &str = "error";
/// The [`JobFailure::kind`] of a task that panicked.
pub const PANIC_KIND: &str = "panic";
/// The [`JobFailure::kind`] of an async task handed to an executor that runs only sync
/// tasks.
pub const REFUSED_KIND: &str = "refused";

impl JobRun {
    /// The run history's id of `run_time`'s run, when the scheduler records history.
    pub fn run_id(&self, run_time: DateTime<Tz>) -> Option<&Arc<str>> {
        let i = self.run_times.iter().position(|t| *t == run_time)?;
        self.run_ids.get(i)
    }

    /// The fence of `run_time`'s run, when the scheduler keeps leased runs.
    pub fn fence(&self, run_time: DateTime<Tz>) -> Option<u64> {
        let i = self.run_times.iter().position(|t| *t == run_time)?;
        self.fences.get(i).copied()
    }

    /// What the task receives for `run_time`: this run's job id and arguments.
    pub fn context(&self, run_time: DateTime<Tz>) -> TaskContext {
        TaskContext {
            fence: self.fence(run_time),
            job_id: self.job_id.clone(),
            scheduled_run_time: run_time,
            run_id: self.run_id(run_time).cloned(),
            args: self.args.clone(),
            kwargs: self.kwargs.clone(),
            attempt: self.attempt,
            cancel: self.cancel.clone(),
        }
    }
}

/// Runs a sync task once with panics caught, turning both errors and panics into
/// [`JobFailure`]s. An async task is refused (kind `refused`): it needs the async
/// executor.
pub fn run_sync_task(task: &TaskFn, ctx: &TaskContext) -> Result<Value, JobFailure> {
    match task {
        TaskFn::Sync(f) => caught_outcome(catch_unwind(AssertUnwindSafe(|| f(ctx)))),
        TaskFn::Async(_) => Err(JobFailure::new(
            REFUSED_KIND,
            "async task submitted to a thread executor; use the async executor",
        )),
    }
}

/// The outcome of a task run under `catch_unwind` (or joined from a task that may have
/// panicked): the value, the task's error, or the panic, as one result.
pub fn caught_outcome(caught: std::thread::Result<TaskResult>) -> Result<Value, JobFailure> {
    match caught {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(failure_from_task_error(e.as_ref())),
        // `&*payload`, not `payload.as_ref()`: the latter can hand over the `Box` itself
        // as the `Any`, and the message would be lost.
        Err(payload) => Err(JobFailure::new(PANIC_KIND, panic_message(&*payload))),
    }
}

/// A task's error as a [`JobFailure`]: a [`crate::TaskFailure`] keeps its kind, any
/// other error has kind `error`; the source chain is kept.
pub fn failure_from_task_error(
    err: &(dyn std::error::Error + Send + Sync + 'static),
) -> JobFailure {
    match err.downcast_ref::<crate::task::TaskFailure>() {
        Some(f) => JobFailure {
            detail: f.detail.clone().map(Box::new),
            ..JobFailure::from_error(f.kind.clone(), err)
        },
        None => JobFailure::from_error(ERROR_KIND, err),
    }
}

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Admits a submission: takes an instance slot for `run` in `tracker` (refusing with
/// [`SubmitError::MaxInstances`] when `max_instances` are taken) and reports
/// `submitted`. If the reporter panics, the slot is given back before the panic goes on.
///
/// # Errors
/// [`SubmitError::MaxInstances`].
pub fn admit(
    tracker: &InstanceTracker,
    reporter: &dyn RunReporter,
    run: &JobRun,
) -> Result<(), SubmitError> {
    /// Gives the slot back when dropped: only on unwind, forgotten otherwise.
    struct SlotGuard<'a>(&'a InstanceTracker, &'a str);
    impl Drop for SlotGuard<'_> {
        fn drop(&mut self) {
            self.0.release(self.1);
        }
    }
    if !tracker.try_acquire(&run.job_id, run.max_instances) {
        return Err(SubmitError::MaxInstances);
    }
    let slot = SlotGuard(tracker, &run.job_id);
    reporter.submitted(run);
    std::mem::forget(slot);
    Ok(())
}

/// Reports one run time's result to `reporter` (with a debug log line).
pub fn report_outcome(
    reporter: &dyn RunReporter,
    run: &JobRun,
    run_time: DateTime<Tz>,
    result: Result<Value, JobFailure>,
) {
    match &result {
        Ok(_) => {
            tracing::debug!(target: "apscheduler", job_id = %run.job_id, %run_time, "job executed successfully")
        }
        Err(failure) => {
            tracing::debug!(target: "apscheduler", job_id = %run.job_id, %run_time, %failure, "job raised an error")
        }
    }
    guard_reporter(run, || reporter.outcome(run, run_time, result));
}

/// Runs `run_one` for each of `run`'s run times in order and reports each result.
///
/// An executor that must stop part-way (a shutdown) returns its cancellation failure
/// from `run_one` for the remaining run times, so each one is still reported.
pub fn report_each_run_time(
    reporter: &dyn RunReporter,
    run: &JobRun,
    mut run_one: impl FnMut(DateTime<Tz>) -> Result<Value, JobFailure>,
) {
    for &run_time in &run.run_times {
        tracing::debug!(target: "apscheduler", job_id = %run.job_id, %run_time, "running job");
        let result = run_one(run_time);
        report_outcome(reporter, run, run_time, result);
    }
}

/// Reports a run that will not (or no longer) run: `failure` for each run time.
pub fn report_failed(reporter: &dyn RunReporter, run: &JobRun, failure: &JobFailure) {
    for &run_time in &run.run_times {
        report_outcome(reporter, run, run_time, Err(failure.clone()));
    }
}

/// Ends a submission: frees its instance slot in `tracker`, then reports `finished`.
pub fn finish_run(reporter: &dyn RunReporter, run: &JobRun, tracker: &InstanceTracker) {
    tracker.release(&run.job_id);
    guard_reporter(run, || reporter.finished(run));
}

/// Calls the reporter, logging a panic instead of unwinding into the executor.
fn guard_reporter(run: &JobRun, call: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(call)) {
        crate::log_error!(
            target: "apscheduler",
            job_id = %run.job_id,
            panic = %panic_message(&*payload),
            "run reporter panicked"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskFailure;

    fn ctx() -> TaskContext {
        TaskContext {
            fence: None,
            job_id: "job".into(),
            scheduled_run_time: chrono::Utc::now().with_timezone(&chrono_tz::UTC),
            run_id: None,
            args: Arc::new(Vec::new()),
            kwargs: Arc::new(serde_json::Map::new()),
            attempt: 1,
            cancel: Default::default(),
        }
    }

    #[test]
    fn a_task_failure_keeps_its_kind_and_a_panic_its_message() {
        let failing = TaskFn::Sync(Arc::new(|_: &TaskContext| {
            Err(Box::new(TaskFailure::new("Timeout", "took too long")) as _)
        }));
        let failure = run_sync_task(&failing, &ctx()).unwrap_err();
        assert_eq!(
            (failure.kind.as_str(), failure.message.as_str()),
            ("Timeout", "took too long")
        );

        let plain = TaskFn::Sync(Arc::new(|_: &TaskContext| Err("no route".into())));
        assert_eq!(run_sync_task(&plain, &ctx()).unwrap_err().kind, ERROR_KIND);

        let panicking = TaskFn::Sync(Arc::new(|_: &TaskContext| panic!("boom {}", 1)));
        let failure = run_sync_task(&panicking, &ctx()).unwrap_err();
        assert_eq!(
            (failure.kind.as_str(), failure.message.as_str()),
            (PANIC_KIND, "boom 1")
        );
    }
}

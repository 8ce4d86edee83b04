//! The inline ("debug") executor: runs each job in the thread that submits it.

use std::sync::{Arc, Mutex};

use apscheduler_core::{
    finish_run, report_each_run_time, run_sync_task, Error, Executor, InstanceTracker, JobRun,
    RunReporter, SubmitError,
};

/// Runs jobs synchronously inside `submit`, in the scheduler's own thread
/// (APScheduler's `DebugExecutor`). Useful in tests and for jobs that must never run
/// concurrently with the scheduler loop; a slow job delays the loop.
#[derive(Default)]
pub struct InlineExecutor {
    reporter: Mutex<Option<Arc<dyn RunReporter>>>,
    instances: InstanceTracker,
}

impl std::fmt::Debug for InlineExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineExecutor")
            .field("in_flight", &self.instances.total())
            .finish()
    }
}

impl InlineExecutor {
    /// A new inline executor.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Executor for InlineExecutor {
    fn start(&self, reporter: Arc<dyn RunReporter>) -> Result<(), Error> {
        *self.reporter.lock().unwrap_or_else(|e| e.into_inner()) = Some(reporter);
        Ok(())
    }

    fn submit(&self, run: JobRun) -> Result<(), SubmitError> {
        let reporter = self
            .reporter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(SubmitError::NotRunning)?;
        if !self.instances.try_acquire(&run.job_id, run.max_instances) {
            return Err(SubmitError::MaxInstances);
        }
        reporter.submitted(&run);
        report_each_run_time(&*reporter, &run, |run_time| {
            run_sync_task(&run.task, &run.context(run_time))
        });
        finish_run(&*reporter, &run, &self.instances);
        Ok(())
    }

    fn shutdown(&self, _wait: bool) {
        *self.reporter.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn instances(&self, job_id: &str) -> usize {
        self.instances.count(job_id)
    }

    fn kind(&self) -> &'static str {
        "inline"
    }
}

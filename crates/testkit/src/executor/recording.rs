//! [`RecordingReporter`], which records every [`RunReporter`] callback in order, and
//! the assertion on one submission's callbacks.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use apscheduler_core::{Executor, JobFailure, JobRun, RunReporter};
use chrono::DateTime;
use chrono_tz::Tz;
use serde_json::Value;

use super::TIMEOUT;

/// One [`RunReporter`] callback, as recorded by [`RecordingReporter`].
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// [`RunReporter::submitted`].
    Submitted {
        /// The job's id.
        job_id: Arc<str>,
    },
    /// [`RunReporter::outcome`].
    Outcome {
        /// The job's id.
        job_id: Arc<str>,
        /// The run time the outcome is for.
        run_time: DateTime<Tz>,
        /// The task's return value or failure.
        result: Result<Value, JobFailure>,
    },
    /// [`RunReporter::finished`].
    Finished {
        /// The job's id.
        job_id: Arc<str>,
        /// `executor.instances(job_id)` as seen from inside the callback, when an
        /// executor is [attached](RecordingReporter::attach).
        instances: Option<usize>,
    },
}

impl Record {
    /// The job id the record is about.
    pub fn job_id(&self) -> &str {
        match self {
            Record::Submitted { job_id }
            | Record::Outcome { job_id, .. }
            | Record::Finished { job_id, .. } => job_id,
        }
    }

    /// Whether this is a [`Record::Finished`].
    pub fn is_finished(&self) -> bool {
        matches!(self, Record::Finished { .. })
    }
}

/// A [`RunReporter`] that records every callback in order and lets a test wait for a
/// condition on them.
#[derive(Default)]
pub struct RecordingReporter {
    records: Mutex<Vec<Record>>,
    changed: Condvar,
    executor: OnceLock<Weak<dyn Executor>>,
}

impl fmt::Debug for RecordingReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingReporter")
            .field("records", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl RecordingReporter {
    /// An empty reporter.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Makes [`Record::Finished`] capture `executor.instances(job_id)` (held weakly).
    pub fn attach(&self, executor: &Arc<dyn Executor>) {
        let _ = self.executor.set(Arc::downgrade(executor));
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, record: Record) {
        self.lock().push(record);
        self.changed.notify_all();
    }

    /// A copy of everything recorded so far.
    pub fn records(&self) -> Vec<Record> {
        self.lock().clone()
    }

    /// Waits until `condition` holds on the records and returns them.
    ///
    /// # Panics
    /// It did not within [`TIMEOUT`]; the message names `what` and lists the records.
    pub fn wait_until(
        &self,
        what: &str,
        mut condition: impl FnMut(&[Record]) -> bool,
    ) -> Vec<Record> {
        let deadline = Instant::now() + TIMEOUT;
        let mut records = self.lock();
        loop {
            if condition(&records) {
                return records.clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out after {TIMEOUT:?} waiting for {what}; records: {:#?}",
                *records
            );
            records = self
                .changed
                .wait_timeout(records, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until `n` submissions in total have finished and returns the records.
    ///
    /// # Panics
    /// They did not within [`TIMEOUT`].
    pub fn wait_finished(&self, n: usize) -> Vec<Record> {
        self.wait_until(&format!("{n} finished submissions"), |records| {
            records.iter().filter(|r| r.is_finished()).count() >= n
        })
    }
}

impl RunReporter for RecordingReporter {
    fn submitted(&self, run: &JobRun) {
        self.push(Record::Submitted {
            job_id: run.job_id.clone(),
        });
    }

    fn outcome(&self, run: &JobRun, run_time: DateTime<Tz>, result: Result<Value, JobFailure>) {
        self.push(Record::Outcome {
            job_id: run.job_id.clone(),
            run_time,
            result,
        });
    }

    fn finished(&self, run: &JobRun) {
        let instances = self
            .executor
            .get()
            .and_then(Weak::upgrade)
            .map(|executor| executor.instances(&run.job_id));
        self.push(Record::Finished {
            job_id: run.job_id.clone(),
            instances,
        });
    }
}

/// Asserts that the records of `job_id` (a job submitted exactly once) are
/// `submitted`, one outcome per run time in `run_times` order, then `finished` with
/// the instance released; returns the outcomes in order.
///
/// # Panics
/// The sequence is anything else.
pub fn assert_single_submission(
    records: &[Record],
    job_id: &str,
    run_times: &[DateTime<Tz>],
) -> Vec<Result<Value, JobFailure>> {
    let own: Vec<&Record> = records.iter().filter(|r| r.job_id() == job_id).collect();
    let context = || format!("job {job_id:?}: records {own:#?}");
    assert_eq!(
        own.len(),
        run_times.len() + 2,
        "expected submitted, {} outcome(s), finished; {}",
        run_times.len(),
        context()
    );
    assert!(
        matches!(own[0], Record::Submitted { .. }),
        "the first callback must be submitted; {}",
        context()
    );
    let mut results = Vec::with_capacity(run_times.len());
    for (i, expected) in run_times.iter().enumerate() {
        match own[i + 1] {
            Record::Outcome {
                run_time, result, ..
            } => {
                assert_eq!(
                    run_time,
                    expected,
                    "outcome {i} is for the wrong run time; {}",
                    context()
                );
                results.push(result.clone());
            }
            other => panic!(
                "callback {} should be outcome {i}, got {other:?}; {}",
                i + 1,
                context()
            ),
        }
    }
    match own[own.len() - 1] {
        Record::Finished { instances, .. } => assert!(
            matches!(instances, None | Some(0)),
            "finished must come after the instance is released, but instances() was {instances:?}; {}",
            context()
        ),
        other => panic!("the last callback must be finished, got {other:?}; {}", context()),
    }
    results
}

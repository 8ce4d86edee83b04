//! The executor conformance suite, run against [`RayonExecutor`].

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::Executor;
use apscheduler_executor_rayon::RayonExecutor;
use apscheduler_testkit::executor::{self as suite, Gate, RecordingReporter, TaskSet, BLOCK};

#[test]
fn conformance() {
    suite::run_all(|| Arc::new(RayonExecutor::with_threads(4)));
}

#[test]
fn conformance_two_threads() {
    suite::run_all(|| Arc::new(RayonExecutor::with_threads(2)));
}

/// One thread per core: a third CPU-bound job waits for a free core instead of
/// oversubscribing them.
#[test]
fn runs_no_more_jobs_at_once_than_it_has_threads() {
    let executor = RayonExecutor::with_threads(2);
    let reporter = RecordingReporter::new();
    executor.start(reporter.clone()).unwrap();
    let tasks = TaskSet::new();
    let gate = Gate::new();
    for id in ["a", "b", "c"] {
        let mut run = tasks.job_run(id, BLOCK);
        run.args = Arc::new(vec![gate.arg()]);
        executor.submit(run).unwrap();
    }
    gate.wait_started(2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(gate.started(), 2, "the third run must wait for a thread");
    gate.release();
    reporter.wait_finished(3);
    executor.shutdown(true);
}

#[test]
fn restarts_after_shutdown_and_refuses_a_double_start() {
    let executor = RayonExecutor::with_threads(1);
    let reporter = RecordingReporter::new();
    executor.start(reporter.clone()).unwrap();
    assert!(executor.start(reporter.clone()).is_err());
    executor.shutdown(true);
    executor.start(reporter).unwrap();
    executor.shutdown(true);
}

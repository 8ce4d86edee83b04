//! The checks, each on a fresh executor started by a `Harness`.

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use apscheduler_core::{Executor, JobRun, SubmitError};
use serde_json::{json, Value};

use super::{
    assert_single_submission, run_time, Gate, Record, RecordingReporter, TaskSet, BLOCK, ECHO,
    FAIL, FAIL_KIND, NOOP, PANIC, TIMEOUT,
};

/// A started executor with its reporter and task set.
struct Harness {
    executor: Arc<dyn Executor>,
    reporter: Arc<RecordingReporter>,
    tasks: TaskSet,
    shut_down: bool,
}

impl Harness {
    fn start(executor: Arc<dyn Executor>) -> Self {
        let reporter = RecordingReporter::new();
        reporter.attach(&executor);
        executor
            .start(reporter.clone())
            .unwrap_or_else(|e| panic!("{} executor failed to start: {e}", executor.kind()));
        Harness {
            executor,
            reporter,
            tasks: TaskSet::new(),
            shut_down: false,
        }
    }

    fn submit(&self, run: JobRun) {
        let job_id = run.job_id.clone();
        if let Err(e) = self.executor.submit(run) {
            panic!("submitting {job_id:?} was refused: {e}");
        }
    }

    /// Calls `shutdown(wait)` on another thread and returns the records as they were
    /// when it returned, failing if it does not return within [`TIMEOUT`].
    fn shutdown_in_background(&mut self, wait: bool) -> mpsc::Receiver<Vec<Record>> {
        self.shut_down = true;
        let (tx, rx) = mpsc::channel();
        let executor = self.executor.clone();
        let reporter = self.reporter.clone();
        thread::Builder::new()
            .name("testkit-shutdown".to_owned())
            .spawn(move || {
                executor.shutdown(wait);
                let _ = tx.send(reporter.records());
            })
            .expect("spawn the shutdown thread");
        rx
    }

    fn shutdown(&mut self, wait: bool) -> Vec<Record> {
        self.shutdown_in_background(wait)
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("shutdown({wait}) did not return within {TIMEOUT:?}"))
    }

    fn assert_refused(&self, run: JobRun, expected: &str) {
        let job_id = run.job_id.clone();
        match (self.executor.submit(run), expected) {
            (Err(SubmitError::MaxInstances), "MaxInstances")
            | (Err(SubmitError::NotRunning), "NotRunning") => {}
            (other, _) => {
                panic!("submitting {job_id:?}: expected SubmitError::{expected}, got {other:?}")
            }
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if !self.shut_down {
            // While unwinding from a failed check, do not wait on possibly stuck jobs.
            self.executor.shutdown(!thread::panicking());
        }
    }
}

fn strings(values: &[&str]) -> Arc<Vec<Value>> {
    Arc::new(values.iter().map(|s| json!(s)).collect())
}

/// Runs every check, each on a fresh executor from `make` (not started, at least two
/// concurrent runs).
pub fn run_all(make: impl Fn() -> Arc<dyn Executor>) {
    check_not_running_before_start(make());
    check_return_value(make());
    check_run_times_in_order(make());
    check_callback_order(make());
    check_task_error(make());
    check_panic(make());
    check_max_instances_one(make());
    check_max_instances_two(make());
    check_shutdown_wait(make());
    check_shutdown_no_wait(make());
    check_shutdown_no_wait_accounts_for_queued(make());
    check_submit_after_shutdown(make());
}

/// `submit` before `start` is refused with [`SubmitError::NotRunning`].
pub fn check_not_running_before_start(executor: Arc<dyn Executor>) {
    assert!(!executor.kind().is_empty(), "kind() must name the executor");
    let tasks = TaskSet::new();
    match executor.submit(tasks.job_run("early", NOOP)) {
        Err(SubmitError::NotRunning) => {}
        other => panic!("submit before start: expected NotRunning, got {other:?}"),
    }
    assert_eq!(
        executor.instances("early"),
        0,
        "a refused submission takes no slot"
    );
    // Starting afterwards works, and the refused run never shows up.
    let h = Harness::start(executor);
    h.submit(h.tasks.job_run("later", NOOP));
    let records = h.reporter.wait_finished(1);
    assert!(
        records.iter().all(|r| r.job_id() == "later"),
        "the refused submission must report nothing: {records:#?}"
    );
}

/// A task's return value reaches `outcome` as `Ok(value)`; the task sees its job id,
/// run time (in its timezone), args and kwargs.
pub fn check_return_value(executor: Arc<dyn Executor>) {
    let h = Harness::start(executor);
    let mut run = h.tasks.job_run("echo", ECHO);
    run.args = Arc::new(vec![json!(1), json!("two"), json!({"three": [3]})]);
    run.kwargs = Arc::new(
        json!({"k": "v", "n": null})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    h.submit(run);
    let records = h.reporter.wait_finished(1);
    let results = assert_single_submission(&records, "echo", &[run_time(0)]);
    assert_eq!(
        results[0],
        Ok(json!({
            "job_id": "echo",
            "run_time": run_time(0).to_rfc3339(),
            "args": [1, "two", {"three": [3]}],
            "kwargs": {"k": "v", "n": null},
        }))
    );
}

/// Several run times in one submission each get an outcome, in run-time order, each
/// run seeing its own scheduled run time.
pub fn check_run_times_in_order(executor: Arc<dyn Executor>) {
    let h = Harness::start(executor);
    let times: Vec<_> = (0..4).map(run_time).collect();
    let mut run = h.tasks.job_run("catch-up", ECHO);
    run.run_times = times.clone();
    h.submit(run);
    let records = h.reporter.wait_finished(1);
    let results = assert_single_submission(&records, "catch-up", &times);
    for (result, time) in results.iter().zip(&times) {
        let value = result.as_ref().expect("echo succeeds");
        assert_eq!(value["run_time"], json!(time.to_rfc3339()));
    }
}

/// Many concurrent submissions: each gets `submitted` first, its outcomes in order,
/// and `finished` last with its instance released.
pub fn check_callback_order(executor: Arc<dyn Executor>) {
    let h = Harness::start(executor);
    let times = [run_time(0), run_time(1)];
    let jobs = 32;
    for i in 0..jobs {
        let mut run = h
            .tasks
            .job_run(&format!("job-{i}"), if i % 2 == 0 { ECHO } else { NOOP });
        run.run_times = times.to_vec();
        h.submit(run);
    }
    let records = h.reporter.wait_finished(jobs);
    for i in 0..jobs {
        let job_id = format!("job-{i}");
        for result in assert_single_submission(&records, &job_id, &times) {
            assert!(result.is_ok(), "{job_id}: {result:?}");
        }
        assert_eq!(h.executor.instances(&job_id), 0);
    }
}

/// A task error becomes `Err` carrying the error's message and its `source()` chain, with
/// kind `error`; a `TaskFailure` keeps its own kind.
pub fn check_task_error(executor: Arc<dyn Executor>) {
    let h = Harness::start(executor);
    let mut run = h.tasks.job_run("failing", FAIL);
    run.args = strings(&["could not sync", "connection refused", "host unreachable"]);
    h.submit(run);
    let mut run = h.tasks.job_run("typed", FAIL_KIND);
    run.args = strings(&["Timeout", "took longer than 30 s"]);
    h.submit(run);
    let records = h.reporter.wait_finished(2);
    let results = assert_single_submission(&records, "failing", &[run_time(0)]);
    let failure = results[0].clone().expect_err("the task failed");
    assert_eq!(
        failure.kind, "error",
        "a plain error has kind `error`: {failure:?}"
    );
    assert_eq!(failure.message, "could not sync");
    assert_eq!(
        failure.chain,
        vec!["connection refused", "host unreachable"]
    );
    let results = assert_single_submission(&records, "typed", &[run_time(0)]);
    let failure = results[0].clone().expect_err("the task failed");
    assert_eq!(
        (failure.kind.as_str(), failure.message.as_str()),
        ("Timeout", "took longer than 30 s"),
        "a TaskFailure keeps its kind: {failure:?}"
    );
}

/// A panic becomes `Err` of kind `panic` with the panic message, for each run time;
/// the executor keeps running jobs afterwards.
pub fn check_panic(executor: Arc<dyn Executor>) {
    let h = Harness::start(executor);
    let times = [run_time(0), run_time(1)];
    let n = 8;
    for i in 0..n {
        let mut run = h.tasks.job_run(&format!("panicky-{i}"), PANIC);
        run.args = Arc::new(vec![json!(format!("kaboom {i}"))]);
        run.run_times = times.to_vec();
        h.submit(run);
    }
    let records = h.reporter.wait_finished(n);
    for i in 0..n {
        for result in assert_single_submission(&records, &format!("panicky-{i}"), &times) {
            let failure = result.expect_err("the task panicked");
            assert_eq!(failure.kind, "panic");
            assert_eq!(failure.message, format!("kaboom {i}"));
        }
    }
    // Every worker that ran a panicking task still works.
    for i in 0..n {
        h.submit(h.tasks.job_run(&format!("after-{i}"), ECHO));
    }
    let records = h.reporter.wait_finished(2 * n);
    for i in 0..n {
        let results = assert_single_submission(&records, &format!("after-{i}"), &[run_time(0)]);
        assert!(results[0].is_ok(), "{:?}", results[0]);
    }
}

/// With `max_instances` 1, a second submission while the first runs is refused with
/// [`SubmitError::MaxInstances`] and reports nothing; `submitted` precedes the task's
/// start; `instances()` counts per job id; the slot is free again after `finished`.
pub fn check_max_instances_one(executor: Arc<dyn Executor>) {
    let h = Harness::start(executor);
    let gate = Gate::new();
    let mut run = h.tasks.job_run("single", BLOCK);
    run.args = Arc::new(vec![gate.arg()]);
    h.submit(run.clone());
    gate.wait_started(1);
    let records = h.reporter.records();
    assert_eq!(
        records,
        vec![Record::Submitted {
            job_id: "single".into()
        }],
        "submitted must be reported before the task starts"
    );
    assert_eq!(h.executor.instances("single"), 1);
    assert_eq!(h.executor.instances("other"), 0);

    h.assert_refused(run, "MaxInstances");
    assert_eq!(h.executor.instances("single"), 1);

    // The limit is per job id: another job still runs meanwhile.
    h.submit(h.tasks.job_run("other", ECHO));
    h.reporter.wait_finished(1);

    gate.release();
    let records = h.reporter.wait_finished(2);
    assert_eq!(
        records
            .iter()
            .filter(|r| matches!(r, Record::Submitted { job_id } if &**job_id == "single"))
            .count(),
        1,
        "the refused submission must report nothing: {records:#?}"
    );
    let results = assert_single_submission(&records, "single", &[run_time(0)]);
    assert_eq!(results[0], Ok(json!("released")));
    assert_eq!(h.executor.instances("single"), 0);

    // The slot is free again.
    h.submit(h.tasks.job_run("single", NOOP));
    h.reporter.wait_finished(3);
}

/// With `max_instances` 2, two submissions of one job run concurrently and a third is
/// refused; `instances()` counts both.
pub fn check_max_instances_two(executor: Arc<dyn Executor>) {
    let h = Harness::start(executor);
    let gate = Gate::new();
    let mut run = h.tasks.job_run("pair", BLOCK);
    run.args = Arc::new(vec![gate.arg()]);
    run.max_instances = 2;
    h.submit(run.clone());
    h.submit(run.clone());
    // Both blocked at once: they run concurrently.
    gate.wait_started(2);
    assert_eq!(h.executor.instances("pair"), 2);
    h.assert_refused(run, "MaxInstances");
    assert_eq!(h.executor.instances("pair"), 2);

    gate.release();
    let records = h.reporter.wait_finished(2);
    let own: Vec<&Record> = records.iter().filter(|r| r.job_id() == "pair").collect();
    assert_eq!(
        own.len(),
        6,
        "two submissions, two outcomes, two finished: {own:#?}"
    );
    assert!(matches!(own[0], Record::Submitted { .. }));
    assert!(matches!(own[1], Record::Submitted { .. }));
    for r in &own {
        if let Record::Outcome { result, .. } = r {
            assert_eq!(result, &Ok(json!("released")));
        }
    }
    assert!(matches!(
        own[5],
        Record::Finished {
            instances: None | Some(0),
            ..
        }
    ));
    assert_eq!(h.executor.instances("pair"), 0);
}

/// `shutdown(true)` returns only after the running job (and any queued one) has
/// finished; afterwards `submit` is refused.
pub fn check_shutdown_wait(executor: Arc<dyn Executor>) {
    let mut h = Harness::start(executor);
    let gate = Gate::new();
    let mut run = h.tasks.job_run("slow", BLOCK);
    run.args = Arc::new(vec![gate.arg()]);
    h.submit(run);
    gate.wait_started(1);
    let queued = 8;
    for i in 0..queued {
        h.submit(h.tasks.job_run(&format!("queued-{i}"), ECHO));
    }

    let returned = h.shutdown_in_background(true);
    // A short look for the failure mode; the deterministic check is the snapshot below.
    assert!(
        returned.recv_timeout(Duration::from_millis(50)).is_err(),
        "shutdown(true) returned while a job was still running"
    );
    gate.release();
    let records = returned
        .recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| panic!("shutdown(true) did not return within {TIMEOUT:?}"));
    // Everything had finished by the time shutdown returned.
    let results = assert_single_submission(&records, "slow", &[run_time(0)]);
    assert_eq!(results[0], Ok(json!("released")));
    for i in 0..queued {
        let results = assert_single_submission(&records, &format!("queued-{i}"), &[run_time(0)]);
        assert!(
            results[0].is_ok(),
            "shutdown(true) must run queued jobs: {:?}",
            results[0]
        );
    }
    assert_eq!(h.executor.instances("slow"), 0);
    h.assert_refused(h.tasks.job_run("late", NOOP), "NotRunning");
}

/// `shutdown(false)` returns while a job is still running; the job then finishes in
/// the background and is reported; `submit` is refused.
pub fn check_shutdown_no_wait(executor: Arc<dyn Executor>) {
    let mut h = Harness::start(executor);
    let gate = Gate::new();
    let mut run = h.tasks.job_run("lingering", BLOCK);
    run.args = Arc::new(vec![gate.arg()]);
    h.submit(run);
    gate.wait_started(1);

    let records = h.shutdown(false);
    assert!(
        !records.iter().any(Record::is_finished),
        "the blocked job cannot have finished: {records:#?}"
    );
    assert_eq!(h.executor.instances("lingering"), 1);
    h.assert_refused(h.tasks.job_run("late", NOOP), "NotRunning");

    gate.release();
    let records = h.reporter.wait_finished(1);
    let results = assert_single_submission(&records, "lingering", &[run_time(0)]);
    assert_eq!(results[0], Ok(json!("released")));
    assert_eq!(h.executor.instances("lingering"), 0);
}

/// After `shutdown(false)` with more submissions than workers, every accepted
/// submission is still accounted for: the ones that ran report `Ok`, the others an
/// `Err` per run time; each ends with `finished`. Nothing is lost silently.
pub fn check_shutdown_no_wait_accounts_for_queued(executor: Arc<dyn Executor>) {
    let mut h = Harness::start(executor);
    let gate = Gate::new();
    let jobs = 24;
    let times = [run_time(0), run_time(1)];
    for i in 0..jobs {
        let mut run = h.tasks.job_run(&format!("q-{i}"), BLOCK);
        run.args = Arc::new(vec![gate.arg()]);
        run.run_times = times.to_vec();
        h.submit(run);
    }
    gate.wait_started(1);
    h.shutdown(false);
    gate.release();
    let records = h.reporter.wait_finished(jobs);
    let mut ran = 0;
    for i in 0..jobs {
        for result in assert_single_submission(&records, &format!("q-{i}"), &times) {
            match result {
                Ok(value) => {
                    assert_eq!(value, json!("released"));
                    ran += 1;
                }
                Err(failure) => assert!(!failure.kind.is_empty(), "{failure:?}"),
            }
        }
    }
    // Each Ok outcome is a task that actually ran (reached the gate).
    assert_eq!(ran, gate.started(), "Ok outcomes vs. tasks that ran");
}

/// `submit` after `shutdown(true)` is refused with [`SubmitError::NotRunning`] and
/// reports nothing.
pub fn check_submit_after_shutdown(executor: Arc<dyn Executor>) {
    let mut h = Harness::start(executor);
    h.submit(h.tasks.job_run("before", NOOP));
    h.shutdown(true);
    h.assert_refused(h.tasks.job_run("after", NOOP), "NotRunning");
    assert_eq!(h.executor.instances("after"), 0);
    let records = h.reporter.records();
    assert!(
        records.iter().all(|r| r.job_id() == "before"),
        "a refused submission must report nothing: {records:#?}"
    );
    assert_single_submission(&records, "before", &[run_time(0)]);
}

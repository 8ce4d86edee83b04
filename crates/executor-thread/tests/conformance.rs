//! The executor conformance suite, run against [`ThreadPoolExecutor`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::chrono::DateTime;
use apscheduler_core::chrono_tz::Tz;
use apscheduler_core::serde_json::Value;
use apscheduler_core::{Executor, JobFailure, JobRun, RunReporter};
use apscheduler_executor_thread::{ThreadPoolExecutor, CANCELLED_KIND};
use apscheduler_testkit::executor::{self as suite, Gate, RecordingReporter, TaskSet, BLOCK, NOOP};

#[test]
fn conformance() {
    suite::run_all(|| Arc::new(ThreadPoolExecutor::new(4)));
}

#[test]
fn conformance_default_pool() {
    suite::run_all(|| Arc::new(ThreadPoolExecutor::default()));
}

/// Counts outcomes and finished submissions without recording them.
#[derive(Default)]
struct Counter {
    ok: AtomicUsize,
    failed: AtomicUsize,
    finished: Mutex<usize>,
    changed: Condvar,
}

impl RunReporter for Counter {
    fn submitted(&self, _run: &JobRun) {}

    fn outcome(&self, _run: &JobRun, _run_time: DateTime<Tz>, result: Result<Value, JobFailure>) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn finished(&self, _run: &JobRun) {
        *self.finished.lock().unwrap() += 1;
        self.changed.notify_all();
    }
}

impl Counter {
    fn wait_finished(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut finished = self.finished.lock().unwrap();
        while *finished < n {
            let now = Instant::now();
            assert!(now < deadline, "only {} of {n} runs finished", *finished);
            finished = self
                .changed
                .wait_timeout(finished, deadline - now)
                .unwrap()
                .0;
        }
    }
}

#[test]
fn ten_thousand_noop_runs_on_twenty_workers() {
    let counter = Arc::new(Counter::default());
    let executor = ThreadPoolExecutor::new(20);
    executor.start(counter.clone()).unwrap();
    let tasks = TaskSet::new();
    let template = tasks.job_run("noop", NOOP);
    let n = 10_000;
    for i in 0..n {
        let mut run = template.clone();
        run.job_id = format!("noop-{i}").into();
        executor.submit(run).unwrap();
    }
    counter.wait_finished(n);
    assert_eq!(counter.ok.load(Ordering::Relaxed), n);
    assert_eq!(counter.failed.load(Ordering::Relaxed), 0);
    executor.shutdown(true);
}

#[test]
fn shutdown_without_wait_reports_queued_runs_cancelled() {
    let reporter = RecordingReporter::new();
    let executor: Arc<dyn Executor> = Arc::new(ThreadPoolExecutor::new(1));
    reporter.attach(&executor);
    executor.start(reporter.clone()).unwrap();
    let tasks = TaskSet::new();
    let gate = Gate::new();
    let mut blocked = tasks.job_run("blocked", BLOCK);
    blocked.args = Arc::new(vec![gate.arg()]);
    executor.submit(blocked).unwrap();
    gate.wait_started(1);
    let mut queued = tasks.job_run("queued", NOOP);
    queued.run_times = vec![suite::run_time(0), suite::run_time(1)];
    executor.submit(queued).unwrap();

    executor.shutdown(false);
    // The queued run is reported at once, while the running one is still blocked.
    let records = reporter.wait_finished(1);
    let results = suite::assert_single_submission(
        &records,
        "queued",
        &[suite::run_time(0), suite::run_time(1)],
    );
    for result in results {
        assert_eq!(result.unwrap_err().kind, CANCELLED_KIND);
    }
    assert_eq!(executor.instances("queued"), 0);
    assert_eq!(executor.instances("blocked"), 1);

    gate.release();
    let records = reporter.wait_finished(2);
    let results = suite::assert_single_submission(&records, "blocked", &[suite::run_time(0)]);
    assert!(results[0].is_ok());
    // A later shutdown(true) joins the detached workers.
    executor.shutdown(true);
}

#[test]
fn restart_after_shutdown_and_double_start() {
    let reporter = RecordingReporter::new();
    let executor = ThreadPoolExecutor::new(2);
    assert_eq!(executor.kind(), "threadpool");
    executor.start(reporter.clone()).unwrap();
    assert!(executor.start(reporter.clone()).is_err(), "already running");
    executor.shutdown(true);
    executor.start(reporter.clone()).unwrap();
    executor
        .submit(TaskSet::new().job_run("again", NOOP))
        .unwrap();
    reporter.wait_finished(1);
    executor.shutdown(true);
    assert!(!executor.is_running());
}

#[test]
fn worker_threads_are_named() {
    let reporter = RecordingReporter::new();
    let executor = ThreadPoolExecutor::new(3);
    executor.start(reporter.clone()).unwrap();
    let name = Arc::new(Mutex::new(None));
    executor.submit(whoami(&name, "whoami")).unwrap();
    reporter.wait_finished(1);
    executor.shutdown(true);
    let name = name.lock().unwrap().clone().unwrap();
    assert!(name.starts_with("aps-worker-"), "{name}");
}

#[test]
fn async_task_gets_an_error_outcome() {
    let reporter = RecordingReporter::new();
    let executor = ThreadPoolExecutor::new(1);
    executor.start(reporter.clone()).unwrap();
    let mut run = TaskSet::new().job_run("async", NOOP);
    run.task = apscheduler_core::TaskFn::from_async(|_| async { Ok(Value::Null) });
    executor.submit(run).unwrap();
    let records = reporter.wait_finished(1);
    let results = suite::assert_single_submission(&records, "async", &[suite::run_time(0)]);
    assert_eq!(results[0].clone().unwrap_err().kind, "refused");
    executor.shutdown(true);
}

#[test]
fn one_wake_up_reaches_every_worker_a_burst_needs() {
    // Eight runs that block until all eight run at once: each woken worker must wake
    // the next while runs are queued, or this never completes.
    let counter = Arc::new(Counter::default());
    let executor = ThreadPoolExecutor::new(8);
    executor.start(counter.clone()).unwrap();
    let tasks = TaskSet::new();
    let gate = Gate::new();
    for i in 0..8 {
        let mut run = tasks.job_run(&format!("blocked-{i}"), BLOCK);
        run.args = Arc::new(vec![gate.arg()]);
        executor.submit_deferred(run).unwrap();
    }
    executor.flush();
    gate.wait_started(8);
    gate.release();
    counter.wait_finished(8);
    executor.shutdown(true);
}

#[test]
fn deferred_runs_start_at_flush() {
    let counter = Arc::new(Counter::default());
    let executor = ThreadPoolExecutor::new(2);
    executor.start(counter.clone()).unwrap();
    // Let both workers go to sleep.
    std::thread::sleep(Duration::from_millis(50));
    let tasks = TaskSet::new();
    let gate = Gate::new();
    let mut run = tasks.job_run("deferred", BLOCK);
    run.args = Arc::new(vec![gate.arg()]);
    executor.submit_deferred(run).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(gate.started(), 0, "a deferred run waits for flush");
    executor.flush();
    gate.wait_started(1);
    gate.release();
    counter.wait_finished(1);
    // A plain submission starts by itself.
    executor.submit(tasks.job_run("plain", NOOP)).unwrap();
    counter.wait_finished(2);
    executor.shutdown(true);
}

/// The name of the thread a run ran on.
fn whoami(name: &Arc<Mutex<Option<String>>>, job_id: &str) -> JobRun {
    let seen = name.clone();
    let mut run = TaskSet::new().job_run(job_id, NOOP);
    run.task = apscheduler_core::TaskFn::from_fn(move |_| {
        *seen.lock().unwrap() = std::thread::current().name().map(str::to_owned);
        Ok(Value::Null)
    });
    run.task_name = None;
    run
}

#[test]
fn a_taken_run_runs_on_the_taking_thread_and_counts_as_an_instance() {
    let reporter = RecordingReporter::new();
    let executor = ThreadPoolExecutor::new(2);
    executor.start(reporter.clone()).unwrap();
    let name = Arc::new(Mutex::new(None));
    executor.submit_deferred(whoami(&name, "taken")).unwrap();
    let taken = executor
        .take_deferred()
        .expect("the queued run is handed out");
    assert!(executor.take_deferred().is_none(), "only one was queued");
    executor.flush(); // nothing left to wake a worker for
    assert_eq!(executor.instances("taken"), 1, "counted until it finishes");
    std::thread::Builder::new()
        .name("taker".into())
        .spawn(move || taken.run())
        .unwrap()
        .join()
        .unwrap();
    let records = reporter.wait_finished(1);
    let results = suite::assert_single_submission(&records, "taken", &[suite::run_time(0)]);
    assert!(results[0].is_ok());
    assert_eq!(executor.instances("taken"), 0);
    assert_eq!(name.lock().unwrap().as_deref(), Some("taker"));
    executor.shutdown(true);
}

#[test]
fn a_pool_that_does_not_lend_hands_out_nothing() {
    let reporter = RecordingReporter::new();
    let executor = ThreadPoolExecutor::new(1).lend_runs(false);
    executor.start(reporter.clone()).unwrap();
    executor
        .submit_deferred(TaskSet::new().job_run("kept", NOOP))
        .unwrap();
    assert!(executor.take_deferred().is_none());
    executor.flush();
    reporter.wait_finished(1);
    executor.shutdown(true);
}

#[test]
fn a_taken_run_dropped_unrun_goes_back_to_the_workers() {
    let reporter = RecordingReporter::new();
    let executor = ThreadPoolExecutor::new(1);
    executor.start(reporter.clone()).unwrap();
    let name = Arc::new(Mutex::new(None));
    executor
        .submit_deferred(whoami(&name, "given-back"))
        .unwrap();
    drop(executor.take_deferred().expect("handed out"));
    reporter.wait_finished(1);
    let ran_on = name.lock().unwrap().clone().unwrap();
    assert!(ran_on.starts_with("aps-worker-"), "{ran_on}");
    executor.shutdown(true);
}

#[test]
fn shutdown_waits_for_a_taken_run_and_cancels_one_not_started() {
    let reporter = RecordingReporter::new();
    let executor = Arc::new(ThreadPoolExecutor::new(1));
    executor.start(reporter.clone()).unwrap();
    let tasks = TaskSet::new();
    let gate = Gate::new();
    let mut blocked = tasks.job_run("blocked", BLOCK);
    blocked.args = Arc::new(vec![gate.arg()]);
    executor.submit_deferred(blocked).unwrap();
    let taken = executor.take_deferred().expect("handed out");
    let taker = std::thread::spawn(move || taken.run());
    gate.wait_started(1);
    let stopper = {
        let executor = executor.clone();
        std::thread::spawn(move || executor.shutdown(true))
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !stopper.is_finished(),
        "shutdown(true) returned while a taken run was running"
    );
    gate.release();
    stopper.join().unwrap();
    taker.join().unwrap();
    let records = reporter.wait_finished(1);
    let results = suite::assert_single_submission(&records, "blocked", &[suite::run_time(0)]);
    assert!(results[0].is_ok());

    // Taken before a shutdown(false), run after it: reported cancelled, never run.
    let reporter = RecordingReporter::new();
    let executor = ThreadPoolExecutor::new(1);
    executor.start(reporter.clone()).unwrap();
    executor
        .submit_deferred(tasks.job_run("late", NOOP))
        .unwrap();
    let taken = executor.take_deferred().expect("handed out");
    executor.shutdown(false);
    taken.run();
    let records = reporter.wait_finished(1);
    let results = suite::assert_single_submission(&records, "late", &[suite::run_time(0)]);
    assert_eq!(results[0].clone().unwrap_err().kind, CANCELLED_KIND);
}

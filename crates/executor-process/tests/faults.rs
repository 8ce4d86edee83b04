//! Worker faults (panic, abort, exit, `SIGKILL`, timeout), the pool's limits and its
//! shutdown, checked against real worker processes.
//!
//! Workers re-execute this binary, so it has its own `main` (`harness = false`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apscheduler_core::serde_json::{json, Value};
use apscheduler_core::{ErrorKind, Executor, JobFailure, JobRun, SubmitError, TaskFn};
use apscheduler_executor_process::{
    ProcessPoolExecutor, CANCELLED_KIND, EXIT_KIND, SIGNAL_KIND, TIMEOUT_KIND, UNKNOWN_TASK_KIND,
    WORKER_START_KIND,
};
use apscheduler_testkit::executor::{
    assert_single_submission, run_time, Gate, Record, RecordingReporter, TaskSet, BLOCK, ECHO,
    PANIC,
};
use common::{
    child_pids, eventually, PidGate, ABORT, ASYNC, EXIT, PID, PID_THEN_BLOCK, PRINT, SLEEP,
    VALUE_ERROR,
};

const LIMIT: Duration = Duration::from_secs(10);

/// A started pool with a recording reporter.
struct Pool {
    executor: Arc<dyn Executor>,
    pool: Arc<ProcessPoolExecutor>,
    reporter: Arc<RecordingReporter>,
    tasks: TaskSet,
    submitted: usize,
}

impl Pool {
    fn start(pool: ProcessPoolExecutor) -> Self {
        let pool = Arc::new(pool);
        let executor: Arc<dyn Executor> = pool.clone();
        let reporter = RecordingReporter::new();
        reporter.attach(&executor);
        executor.start(reporter.clone()).expect("start the pool");
        Pool {
            executor,
            pool,
            reporter,
            tasks: TaskSet::new(),
            submitted: 0,
        }
    }

    /// A run of task `name` (registered in the workers; `NOOP` stands in for the
    /// in-process `TaskFn`, which a process pool never calls).
    fn run(&self, job_id: &str, name: &str, args: Vec<Value>) -> JobRun {
        let mut run = self
            .tasks
            .job_run(job_id, apscheduler_testkit::executor::NOOP);
        run.task_name = Some(name.into());
        run.args = Arc::new(args);
        run
    }

    fn submit(&mut self, run: JobRun) {
        let job_id = run.job_id.clone();
        if let Err(e) = self.executor.submit(run) {
            panic!("submitting {job_id:?}: {e}");
        }
        self.submitted += 1;
    }

    /// Submits and waits for the single outcome of a one-run-time job.
    fn call(&mut self, job_id: &str, name: &str, args: Vec<Value>) -> Result<Value, JobFailure> {
        self.submit(self.run(job_id, name, args));
        let records = self.reporter.wait_finished(self.submitted);
        assert_single_submission(&records, job_id, &[run_time(0)])
            .pop()
            .expect("one outcome")
    }
}

fn expect_failure(result: Result<Value, JobFailure>, kind: &str, needle: &str) -> JobFailure {
    let failure = result.expect_err("the run should fail");
    assert_eq!(failure.kind, kind, "{failure:?}");
    assert!(
        failure.message.contains(needle),
        "{:?} does not contain {needle:?}",
        failure.message
    );
    failure
}

fn pid_of(result: Result<Value, JobFailure>) -> u32 {
    let value = result.expect("the pid task succeeds");
    let pid = value.as_u64().expect("a pid") as u32;
    assert_ne!(pid, std::process::id(), "the task ran in the test process");
    pid
}

fn assert_no_workers_left(limit: Duration) {
    assert!(
        eventually(limit, || child_pids().is_empty()),
        "worker processes left behind: {:?}",
        child_pids()
    );
}

// -------------------------------------------------------------------------------------

fn panic_is_reported_and_the_worker_survives() {
    let mut p = Pool::start(ProcessPoolExecutor::new(1));
    let before = pid_of(p.call("pid-1", PID, vec![]));
    let failure = expect_failure(
        p.call("panicky", PANIC, vec![json!("kaboom in a worker")]),
        "panic",
        "kaboom in a worker",
    );
    assert!(failure.chain.is_empty());
    let after = pid_of(p.call("pid-2", PID, vec![]));
    assert_eq!(before, after, "a caught panic must not cost the worker");
    p.executor.shutdown(true);
    assert_no_workers_left(LIMIT);
}

fn abort_is_reported_as_sigabrt_and_the_worker_replaced() {
    let mut p = Pool::start(ProcessPoolExecutor::new(1));
    let before = pid_of(p.call("pid-1", PID, vec![]));
    let failure = expect_failure(
        p.call("aborting", ABORT, vec![]),
        SIGNAL_KIND,
        "signal 6 (SIGABRT)",
    );
    assert!(failure.message.contains(&before.to_string()), "{failure:?}");
    let after = pid_of(p.call("pid-2", PID, vec![]));
    assert_ne!(before, after, "the dead worker is replaced");
    p.executor.shutdown(true);
    assert_no_workers_left(LIMIT);
}

fn exit_is_reported_with_its_code() {
    let mut p = Pool::start(ProcessPoolExecutor::new(1));
    expect_failure(
        p.call("exiting", EXIT, vec![json!(3)]),
        EXIT_KIND,
        "exit code 3",
    );
    // Even a clean exit(0) mid-run is a failure of the run.
    expect_failure(
        p.call("exiting-0", EXIT, vec![json!(0)]),
        EXIT_KIND,
        "exit code 0",
    );
    pid_of(p.call("pid", PID, vec![]));
    p.executor.shutdown(true);
    assert_no_workers_left(LIMIT);
}

fn sigkill_mid_run_fails_only_that_run() {
    let mut p = Pool::start(ProcessPoolExecutor::new(2));
    let mut pids = PidGate::new();
    let gate = Gate::new();
    // One job blocks on the other worker throughout.
    p.submit(p.run("bystander", BLOCK, vec![gate.arg()]));
    gate.wait_started(1);
    p.submit(p.run("victim", PID_THEN_BLOCK, vec![pids.arg()]));
    let victim = pids.next_pid();
    assert!(p.pool.worker_pids().contains(&victim));
    let started = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(victim as i32).expect("a pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill the worker");
    let records = p.reporter.wait_finished(1);
    assert!(started.elapsed() < Duration::from_secs(2), "noticed late");
    let result = assert_single_submission(&records, "victim", &[run_time(0)])
        .pop()
        .unwrap();
    let failure = expect_failure(result, SIGNAL_KIND, "signal 9 (SIGKILL)");
    assert!(failure.message.contains(&victim.to_string()), "{failure:?}");
    // The other job was not disturbed, and the pool still works.
    gate.release();
    let records = p.reporter.wait_finished(2);
    let result = assert_single_submission(&records, "bystander", &[run_time(0)]);
    assert_eq!(result[0], Ok(json!("released")));
    let replacement = pid_of(p.call("after", PID, vec![]));
    assert_ne!(replacement, victim);
    assert!(p.pool.worker_pids().len() <= 2);
    p.executor.shutdown(true);
    assert_no_workers_left(LIMIT);
}

fn an_idle_worker_killed_from_outside_is_replaced_transparently() {
    let mut p = Pool::start(ProcessPoolExecutor::new(1));
    let before = pid_of(p.call("pid-1", PID, vec![]));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(before as i32).expect("a pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill the idle worker");
    // Dead (a zombie until the pool reaps it) before the next run is sent.
    assert!(eventually(LIMIT, || {
        std::fs::read_to_string(format!("/proc/{before}/stat")).map_or(true, |stat| {
            stat.rfind(')')
                .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'))
        })
    }));
    let after = pid_of(p.call("pid-2", PID, vec![]));
    assert_ne!(before, after);
    p.executor.shutdown(true);
    assert_no_workers_left(LIMIT);
}

fn timeout_kills_the_worker_and_reports_timeout() {
    let timeout = Duration::from_millis(300);
    let mut p = Pool::start(ProcessPoolExecutor::new(1).with_timeout(timeout));
    let before = pid_of(p.call("pid-1", PID, vec![]));
    let started = Instant::now();
    let failure = expect_failure(
        p.call("slow", SLEEP, vec![json!(20_000)]),
        TIMEOUT_KIND,
        "300ms",
    );
    let took = started.elapsed();
    assert!(
        took >= timeout && took < Duration::from_secs(3),
        "took {took:?}"
    );
    assert!(failure.message.contains(&before.to_string()), "{failure:?}");
    assert!(
        eventually(LIMIT, || !child_pids().contains(&before)),
        "the timed-out worker is gone"
    );
    // A fast run on the same pool is within the timeout.
    assert_eq!(p.call("quick", SLEEP, vec![json!(1)]), Ok(json!("slept")));
    p.executor.shutdown(true);
    assert_no_workers_left(LIMIT);
}

fn each_run_time_gets_the_timeout_and_a_fresh_worker() {
    let mut p = Pool::start(ProcessPoolExecutor::new(1).with_timeout(Duration::from_millis(200)));
    let mut run = p.run("catch-up", SLEEP, vec![json!(10_000)]);
    run.run_times = vec![run_time(0), run_time(1)];
    p.submit(run);
    let records = p.reporter.wait_finished(1);
    for result in assert_single_submission(&records, "catch-up", &[run_time(0), run_time(1)]) {
        expect_failure(result, TIMEOUT_KIND, "timeout");
    }
    p.executor.shutdown(true);
    assert_no_workers_left(LIMIT);
}

fn unknown_task_is_reported() {
    let mut p = Pool::start(ProcessPoolExecutor::new(1));
    expect_failure(
        p.call("mystery", "not.registered", vec![]),
        UNKNOWN_TASK_KIND,
        "not.registered",
    );
    p.executor.shutdown(true);
}

fn task_failure_kind_and_chain_cross_the_process_boundary() {
    let mut p = Pool::start(ProcessPoolExecutor::new(1));
    expect_failure(
        p.call("value", VALUE_ERROR, vec![]),
        "ValueError",
        "bad value",
    );
    p.executor.shutdown(true);
}

fn printing_tasks_do_not_corrupt_the_protocol() {
    let mut p = Pool::start(ProcessPoolExecutor::new(1));
    for i in 0..3 {
        assert_eq!(
            p.call(&format!("print-{i}"), PRINT, vec![]),
            Ok(json!("printed"))
        );
    }
    p.executor.shutdown(true);
}

fn async_tasks_run_on_the_worker_runtime() {
    let mut p = Pool::start(ProcessPoolExecutor::new(1));
    assert_eq!(p.call("async-1", ASYNC, vec![]), Ok(json!("async-1")));
    assert_eq!(p.call("async-2", ASYNC, vec![]), Ok(json!("async-2")));
    p.executor.shutdown(true);
}

fn arguments_and_run_time_timezone_round_trip() {
    let mut p = Pool::start(ProcessPoolExecutor::new(1));
    let args = vec![json!(1.5), json!("ü"), json!({"nested": [null, true]})];
    let value = p.call("echo", ECHO, args.clone()).expect("echo");
    assert_eq!(value["args"], json!(args));
    assert_eq!(value["run_time"], json!(run_time(0).to_rfc3339()));
    p.executor.shutdown(true);
}

fn closures_are_refused_at_submit() {
    let p = Pool::start(ProcessPoolExecutor::new(1));
    let mut run = p.run("closure", PID, vec![]);
    run.task_name = None;
    run.task = TaskFn::from_fn(|_| Ok(Value::Null));
    match p.executor.submit(run) {
        Err(SubmitError::Refused(e)) => {
            assert_eq!(e.kind(), ErrorKind::Serialization);
            assert!(e.to_string().contains("register the task by name"), "{e}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(p.executor.instances("closure"), 0);
    assert!(
        p.reporter.records().is_empty(),
        "a refused run reports nothing"
    );
    p.executor.shutdown(true);
}

fn max_workers_is_respected_and_workers_are_reused() {
    let mut p = Pool::start(ProcessPoolExecutor::new(2));
    let gate = Gate::new();
    for i in 0..6 {
        p.submit(p.run(&format!("b-{i}"), BLOCK, vec![gate.arg()]));
    }
    gate.wait_started(2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(gate.started(), 2, "only two runs at once");
    assert_eq!(child_pids().len(), 2, "two worker processes");
    let workers = p.pool.worker_pids();
    assert_eq!(workers.len(), 2);
    gate.release();
    p.reporter.wait_finished(6);
    for i in 0..10 {
        let pid = pid_of(p.call(&format!("pid-{i}"), PID, vec![]));
        assert!(
            workers.contains(&pid),
            "worker {pid} is not one of {workers:?}"
        );
    }
    p.executor.shutdown(true);
    assert_no_workers_left(LIMIT);
}

fn shutdown_wait_runs_the_queue_then_stops_every_worker() {
    let mut p = Pool::start(ProcessPoolExecutor::new(2));
    for i in 0..20 {
        p.submit(p.run(&format!("s-{i}"), SLEEP, vec![json!(5)]));
    }
    p.executor.shutdown(true);
    let records = p.reporter.records();
    for i in 0..20 {
        let results = assert_single_submission(&records, &format!("s-{i}"), &[run_time(0)]);
        assert_eq!(results[0], Ok(json!("slept")));
    }
    // Reaped before shutdown returned: not even zombies are left.
    assert!(child_pids().is_empty(), "{:?}", child_pids());
}

fn shutdown_no_wait_lets_the_running_job_finish_and_leaves_no_worker() {
    let mut p = Pool::start(ProcessPoolExecutor::new(3));
    let mut pids = PidGate::new();
    // Three workers: one stays busy, two go idle.
    p.submit(p.run("busy", PID_THEN_BLOCK, vec![pids.arg()]));
    let busy = pids.next_pid();
    let gate = Gate::new();
    p.submit(p.run("idle-1", BLOCK, vec![gate.arg()]));
    p.submit(p.run("idle-2", BLOCK, vec![gate.arg()]));
    gate.wait_started(2);
    gate.release();
    p.reporter.wait_finished(2);
    assert_eq!(child_pids().len(), 3);
    p.submit(p.run("queued", PID, vec![]));
    // With three workers "queued" may already have run; both are fine.

    let started = Instant::now();
    p.executor.shutdown(false);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "returns at once"
    );
    assert!(
        eventually(LIMIT, || child_pids() == vec![busy]),
        "the idle workers exit at once: {:?}",
        child_pids()
    );
    pids.release();
    let records = p.reporter.wait_finished(4);
    let results = assert_single_submission(&records, "busy", &[run_time(0)]);
    assert_eq!(results[0], Ok(json!("released")));
    assert_no_workers_left(LIMIT);
    p.executor.shutdown(true);
}

fn shutdown_no_wait_with_kill_leaves_no_worker_when_it_returns() {
    let mut p = Pool::start(ProcessPoolExecutor::new(2).with_kill_on_shutdown(true));
    let mut pids = PidGate::new();
    p.submit(p.run("running-1", PID_THEN_BLOCK, vec![pids.arg()]));
    p.submit(p.run("running-2", PID_THEN_BLOCK, vec![pids.arg()]));
    let running = [pids.next_pid(), pids.next_pid()];
    let mut queued = p.run("queued", PID, vec![]);
    queued.run_times = vec![run_time(0), run_time(1)];
    p.submit(queued);
    assert_eq!(child_pids().len(), 2);

    let started = Instant::now();
    p.executor.shutdown(false);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(
        child_pids().is_empty(),
        "no worker process is left when shutdown(false) returns: {:?} (workers were {running:?})",
        child_pids()
    );
    let records = p.reporter.wait_finished(3);
    for job in ["running-1", "running-2"] {
        let results = assert_single_submission(&records, job, &[run_time(0)]);
        expect_failure(results[0].clone(), CANCELLED_KIND, "shut down");
    }
    for result in assert_single_submission(&records, "queued", &[run_time(0), run_time(1)]) {
        expect_failure(result, CANCELLED_KIND, "shut down");
    }
    assert!(
        records
            .iter()
            .all(|r| !matches!(r, Record::Outcome { result: Ok(_), .. })),
        "{records:#?}"
    );
    drop(pids);
    p.executor.shutdown(true);
}

fn restart_after_shutdown() {
    let mut p = Pool::start(ProcessPoolExecutor::new(1));
    pid_of(p.call("first", PID, vec![]));
    p.executor.shutdown(true);
    assert!(!p.pool.is_running());
    assert!(matches!(
        p.executor.submit(p.run("refused", PID, vec![])),
        Err(SubmitError::NotRunning)
    ));
    p.executor.start(p.reporter.clone()).expect("restart");
    assert!(
        p.executor.start(p.reporter.clone()).is_err(),
        "already running"
    );
    pid_of(p.call("second", PID, vec![]));
    p.executor.shutdown(true);
    assert_no_workers_left(LIMIT);
}

fn a_program_without_the_hook_fails_to_start_workers() {
    let mut p = Pool::start(
        ProcessPoolExecutor::new(1)
            .with_program("/bin/true")
            .with_start_timeout(Duration::from_secs(5)),
    );
    let failure = expect_failure(
        p.call("no-hook", PID, vec![]),
        WORKER_START_KIND,
        "worker_main",
    );
    assert!(failure.message.contains("exit code 0"), "{failure:?}");
    p.executor.shutdown(true);
    // A program that never greets: the start timeout applies.
    let mut p = Pool::start(
        ProcessPoolExecutor::new(1)
            .with_program("/bin/cat")
            .with_start_timeout(Duration::from_millis(200)),
    );
    expect_failure(p.call("silent", PID, vec![]), WORKER_START_KIND, "did not");
    p.executor.shutdown(true);
    assert_no_workers_left(LIMIT);
}

/// Set in a copy of this binary that plays a program exiting right after
/// `shutdown(false)` while a job still runs.
const EXIT_SCENARIO: &str = "APS_TEST_EXIT_AFTER_SHUTDOWN_NO_WAIT";

fn exit_after_shutdown_no_wait_scenario() -> ! {
    let counter = common::Counter::new();
    let pool = ProcessPoolExecutor::new(1);
    pool.start(counter).expect("start");
    let mut run = TaskSet::new().job_run("long", apscheduler_testkit::executor::NOOP);
    run.task_name = Some(SLEEP.into());
    run.args = Arc::new(vec![json!(60_000)]);
    pool.submit(run).expect("submit");
    assert!(eventually(LIMIT, || !pool.worker_pids().is_empty()));
    std::thread::sleep(Duration::from_millis(100));
    println!("{}", pool.worker_pids()[0]);
    pool.shutdown(false);
    std::process::exit(0)
}

fn a_worker_dies_with_its_program() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(EXIT_SCENARIO, "1")
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run the scenario");
    assert!(out.status.success(), "{out:?}");
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the worker's pid");
    // Gone (or at most a zombie waiting for its new parent to reap it).
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rfind(')').map(|i| stat[i + 1..].trim().to_owned()))
            .is_some_and(|rest| !rest.starts_with('Z'))
    };
    assert!(
        eventually(LIMIT, || !running()),
        "worker {pid} outlived its program"
    );
}

fn debug_and_kind() {
    let pool = ProcessPoolExecutor::new(3).with_timeout(Duration::from_secs(1));
    assert_eq!(pool.kind(), "processpool");
    assert!(!pool.runs_in_process());
    assert_eq!(pool.max_workers(), 3);
    assert_eq!(pool.timeout(), Some(Duration::from_secs(1)));
    assert_eq!(ProcessPoolExecutor::default().max_workers(), 10);
    let debug = format!("{pool:?}");
    assert!(
        debug.contains("ProcessPoolExecutor") && debug.contains("idle"),
        "{debug}"
    );
}

fn main() {
    let registry = common::registry();
    apscheduler_executor_process::worker_main(&registry);
    if std::env::var_os(EXIT_SCENARIO).is_some() {
        exit_after_shutdown_no_wait_scenario();
    }

    let mut runner = common::Runner::new();
    runner.run(
        "panic_is_reported_and_the_worker_survives",
        panic_is_reported_and_the_worker_survives,
    );
    runner.run(
        "abort_is_reported_as_sigabrt_and_the_worker_replaced",
        abort_is_reported_as_sigabrt_and_the_worker_replaced,
    );
    runner.run(
        "exit_is_reported_with_its_code",
        exit_is_reported_with_its_code,
    );
    runner.run(
        "sigkill_mid_run_fails_only_that_run",
        sigkill_mid_run_fails_only_that_run,
    );
    runner.run(
        "an_idle_worker_killed_from_outside_is_replaced_transparently",
        an_idle_worker_killed_from_outside_is_replaced_transparently,
    );
    runner.run(
        "timeout_kills_the_worker_and_reports_timeout",
        timeout_kills_the_worker_and_reports_timeout,
    );
    runner.run(
        "each_run_time_gets_the_timeout_and_a_fresh_worker",
        each_run_time_gets_the_timeout_and_a_fresh_worker,
    );
    runner.run("unknown_task_is_reported", unknown_task_is_reported);
    runner.run(
        "task_failure_kind_and_chain_cross_the_process_boundary",
        task_failure_kind_and_chain_cross_the_process_boundary,
    );
    runner.run(
        "printing_tasks_do_not_corrupt_the_protocol",
        printing_tasks_do_not_corrupt_the_protocol,
    );
    runner.run(
        "async_tasks_run_on_the_worker_runtime",
        async_tasks_run_on_the_worker_runtime,
    );
    runner.run(
        "arguments_and_run_time_timezone_round_trip",
        arguments_and_run_time_timezone_round_trip,
    );
    runner.run(
        "closures_are_refused_at_submit",
        closures_are_refused_at_submit,
    );
    runner.run(
        "max_workers_is_respected_and_workers_are_reused",
        max_workers_is_respected_and_workers_are_reused,
    );
    runner.run(
        "shutdown_wait_runs_the_queue_then_stops_every_worker",
        shutdown_wait_runs_the_queue_then_stops_every_worker,
    );
    runner.run(
        "shutdown_no_wait_lets_the_running_job_finish_and_leaves_no_worker",
        shutdown_no_wait_lets_the_running_job_finish_and_leaves_no_worker,
    );
    runner.run(
        "shutdown_no_wait_with_kill_leaves_no_worker_when_it_returns",
        shutdown_no_wait_with_kill_leaves_no_worker_when_it_returns,
    );
    runner.run("restart_after_shutdown", restart_after_shutdown);
    runner.run(
        "a_program_without_the_hook_fails_to_start_workers",
        a_program_without_the_hook_fails_to_start_workers,
    );
    runner.run(
        "a_worker_dies_with_its_program",
        a_worker_dies_with_its_program,
    );
    runner.run("debug_and_kind", debug_and_kind);
    runner.finish();
}

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

use std::error::Error as StdError;
use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use apscheduler_core::{
    Executor, JobFailure, JobRun, RunReporter, SubmitError, TaskContext, TaskFailure, TaskFn,
    TaskRegistry, TaskResult,
};
use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

/// How long a check waits for a callback (or a task to start) before failing.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Task name: returns its context as JSON (see the [module docs](self)).
pub const ECHO: &str = "testkit.echo";
/// Task name: returns an error with a `source()` chain built from its arguments.
pub const FAIL: &str = "testkit.fail";
/// Task name: returns a `TaskFailure` of kind `args[0]` with message `args[1]`.
pub const FAIL_KIND: &str = "testkit.fail-kind";
/// Task name: panics with the message `args[0]`.
pub const PANIC: &str = "testkit.panic";
/// Task name: blocks until the [`Gate`] whose address is `args[0]` is released.
pub const BLOCK: &str = "testkit.block";
/// Task name: does nothing and returns `null`.
pub const NOOP: &str = "testkit.noop";

// ---------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------

/// Registers the suite's tasks ([`ECHO`], [`FAIL`], [`FAIL_KIND`], [`PANIC`], [`BLOCK`], [`NOOP`]) in
/// `registry`; a process executor calls this in its worker processes.
pub fn register_tasks(registry: &mut TaskRegistry) {
    registry
        .register(ECHO, echo_task)
        .register(FAIL, fail_task)
        .register(FAIL_KIND, fail_kind_task)
        .register(PANIC, panic_task)
        .register(BLOCK, block_task)
        .register(NOOP, |_ctx| Ok(Value::Null));
}

fn echo_task(ctx: &TaskContext) -> TaskResult {
    Ok(json!({
        "job_id": &*ctx.job_id,
        "run_time": ctx.scheduled_run_time.to_rfc3339(),
        "args": &*ctx.args,
        "kwargs": &*ctx.kwargs,
    }))
}

fn fail_task(ctx: &TaskContext) -> TaskResult {
    let messages: Vec<String> = ctx
        .args
        .iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .collect();
    let mut error: Option<ChainError> = None;
    for message in messages.into_iter().rev() {
        error = Some(ChainError {
            message,
            source: error.map(Box::new),
        });
    }
    Err(Box::new(error.unwrap_or(ChainError {
        message: "task failed".to_owned(),
        source: None,
    })))
}

fn fail_kind_task(ctx: &TaskContext) -> TaskResult {
    let text = |i: usize| {
        ctx.arg(i)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Err(Box::new(TaskFailure::new(text(0), text(1))))
}

fn panic_task(ctx: &TaskContext) -> TaskResult {
    let message = ctx
        .arg(0)
        .and_then(Value::as_str)
        .unwrap_or("task panicked");
    panic!("{message}");
}

fn block_task(ctx: &TaskContext) -> TaskResult {
    let addr: SocketAddr = ctx
        .arg(0)
        .and_then(Value::as_str)
        .ok_or("testkit.block needs the gate address as args[0]")?
        .parse()?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    // Bounded, so a forgotten gate cannot hang a worker forever.
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    Ok(json!("released"))
}

/// An error with a message and an optional source, as [`FAIL`] returns.
#[derive(Debug)]
struct ChainError {
    message: String,
    source: Option<Box<ChainError>>,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ChainError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// The suite's tasks, resolvable by name, and a builder of [`JobRun`]s that carry both
/// the [`TaskFn`] and the task name.
#[derive(Debug, Clone)]
pub struct TaskSet {
    registry: TaskRegistry,
}

impl Default for TaskSet {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskSet {
    /// The suite's tasks (see [`register_tasks`]).
    pub fn new() -> Self {
        let mut registry = TaskRegistry::new();
        register_tasks(&mut registry);
        TaskSet { registry }
    }

    /// The registry holding the suite's tasks.
    pub fn registry(&self) -> &TaskRegistry {
        &self.registry
    }

    /// The task registered as `name`.
    ///
    /// # Panics
    /// `name` is not one of the suite's tasks.
    pub fn task(&self, name: &str) -> TaskFn {
        self.registry
            .get(name)
            .unwrap_or_else(|| panic!("{name:?} is not a testkit task"))
            .clone()
    }

    /// A run of task `name` for `job_id`: one run time ([`run_time`]`(0)`), no
    /// arguments, `max_instances` 1, job store `default`. Adjust the public fields as
    /// needed.
    ///
    /// # Panics
    /// `name` is not one of the suite's tasks.
    pub fn job_run(&self, job_id: &str, name: &str) -> JobRun {
        JobRun {
            job_id: job_id.into(),
            jobstore: "default".into(),
            task_name: Some(name.into()),
            task: self.task(name),
            args: Arc::new(Vec::new()),
            kwargs: Arc::new(Map::new()),
            run_times: vec![run_time(0)],
            max_instances: 1,
            run_ids: Vec::new(),
            attempt: 1,
            cancel: Default::default(),
            policy: apscheduler_core::default_policy(),
        }
    }
}

/// The `i`th run time the suite uses: 2024-01-15 09:00 Europe/Berlin plus `i` minutes
/// (a non-UTC zone, so a lost timezone shows).
pub fn run_time(i: u32) -> DateTime<Tz> {
    Tz::Europe__Berlin
        .with_ymd_and_hms(2024, 1, 15, 9, 0, 0)
        .single()
        .expect("an unambiguous local time")
        + chrono::Duration::minutes(i64::from(i))
}

// ---------------------------------------------------------------------------------
// Gate
// ---------------------------------------------------------------------------------

/// Holds [`BLOCK`] tasks until released, across threads or processes.
///
/// A loopback TCP listener: each [`BLOCK`] task connects (which counts as "started")
/// and waits for one byte, sent to every waiting task by [`Gate::release`] and at once
/// to tasks connecting afterwards. Dropping the gate releases it.
#[derive(Debug)]
pub struct Gate {
    addr: SocketAddr,
    shared: Arc<GateShared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct GateShared {
    state: Mutex<GateState>,
    changed: Condvar,
    closing: AtomicBool,
}

#[derive(Debug, Default)]
struct GateState {
    started: usize,
    released: bool,
    waiting: Vec<TcpStream>,
}

impl GateShared {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate listening on `127.0.0.1`.
    ///
    /// # Panics
    /// No loopback socket can be bound.
    pub fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback gate");
        let addr = listener.local_addr().expect("gate address");
        let shared = Arc::new(GateShared::default());
        let accept_shared = shared.clone();
        let acceptor = thread::Builder::new()
            .name("testkit-gate".to_owned())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_shared.closing.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let mut state = accept_shared.lock();
                    state.started += 1;
                    if state.released {
                        let _ = stream.write_all(&[1]);
                    } else {
                        state.waiting.push(stream);
                    }
                    drop(state);
                    accept_shared.changed.notify_all();
                }
            })
            .expect("spawn the gate acceptor");
        Gate {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The argument to pass to [`BLOCK`] as `args[0]`.
    pub fn arg(&self) -> Value {
        Value::String(self.addr.to_string())
    }

    /// How many [`BLOCK`] tasks have reached the gate so far.
    pub fn started(&self) -> usize {
        self.shared.lock().started
    }

    /// Waits until `n` [`BLOCK`] tasks have reached the gate.
    ///
    /// # Panics
    /// They did not within [`TIMEOUT`].
    pub fn wait_started(&self, n: usize) {
        let deadline = Instant::now() + TIMEOUT;
        let mut state = self.shared.lock();
        while state.started < n {
            let now = Instant::now();
            assert!(
                now < deadline,
                "only {} of {n} blocking tasks started within {TIMEOUT:?}",
                state.started
            );
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Lets every waiting [`BLOCK`] task finish, and any later one pass at once.
    pub fn release(&self) {
        let mut state = self.shared.lock();
        state.released = true;
        for mut stream in state.waiting.drain(..) {
            let _ = stream.write_all(&[1]);
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.release();
        self.shared.closing.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees `closing`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

// ---------------------------------------------------------------------------------
// Recording reporter
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------

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

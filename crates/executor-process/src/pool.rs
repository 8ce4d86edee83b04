//! The pool side: [`ProcessPoolExecutor`], its driver threads and their workers.

use std::cell::Cell;
use std::collections::VecDeque;
use std::env;
use std::fmt;
use std::mem;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use apscheduler_core::serde_json::Value;
use apscheduler_core::{
    admit, finish_run, report_each_run_time, report_failed, Error, ErrorKind, Executor,
    InstanceTracker, JobFailure, JobRun, RunReporter, SubmitError,
};
use chrono::DateTime;
use chrono_tz::Tz;

use crate::protocol::{self, FrameReader, Hello, ReadError, RunReply, RunRequestRef, WireTime};
use crate::worker::WORKER_ENV;
use crate::{
    CANCELLED_KIND, EXIT_KIND, PROTOCOL_KIND, SIGNAL_KIND, TIMEOUT_KIND, WORKER_START_KIND,
};

/// The `max_workers` of [`ProcessPoolExecutor::default`]: APScheduler's
/// `ProcessPoolExecutor(max_workers=10)`. Workers are started only as jobs need them.
pub const DEFAULT_MAX_WORKERS: usize = 10;

/// How long a new worker may take to greet the pool, by default.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a worker whose stdin was closed (or whose pipe broke) may take to exit
/// before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How long a killing `shutdown(false)` waits for the killed workers to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The `tracing` target of this crate's log records.
const LOG_TARGET: &str = "apscheduler";

/// What the program must do for the pool to work; appended to start errors.
const HOOK_HINT: &str =
    "the program must call apscheduler_executor_process::worker_main(&registry) \
     (or run_worker_if_requested) at the top of main, before anything writes to stdout";

thread_local! {
    /// Set on the pool's driver threads (where reporter callbacks run).
    static IN_DRIVER: Cell<bool> = const { Cell::new(false) };
}

/// Runs named tasks in worker processes (APScheduler's `ProcessPoolExecutor`).
///
/// Workers are copies of the running program (`std::env::current_exe()`, or
/// [`with_program`](Self::with_program)) started in worker mode; see the
/// [crate documentation](crate) for the line `main` needs, the protocol and the fault
/// handling. Created stopped; [`Executor::start`] starts no process yet: each of up to
/// `max_workers` workers is started when a job needs it and then reused.
///
/// Dropping a running executor without shutting it down stops accepting work; the
/// queued runs still run and the workers then exit.
pub struct ProcessPoolExecutor {
    config: Config,
    tracker: Arc<InstanceTracker>,
    state: Mutex<State>,
}

#[derive(Debug, Clone)]
struct Config {
    max_workers: usize,
    timeout: Option<Duration>,
    start_timeout: Duration,
    kill_on_shutdown: bool,
    program: Option<PathBuf>,
}

struct State {
    phase: Phase,
    /// Pools shut down without waiting, joined by a later `shutdown(true)`.
    detached: Vec<Arc<Pool>>,
}

enum Phase {
    Idle,
    Running(Arc<Pool>),
    Stopped,
}

impl Phase {
    /// As `Debug` shows it.
    fn name(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Running(_) => "running",
            Phase::Stopped => "stopped",
        }
    }
}

impl ProcessPoolExecutor {
    /// A pool of at most `max_workers` worker processes (`0` is treated as `1`), no
    /// timeout, and a `shutdown(false)` that lets running jobs finish.
    pub fn new(max_workers: usize) -> Self {
        ProcessPoolExecutor {
            config: Config {
                max_workers: max_workers.max(1),
                timeout: None,
                start_timeout: DEFAULT_START_TIMEOUT,
                kill_on_shutdown: false,
                program: None,
            },
            tracker: Arc::new(InstanceTracker::new()),
            state: Mutex::new(State {
                phase: Phase::Idle,
                detached: Vec::new(),
            }),
        }
    }

    /// Limits every run (each run time of a submission) to `timeout`, counted from
    /// when the run is handed to its worker: past it the worker is killed (`SIGKILL`),
    /// the run gets an `Err` outcome of kind [`TIMEOUT_KIND`], and a fresh worker takes
    /// the next job. Not in APScheduler.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// Makes `shutdown(false)` kill the running workers instead of letting their jobs
    /// finish: their runs get an `Err` outcome of kind [`CANCELLED_KIND`], and
    /// `shutdown(false)` returns once the killed workers are reaped (a few
    /// milliseconds), so no worker process outlives it. Off by default, as in
    /// APScheduler (and as the executor contract's conformance suite expects).
    pub fn with_kill_on_shutdown(mut self, kill: bool) -> Self {
        self.config.kill_on_shutdown = kill;
        self
    }

    /// How long a new worker may take to start and greet the pool before it is killed
    /// and the run fails with kind [`WORKER_START_KIND`] (default
    /// [`DEFAULT_START_TIMEOUT`]).
    pub fn with_start_timeout(mut self, timeout: Duration) -> Self {
        self.config.start_timeout = timeout;
        self
    }

    /// Starts workers from `program` instead of `std::env::current_exe()`; it must
    /// call the worker hook with the same named tasks.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.config.program = Some(program.into());
        self
    }

    /// The maximum number of worker processes.
    pub fn max_workers(&self) -> usize {
        self.config.max_workers
    }

    /// The per-run timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.config.timeout
    }

    /// Whether the executor is started and accepting submissions.
    pub fn is_running(&self) -> bool {
        matches!(self.lock().phase, Phase::Running(_))
    }

    /// The process ids of the worker processes alive now (including those of a pool
    /// shut down without waiting whose jobs still run).
    pub fn worker_pids(&self) -> Vec<u32> {
        let state = self.lock();
        let mut pids = Vec::new();
        if let Phase::Running(pool) = &state.phase {
            pool.collect_pids(&mut pids);
        }
        for pool in &state.detached {
            pool.collect_pids(&mut pids);
        }
        pids
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ProcessPoolExecutor {
    /// A pool of [`DEFAULT_MAX_WORKERS`] (10) workers.
    fn default() -> Self {
        Self::new(DEFAULT_MAX_WORKERS)
    }
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock().phase.name();
        f.debug_struct("ProcessPoolExecutor")
            .field("max_workers", &self.config.max_workers)
            .field("timeout", &self.config.timeout)
            .field("kill_on_shutdown", &self.config.kill_on_shutdown)
            .field("state", &state)
            .field("instances", &self.tracker.total())
            .finish()
    }
}

impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Phase::Running(pool) = mem::replace(&mut state.phase, Phase::Stopped) {
            // The drivers run what is queued, then stop their workers and exit.
            let _ = pool.close(false);
        }
    }
}

impl Executor for ProcessPoolExecutor {
    fn start(&self, reporter: Arc<dyn RunReporter>) -> Result<(), Error> {
        if env::var_os(WORKER_ENV).is_some() {
            // A worker whose `main` skipped the hook would otherwise start workers of
            // its own, and so on.
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "this process was started as a process-pool worker but became a \
                     scheduler: {HOOK_HINT}"
                ),
            ));
        }
        if self.config.program.is_none() {
            env::current_exe().map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    "cannot find the running program to start worker processes from",
                )
                .with_source(e)
            })?;
        }
        let mut state = self.lock();
        if matches!(state.phase, Phase::Running(_)) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "process pool executor is already running",
            ));
        }
        state.phase = Phase::Running(Arc::new(Pool {
            config: self.config.clone(),
            reporter,
            tracker: self.tracker.clone(),
            cancelled: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            exited: Condvar::new(),
            slots: Mutex::new(Vec::new()),
            handles: Mutex::new(Vec::new()),
        }));
        tracing::debug!(
            target: LOG_TARGET,
            max_workers = self.config.max_workers,
            "process pool executor started"
        );
        Ok(())
    }

    fn submit(&self, run: JobRun) -> Result<(), SubmitError> {
        let pool = match &self.lock().phase {
            Phase::Running(pool) => pool.clone(),
            Phase::Idle | Phase::Stopped => return Err(SubmitError::NotRunning),
        };
        if run.task_name.is_none() {
            return Err(SubmitError::Refused(Error::new(
                ErrorKind::Serialization,
                format!(
                    "job '{}' runs a closure, which a process pool cannot send to a worker \
                     process: register the task by name instead",
                    run.job_id
                ),
            )));
        }
        admit(&pool.tracker, &*pool.reporter, &run)?;
        if let Err(run) = Pool::enqueue(&pool, run) {
            // Shut down meanwhile: never lose an accepted submission silently.
            pool.cancel(run);
        }
        Ok(())
    }

    fn shutdown(&self, wait: bool) {
        let mut to_join = Vec::new();
        let (pool, kill) = {
            let mut state = self.lock();
            let pool = match mem::replace(&mut state.phase, Phase::Stopped) {
                Phase::Running(pool) => Some(pool),
                Phase::Idle | Phase::Stopped => None,
            };
            if let Some(pool) = &pool {
                if !wait {
                    state.detached.retain(|p| !p.all_exited());
                    state.detached.push(pool.clone());
                }
            }
            if wait {
                to_join.append(&mut state.detached);
            }
            (pool, !wait && self.config.kill_on_shutdown)
        };
        tracing::debug!(target: LOG_TARGET, wait, kill, "process pool executor shutting down");
        if let Some(pool) = &pool {
            for run in pool.close(!wait) {
                pool.cancel(run);
            }
            if kill {
                pool.kill_all();
                if !IN_DRIVER.with(Cell::get) {
                    pool.wait_exited(KILL_WAIT);
                }
            }
            if wait {
                to_join.push(pool.clone());
            }
        }
        for pool in to_join {
            pool.join();
        }
    }

    fn runs_in_process(&self) -> bool {
        false
    }

    fn instances(&self, job_id: &str) -> usize {
        self.tracker.count(job_id)
    }

    fn kind(&self) -> &'static str {
        "processpool"
    }
}

// -------------------------------------------------------------------------------------
// Pool
// -------------------------------------------------------------------------------------

/// One started pool: its queue, driver threads and worker processes.
struct Pool {
    config: Config,
    reporter: Arc<dyn RunReporter>,
    tracker: Arc<InstanceTracker>,
    /// Set by `shutdown(false)`: queued runs and the remaining run times of running
    /// submissions are reported cancelled instead of run.
    cancelled: AtomicBool,
    /// Set by a killing `shutdown(false)`: a worker that dies was killed by it.
    killed: AtomicBool,
    queue: Mutex<Queue>,
    /// Signalled when a run is queued or the queue closes.
    ready: Condvar,
    /// Signalled when a driver thread exits.
    exited: Condvar,
    /// One per driver thread: its current worker process.
    slots: Mutex<Vec<Arc<Slot>>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<JobRun>,
    /// Driver threads waiting for a run (or about to).
    idle: usize,
    /// Driver threads not yet exited.
    drivers: usize,
    closed: bool,
}

/// A driver's worker process, reachable from `shutdown` to kill it.
#[derive(Default)]
struct Slot {
    child: Mutex<Option<Child>>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kill(&self) {
        if let Some(child) = self.lock().as_mut() {
            // Reaping goes through the same lock, so this never signals a reused pid.
            let _ = child.kill();
        }
    }
}

/// The pool's end of one worker process's pipes.
struct Worker {
    pid: u32,
    stdin: ChildStdin,
    stdout: FrameReader<ChildStdout>,
    buf: Vec<u8>,
}

impl Pool {
    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `run`, starting a driver thread if no idle one will take it; gives the
    /// run back when the pool is closed.
    // The run comes back by value only when the pool is closed; boxing it would cost an
    // allocation on every submission.
    #[allow(clippy::result_large_err)]
    fn enqueue(this: &Arc<Pool>, run: JobRun) -> Result<(), JobRun> {
        let mut queue = this.lock_queue();
        if queue.closed {
            return Err(run);
        }
        queue.jobs.push_back(run);
        if queue.jobs.len() > queue.idle && queue.drivers < this.config.max_workers {
            // Counted idle from now: it takes a run as soon as it starts.
            queue.drivers += 1;
            queue.idle += 1;
            let slot = Arc::new(Slot::default());
            let index = {
                let mut slots = this.slots.lock().unwrap_or_else(|e| e.into_inner());
                slots.push(slot.clone());
                slots.len() - 1
            };
            let pool = this.clone();
            let spawned = thread::Builder::new()
                .name(format!("aps-process-{index}"))
                .spawn(move || pool.drive(&slot));
            match spawned {
                Ok(handle) => this
                    .handles
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(handle),
                Err(e) => {
                    queue.drivers -= 1;
                    queue.idle -= 1;
                    apscheduler_core::log_error!(target: LOG_TARGET, error = %e, "cannot start a process pool driver thread");
                    if queue.drivers == 0 {
                        // Nobody would ever take the run.
                        let stranded: Vec<JobRun> = queue.jobs.drain(..).collect();
                        drop(queue);
                        for run in stranded {
                            this.fail_all(
                                run,
                                &JobFailure::new(
                                    WORKER_START_KIND,
                                    format!("cannot start a driver thread: {e}"),
                                ),
                            );
                        }
                        return Ok(());
                    }
                }
            }
        }
        drop(queue);
        this.ready.notify_one();
        Ok(())
    }

    /// Closes the queue (no more runs); with `cancel`, also marks the pool cancelled
    /// and returns the queued runs for the caller to report.
    fn close(&self, cancel: bool) -> Vec<JobRun> {
        let drained = {
            let mut queue = self.lock_queue();
            queue.closed = true;
            if cancel {
                self.cancelled.store(true, Ordering::SeqCst);
                queue.jobs.drain(..).collect()
            } else {
                Vec::new()
            }
        };
        self.ready.notify_all();
        drained
    }

    /// Kills every worker process (a killing `shutdown(false)`).
    fn kill_all(&self) {
        self.killed.store(true, Ordering::SeqCst);
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for slot in slots {
            slot.kill();
        }
    }

    /// Waits up to `limit` for every driver thread (and so every worker) to be gone.
    fn wait_exited(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut queue = self.lock_queue();
        while queue.drivers > 0 {
            let now = Instant::now();
            if now >= deadline {
                apscheduler_core::log_warn!(target: LOG_TARGET, drivers = queue.drivers, "process pool workers still exiting");
                return;
            }
            queue = self
                .exited
                .wait_timeout(queue, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn all_exited(&self) -> bool {
        self.lock_queue().drivers == 0
    }

    /// Joins the driver threads (except the calling one: `shutdown(true)` from a
    /// reporter callback must not wait for itself).
    fn join(&self) {
        let handles = mem::take(&mut *self.handles.lock().unwrap_or_else(|e| e.into_inner()));
        let me = thread::current().id();
        for handle in handles {
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }

    fn collect_pids(&self, pids: &mut Vec<u32>) {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for slot in slots {
            if let Some(child) = slot.lock().as_ref() {
                pids.push(child.id());
            }
        }
    }

    // --------------------------------------------------------------- driver thread

    /// A driver thread: takes runs off the queue and runs them on its worker process
    /// (started when first needed, replaced when it dies) until the queue is closed and
    /// empty; then stops the worker.
    fn drive(self: Arc<Self>, slot: &Slot) {
        IN_DRIVER.with(|d| d.set(true));
        let _exit = DriverExit { pool: &self };
        let mut worker: Option<Worker> = None;
        let mut after_run = false;
        while let Some(run) = self.next_run(after_run) {
            after_run = true;
            self.execute(run, slot, &mut worker);
        }
        if let Some(worker) = worker.take() {
            self.stop_worker(worker, slot);
        }
    }

    /// The next queued run, or `None` once the queue is closed and empty.
    fn next_run(&self, after_run: bool) -> Option<JobRun> {
        let mut queue = self.lock_queue();
        if after_run {
            queue.idle += 1;
        }
        loop {
            if let Some(run) = queue.jobs.pop_front() {
                queue.idle -= 1;
                return Some(run);
            }
            if queue.closed {
                queue.idle -= 1;
                return None;
            }
            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Runs every run time of `run` in turn, reporting each outcome, then releases the
    /// instance and reports `finished`. Run times left when the pool is shut down
    /// without waiting are reported cancelled.
    fn execute(&self, run: JobRun, slot: &Slot, worker: &mut Option<Worker>) {
        report_each_run_time(&*self.reporter, &run, |run_time| {
            if self.cancelled.load(Ordering::SeqCst) {
                Err(cancelled_failure())
            } else {
                self.run_once(&run, run_time, slot, worker)
            }
        });
        finish_run(&*self.reporter, &run, &self.tracker);
    }

    /// Runs one run time on the worker (starting one if needed).
    fn run_once(
        &self,
        run: &JobRun,
        run_time: DateTime<Tz>,
        slot: &Slot,
        worker: &mut Option<Worker>,
    ) -> Result<Value, JobFailure> {
        let task = run.task_name.as_deref().ok_or_else(|| {
            JobFailure::new(
                "refused",
                "a closure cannot run in a worker process; register the task by name",
            )
        })?;
        let request = RunRequestRef {
            job_id: &run.job_id,
            task,
            time: WireTime::from_datetime(&run_time),
            args: &run.args,
            kwargs: &run.kwargs,
            run_id: run.run_id(run_time).map(|id| &**id),
            attempt: run.attempt,
        };
        // A worker that died while idle (killed from outside, say) shows as a broken
        // pipe before the run starts: replace it and send the run again, once.
        let mut retried = false;
        loop {
            if worker.is_none() {
                *worker = Some(self.start_worker(slot)?);
            }
            let w = worker.as_mut().expect("a worker was just started");
            if let Err(e) = protocol::write_frame(&mut w.stdin, &mut w.buf, &request) {
                let lost = worker.take().expect("the worker that failed");
                let pid = lost.pid;
                drop(lost);
                let status = reap(slot, EXIT_GRACE);
                tracing::debug!(
                    target: LOG_TARGET,
                    pid,
                    error = %e,
                    status = %status.map_or_else(|| "unknown".to_owned(), describe_status),
                    "idle worker process was gone"
                );
                if !retried && !self.cancelled.load(Ordering::SeqCst) {
                    retried = true;
                    continue;
                }
                return Err(self.worker_lost_before_run(pid, status));
            }
            let deadline = self.config.timeout.map(|t| Instant::now() + t);
            return match w.stdout.read::<RunReply>(deadline) {
                Ok(reply) => reply.into_result(),
                Err(error) => {
                    let lost = worker.take().expect("the worker that failed");
                    Err(self.worker_lost(lost, slot, error))
                }
            };
        }
    }

    /// The failure of a run that could not be handed to a worker.
    fn worker_lost_before_run(&self, pid: u32, status: Option<ExitStatus>) -> JobFailure {
        if self.killed.load(Ordering::SeqCst) || self.cancelled.load(Ordering::SeqCst) {
            return cancelled_failure();
        }
        JobFailure::new(
            WORKER_START_KIND,
            format!(
                "worker process {pid} was gone before the run could start ({})",
                status.map_or_else(|| "exit status unknown".to_owned(), describe_status)
            ),
        )
    }

    /// Starts a worker process for `slot` and waits for its greeting.
    fn start_worker(&self, slot: &Slot) -> Result<Worker, JobFailure> {
        let program = match &self.config.program {
            Some(p) => p.clone(),
            None => env::current_exe().map_err(|e| {
                JobFailure::new(
                    WORKER_START_KIND,
                    format!("cannot find the running program to start a worker from: {e}"),
                )
            })?,
        };
        let mut child = Command::new(&program)
            .env(WORKER_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                JobFailure::new(
                    WORKER_START_KIND,
                    format!(
                        "cannot start a worker process from {}: {e}",
                        program.display()
                    ),
                )
            })?;
        let pid = child.id();
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(JobFailure::new(
                WORKER_START_KIND,
                "the worker process has no pipes",
            ));
        };
        *slot.lock() = Some(child);
        if self.killed.load(Ordering::SeqCst) {
            // A killing shutdown swept the slots before this worker was in one.
            slot.kill();
        }
        let mut worker = Worker {
            pid,
            stdin,
            stdout: FrameReader::new(stdout),
            buf: Vec::with_capacity(4096),
        };
        let deadline = Instant::now() + self.config.start_timeout;
        let problem = match worker.stdout.read::<Hello>(Some(deadline)) {
            Ok(hello) if hello.magic == protocol::MAGIC && hello.version == protocol::VERSION => {
                tracing::debug!(target: LOG_TARGET, pid, "worker process started");
                return Ok(worker);
            }
            Ok(hello) if hello.magic == protocol::MAGIC => format!(
                "it speaks protocol version {} (this pool: {}); is it another build of the program?",
                hello.version,
                protocol::VERSION
            ),
            Ok(_) | Err(ReadError::Invalid(_)) => {
                "it wrote something other than the worker greeting to stdout".to_owned()
            }
            Err(ReadError::Timeout) => format!(
                "it did not greet the pool within {:?}",
                self.config.start_timeout
            ),
            Err(ReadError::Eof | ReadError::Io(_)) => "it exited before greeting the pool".to_owned(),
        };
        drop(worker);
        let status = kill_and_reap(slot);
        if self.killed.load(Ordering::SeqCst) {
            return Err(cancelled_failure());
        }
        Err(JobFailure::new(
            WORKER_START_KIND,
            format!(
                "worker process {pid} ({}) did not start: {problem} ({}); {HOOK_HINT}",
                program.display(),
                status.map_or_else(|| "exit status unknown".to_owned(), describe_status)
            ),
        ))
    }

    /// The failure of a run whose worker stopped answering; the worker is killed if
    /// still alive and reaped.
    fn worker_lost(&self, worker: Worker, slot: &Slot, error: ReadError) -> JobFailure {
        let pid = worker.pid;
        drop(worker);
        let failure = match error {
            ReadError::Timeout => {
                kill_and_reap(slot);
                JobFailure::new(
                    TIMEOUT_KIND,
                    format!(
                        "the job ran longer than its {:?} timeout; worker process {pid} was killed",
                        self.config.timeout.unwrap_or_default()
                    ),
                )
            }
            ReadError::Invalid(e) => {
                kill_and_reap(slot);
                JobFailure::new(
                    PROTOCOL_KIND,
                    format!("worker process {pid} sent an invalid reply ({e}); it was killed"),
                )
            }
            ReadError::Eof | ReadError::Io(_) => match reap(slot, EXIT_GRACE) {
                _ if self.killed.load(Ordering::SeqCst) => cancelled_failure(),
                Some(status) => died_failure(pid, status),
                None => JobFailure::new(
                    SIGNAL_KIND,
                    format!("worker process {pid} was lost while running the job"),
                ),
            },
        };
        tracing::debug!(target: LOG_TARGET, pid, %failure, "worker process lost");
        failure
    }

    /// Stops an idle worker: closes its stdin so it exits, and reaps it.
    fn stop_worker(&self, worker: Worker, slot: &Slot) {
        let pid = worker.pid;
        drop(worker);
        match reap(slot, EXIT_GRACE) {
            Some(status) if status.success() => {
                tracing::debug!(target: LOG_TARGET, pid, "worker process stopped");
            }
            Some(status) if self.killed.load(Ordering::SeqCst) => {
                tracing::debug!(target: LOG_TARGET, pid, status = %describe_status(status), "worker process killed by shutdown");
            }
            Some(status) => {
                apscheduler_core::log_warn!(target: LOG_TARGET, pid, status = %describe_status(status), "worker process did not exit cleanly");
            }
            None => {}
        }
    }

    // --------------------------------------------------------------- reporting

    /// Reports a run that will not start: one `cancelled` outcome per run time, then
    /// `finished`.
    fn cancel(&self, run: JobRun) {
        tracing::debug!(target: LOG_TARGET, job_id = %run.job_id, "job cancelled by shutdown");
        self.fail_all(run, &cancelled_failure());
    }

    fn fail_all(&self, run: JobRun, failure: &JobFailure) {
        report_failed(&*self.reporter, &run, failure);
        finish_run(&*self.reporter, &run, &self.tracker);
    }
}

/// Counts a driver thread out, even if it unwinds.
struct DriverExit<'a> {
    pool: &'a Pool,
}

impl Drop for DriverExit<'_> {
    fn drop(&mut self) {
        self.pool.lock_queue().drivers -= 1;
        self.pool.exited.notify_all();
    }
}

/// Waits up to `grace` for the slot's worker to exit on its own, then kills it;
/// returns its exit status.
fn reap(slot: &Slot, grace: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + grace;
    let mut pause = Duration::from_micros(20);
    loop {
        {
            let mut guard = slot.lock();
            let child = guard.as_mut()?;
            match child.try_wait() {
                Ok(Some(status)) => {
                    *guard = None;
                    return Some(status);
                }
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    *guard = None;
                    return status;
                }
                Ok(None) => {}
                Err(_) => {
                    *guard = None;
                    return None;
                }
            }
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// Kills the slot's worker and reaps it.
fn kill_and_reap(slot: &Slot) -> Option<ExitStatus> {
    let mut guard = slot.lock();
    let mut child = guard.take()?;
    let _ = child.kill();
    child.wait().ok()
}

fn cancelled_failure() -> JobFailure {
    JobFailure::new(
        CANCELLED_KIND,
        "the executor was shut down before the job finished",
    )
}

/// The failure of a run whose worker died with `status`.
fn died_failure(pid: u32, status: ExitStatus) -> JobFailure {
    if let Some(signal) = status.signal() {
        JobFailure::new(
            SIGNAL_KIND,
            format!(
                "worker process {pid} was terminated by {} while running the job",
                describe_signal(signal)
            ),
        )
    } else {
        JobFailure::new(
            EXIT_KIND,
            format!(
                "worker process {pid} exited with {} while running the job",
                describe_status(status)
            ),
        )
    }
}

/// `exit code 3` or `signal 9 (SIGKILL)`.
fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => describe_signal(signal),
        (None, None) => status.to_string(),
    }
}

/// `signal 9 (SIGKILL)`.
pub(crate) fn describe_signal(signal: i32) -> String {
    use rustix::process::Signal;
    const NAMES: &[(Signal, &str)] = &[
        (Signal::HUP, "SIGHUP"),
        (Signal::INT, "SIGINT"),
        (Signal::QUIT, "SIGQUIT"),
        (Signal::ILL, "SIGILL"),
        (Signal::TRAP, "SIGTRAP"),
        (Signal::ABORT, "SIGABRT"),
        (Signal::BUS, "SIGBUS"),
        (Signal::FPE, "SIGFPE"),
        (Signal::KILL, "SIGKILL"),
        (Signal::USR1, "SIGUSR1"),
        (Signal::SEGV, "SIGSEGV"),
        (Signal::USR2, "SIGUSR2"),
        (Signal::PIPE, "SIGPIPE"),
        (Signal::ALARM, "SIGALRM"),
        (Signal::TERM, "SIGTERM"),
        (Signal::XCPU, "SIGXCPU"),
        (Signal::XFSZ, "SIGXFSZ"),
        (Signal::SYS, "SIGSYS"),
    ];
    match NAMES.iter().find(|(s, _)| s.as_raw() == signal) {
        Some((_, name)) => format!("signal {signal} ({name})"),
        None => format!("signal {signal}"),
    }
}

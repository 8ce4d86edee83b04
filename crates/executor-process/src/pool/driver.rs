//! One started pool: its queue, the driver threads that each own a worker process,
//! and how a worker is started, fed runs, stopped and reaped.

use std::collections::VecDeque;
use std::env;
use std::mem;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use apscheduler_core::serde_json::Value;
use apscheduler_core::{
    finish_run, report_each_run_time, report_failed, InstanceTracker, JobFailure, JobRun,
    RunReporter,
};
use chrono::DateTime;
use chrono_tz::Tz;

use crate::protocol::{self, FrameReader, Hello, ReadError, RunReply, RunRequestRef, WireTime};
use crate::worker::WORKER_ENV;
use crate::{PROTOCOL_KIND, SIGNAL_KIND, TIMEOUT_KIND, WORKER_START_KIND};

use super::failure::{cancelled_failure, describe_status, died_failure};
use super::{Config, EXIT_GRACE, HOOK_HINT, IN_DRIVER, LOG_TARGET};

/// One started pool: its queue, driver threads and worker processes.
pub(super) struct Pool {
    config: Config,
    pub(super) reporter: Arc<dyn RunReporter>,
    pub(super) tracker: Arc<InstanceTracker>,
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
    /// A pool with no driver thread yet: the first submissions start them.
    pub(super) fn new(
        config: Config,
        reporter: Arc<dyn RunReporter>,
        tracker: Arc<InstanceTracker>,
    ) -> Pool {
        Pool {
            config,
            reporter,
            tracker,
            cancelled: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            exited: Condvar::new(),
            slots: Mutex::new(Vec::new()),
            handles: Mutex::new(Vec::new()),
        }
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `run`, starting a driver thread if no idle one will take it; gives the
    /// run back when the pool is closed.
    // The run comes back by value only when the pool is closed; boxing it would cost an
    // allocation on every submission.
    #[allow(clippy::result_large_err)]
    pub(super) fn enqueue(this: &Arc<Pool>, run: JobRun) -> Result<(), JobRun> {
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
    pub(super) fn close(&self, cancel: bool) -> Vec<JobRun> {
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
    pub(super) fn kill_all(&self) {
        self.killed.store(true, Ordering::SeqCst);
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for slot in slots {
            slot.kill();
        }
    }

    /// Waits up to `limit` for every driver thread (and so every worker) to be gone.
    pub(super) fn wait_exited(&self, limit: Duration) {
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

    pub(super) fn all_exited(&self) -> bool {
        self.lock_queue().drivers == 0
    }

    /// Joins the driver threads (except the calling one: `shutdown(true)` from a
    /// reporter callback must not wait for itself).
    pub(super) fn join(&self) {
        let handles = mem::take(&mut *self.handles.lock().unwrap_or_else(|e| e.into_inner()));
        let me = thread::current().id();
        for handle in handles {
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }

    pub(super) fn collect_pids(&self, pids: &mut Vec<u32>) {
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
            fence: run.fence(run_time),
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
    pub(super) fn cancel(&self, run: JobRun) {
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

//! The worker side: what a re-executed copy of the program does instead of its `main`.

use std::env;
use std::fs::File;
use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use apscheduler_core::serde_json::Value;
use apscheduler_core::{
    caught_outcome, run_sync_task, JobFailure, TaskContext, TaskFn, TaskRegistry,
};

use crate::protocol::{self, FrameReader, Hello, ReadError, RunReply, RunRequest};
use crate::UNKNOWN_TASK_KIND;

/// The environment variable that marks a process as a pool worker. The pool sets it to
/// its own process id when it starts a worker; [`run_worker_if_requested`] removes it.
pub const WORKER_ENV: &str = "APSCHEDULER_RS_PROCESS_WORKER";

/// The exit code of a worker whose pool is already gone when it starts.
const EXIT_ORPHANED: i32 = 70;
/// The exit code of a worker that could not set up its pipes or read a bad frame.
const EXIT_PROTOCOL: i32 = 71;

/// Whether this process was started by a [`ProcessPoolExecutor`](crate::ProcessPoolExecutor)
/// as a worker and has not become one yet (the [`WORKER_ENV`] variable is set).
pub fn is_worker_process() -> bool {
    env::var_os(WORKER_ENV).is_some()
}

/// Runs this process as a pool worker when the pool started it as one, and returns the
/// exit code to end the process with; returns `None` at once in any other process.
///
/// Call it at the top of `main`, with the same named tasks the scheduler registers:
///
/// ```no_run
/// # use apscheduler_core::TaskRegistry;
/// # fn build_registry() -> TaskRegistry { TaskRegistry::new() }
/// fn main() {
///     let registry = build_registry();
///     if let Some(code) = apscheduler_executor_process::run_worker_if_requested(&registry) {
///         std::process::exit(code);
///     }
///     // ... the program proper: build the scheduler with `registry` ...
/// }
/// ```
///
/// In worker mode it removes [`WORKER_ENV`] from the environment, makes the process
/// die with the pool (Linux: `PR_SET_PDEATHSIG` = `SIGKILL`), moves the protocol to a
/// private copy of stdout and points stdout at stderr (so a task's `println!` cannot
/// corrupt the protocol and still shows), then serves runs until the pool closes its
/// stdin (exit code 0).
pub fn run_worker_if_requested(registry: &TaskRegistry) -> Option<i32> {
    let parent = env::var_os(WORKER_ENV)?;
    // Not inherited by whatever the tasks start, and lets this process build a pool of
    // its own (a pool refuses to start while the variable is set).
    env::remove_var(WORKER_ENV);
    let parent: Option<u32> = parent.to_str().and_then(|s| s.parse().ok());
    Some(serve(registry, parent))
}

/// Like [`run_worker_if_requested`], but exits the process itself in worker mode; the
/// one line for the top of `main`:
///
/// ```no_run
/// # use apscheduler_core::TaskRegistry;
/// # fn build_registry() -> TaskRegistry { TaskRegistry::new() }
/// fn main() {
///     let registry = build_registry();
///     apscheduler_executor_process::worker_main(&registry);
///     // ... only the pool's parent process gets here ...
/// }
/// ```
pub fn worker_main(registry: &TaskRegistry) {
    if let Some(code) = run_worker_if_requested(registry) {
        std::process::exit(code);
    }
}

fn serve(registry: &TaskRegistry, parent: Option<u32>) -> i32 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::process::{set_parent_process_death_signal, Signal};
        // The pool's driver thread is the "parent" here; it outlives this process.
        let _ = set_parent_process_death_signal(Some(Signal::KILL));
    }
    if let Some(parent) = parent {
        if std::os::unix::process::parent_id() != parent {
            // The pool died before the death signal was armed, or the variable was
            // inherited from somewhere else.
            eprintln!(
                "apscheduler worker: {WORKER_ENV} names process {parent}, which is not this \
                 process's parent (the pool is gone?); exiting with code {EXIT_ORPHANED}"
            );
            return EXIT_ORPHANED;
        }
    }

    let mut out = match protocol_channel() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("apscheduler worker: cannot set up the protocol pipe: {e}");
            return EXIT_PROTOCOL;
        }
    };
    let mut input = FrameReader::new(io::stdin().lock());
    let mut buf = Vec::with_capacity(4096);
    let hello = Hello {
        magic: protocol::MAGIC.to_owned(),
        version: protocol::VERSION,
        pid: std::process::id(),
    };
    if protocol::write_frame(&mut out, &mut buf, &hello).is_err() {
        return 0;
    }
    let mut runtime = None;
    loop {
        let request: RunRequest = match input.read(None) {
            Ok(request) => request,
            Err(ReadError::Eof) => return 0,
            Err(ReadError::Invalid(e)) => {
                eprintln!("apscheduler worker: invalid request: {e}");
                return EXIT_PROTOCOL;
            }
            Err(ReadError::Io(e)) => {
                eprintln!("apscheduler worker: cannot read a request: {e}");
                return EXIT_PROTOCOL;
            }
            Err(ReadError::Timeout) => continue,
        };
        let reply = RunReply::from_result(run(registry, request, &mut runtime));
        if protocol::write_frame(&mut out, &mut buf, &reply).is_err() {
            // The pool is gone.
            return 0;
        }
    }
}

/// A private copy of stdout (close-on-exec, so processes a task starts do not hold the
/// pipe) for the protocol; stdout itself then points at stderr.
fn protocol_channel() -> io::Result<File> {
    let stdout = io::stdout();
    let private = rustix::io::fcntl_dupfd_cloexec(&stdout, 3)?;
    rustix::stdio::dup2_stdout(io::stderr())?;
    Ok(File::from(private))
}

/// Runs one request in this process, catching panics.
fn run(
    registry: &TaskRegistry,
    request: RunRequest,
    runtime: &mut Option<tokio::runtime::Runtime>,
) -> Result<Value, JobFailure> {
    let scheduled_run_time = request
        .time
        .to_datetime()
        .map_err(|e| JobFailure::new(crate::PROTOCOL_KIND, e))?;
    let Some(task) = registry.get(&request.task) else {
        return Err(JobFailure::new(
            UNKNOWN_TASK_KIND,
            format!(
                "no task is registered under the name '{}' in the worker process \
                 (register it in the registry passed to worker_main)",
                request.task
            ),
        ));
    };
    let ctx = TaskContext {
        job_id: request.job_id.into(),
        scheduled_run_time,
        run_id: request.run_id.map(Into::into),
        args: Arc::new(request.args),
        kwargs: Arc::new(request.kwargs),
        attempt: request.attempt,
        // A worker process cannot see the parent's signal: its runs are not cancelled.
        cancel: Default::default(),
        fence: request.fence,
    };
    let result = match task {
        TaskFn::Sync(_) => run_sync_task(task, &ctx),
        TaskFn::Async(f) => {
            if runtime.is_none() {
                let built = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| JobFailure::from_error("runtime", &e))?;
                *runtime = Some(built);
            }
            let rt = runtime.as_ref().expect("built above");
            let caught = catch_unwind(AssertUnwindSafe(|| rt.block_on(f(ctx))));
            if caught.is_err() {
                // Start the next async task on a fresh runtime.
                *runtime = None;
            }
            caught_outcome(caught)
        }
    };
    let _ = io::stdout().flush();
    result
}

//! What jobs run: named tasks (found again by name after a restart or in a worker
//! process) and closures (in-process only), sync or async.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::DateTime;
use chrono_tz::Tz;
use serde_json::{Map, Value};

/// The error a task returns. Its `source()` chain is reported in `EVENT_JOB_ERROR`.
pub type TaskError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A task error with an explicit kind, reported as the failure's kind in
/// `EVENT_JOB_ERROR` (other errors are reported with kind `error`).
///
/// ```
/// use apscheduler_core::{TaskFailure, TaskResult};
/// fn task() -> TaskResult {
///     Err(TaskFailure::new("ValueError", "boom").into())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// The failure kind (an error type name, such as `ValueError` or `Timeout`).
    pub kind: String,
    /// The message.
    pub message: String,
    /// Structured detail the run history records: an object with any of `exit_code`,
    /// `http_status` and `output` (see [`crate::history`]).
    pub detail: Option<Value>,
}

impl TaskFailure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        TaskFailure {
            kind: kind.into(),
            message: message.into(),
            detail: None,
        }
    }

    /// The same failure carrying `detail` (`{"exit_code": 3, "output": "..."}`).
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskFailure {}

/// What a task returns: a JSON value (carried by `EVENT_JOB_EXECUTED`) or an error.
pub type TaskResult = Result<Value, TaskError>;

/// A boxed future, as async tasks return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a task receives for one run.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The job's id.
    pub job_id: Arc<str>,
    /// The scheduled run time this run is for.
    pub scheduled_run_time: DateTime<Tz>,
    /// This run's id in the run history, when the scheduler records history.
    pub run_id: Option<Arc<str>>,
    /// Positional arguments.
    pub args: Arc<Vec<Value>>,
    /// Keyword arguments.
    pub kwargs: Arc<Map<String, Value>>,
    /// Which attempt at the fire time this run is: 1 for the first run, 2 and up for
    /// the retries of the job's retry policy.
    pub attempt: u32,
    /// Set when the job's overlap policy (`cancel_other`, `terminate_other`) asks this
    /// run to stop for a newer fire time: a long task checks it and returns early.
    pub cancel: crate::CancelSignal,
    /// The run's fence, with leased runs ([`RunStore`](crate::RunStore)): it only grows
    /// per job, and a run taken over from a scheduler that stopped renewing its lease
    /// gets a greater one. Work that writes elsewhere can store it beside what it
    /// writes and refuse a write carrying a smaller one (a stale writer). `None`
    /// without leased runs.
    pub fence: Option<u64>,
}

impl TaskContext {
    /// The work's idempotency key, `job@fire-time#attempt` (the fire time in RFC 3339
    /// UTC to the microsecond): the same for every start of the same work, so a task
    /// can record it and skip work it finds done ([`RunKey::idempotency_key`](crate::RunKey::idempotency_key)).
    pub fn idempotency_key(&self) -> String {
        crate::RunKey {
            job_id: self.job_id.clone(),
            fire_time: self.scheduled_run_time.with_timezone(&chrono::Utc),
            attempt: self.attempt,
            rerun: 0,
        }
        .idempotency_key()
    }
}

impl TaskContext {
    /// Positional argument `i`, if present.
    pub fn arg(&self, i: usize) -> Option<&Value> {
        self.args.get(i)
    }

    /// Keyword argument `name`, if present.
    pub fn kwarg(&self, name: &str) -> Option<&Value> {
        self.kwargs.get(name)
    }
}

type SyncFn = dyn Fn(&TaskContext) -> TaskResult + Send + Sync;
type AsyncFn = dyn Fn(TaskContext) -> BoxFuture<TaskResult> + Send + Sync;

/// A callable task: a plain function (run on a worker thread) or an async one (run on
/// a tokio runtime).
#[derive(Clone)]
pub enum TaskFn {
    /// Runs to completion on the calling thread.
    Sync(Arc<SyncFn>),
    /// Returns a future to be awaited.
    Async(Arc<AsyncFn>),
}

impl TaskFn {
    /// Wraps a plain function.
    pub fn from_fn<F>(f: F) -> Self
    where
        F: Fn(&TaskContext) -> TaskResult + Send + Sync + 'static,
    {
        TaskFn::Sync(Arc::new(f))
    }

    /// Wraps an async function.
    pub fn from_async<F, Fut>(f: F) -> Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        TaskFn::Async(Arc::new(move |ctx| Box::pin(f(ctx))))
    }

    /// Whether this is an async task.
    pub fn is_async(&self) -> bool {
        matches!(self, TaskFn::Async(_))
    }
}

impl fmt::Debug for TaskFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskFn::Sync(_) => "TaskFn::Sync(..)",
            TaskFn::Async(_) => "TaskFn::Async(..)",
        })
    }
}

/// What a job refers to.
#[derive(Clone)]
pub enum Task {
    /// A task registered by name in the [`TaskRegistry`]: can be persisted and sent to
    /// worker processes.
    Named(Arc<str>),
    /// A closure: allowed only where nothing is serialized (memory store, in-process
    /// executors).
    Closure(TaskFn),
}

impl Task {
    /// The registered name, for a named task.
    pub fn name(&self) -> Option<&str> {
        match self {
            Task::Named(n) => Some(n),
            Task::Closure(_) => None,
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::Named(n) => write!(f, "Task::Named({n:?})"),
            Task::Closure(t) => write!(f, "Task::Closure({t:?})"),
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::Named(n) => f.write_str(n),
            Task::Closure(_) => f.write_str("<closure>"),
        }
    }
}

/// Named tasks: the Rust form of APScheduler's "the callable must be globally
/// reachable". Jobs in persistent stores and worker processes refer to tasks by name;
/// no code is ever loaded from a store.
#[derive(Clone, Default)]
pub struct TaskRegistry {
    tasks: HashMap<String, TaskFn>,
}

impl TaskRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a plain function under `name` (replacing any previous one).
    pub fn register<F>(&mut self, name: impl Into<String>, f: F) -> &mut Self
    where
        F: Fn(&TaskContext) -> TaskResult + Send + Sync + 'static,
    {
        self.tasks.insert(name.into(), TaskFn::from_fn(f));
        self
    }

    /// Registers an async function under `name`.
    pub fn register_async<F, Fut>(&mut self, name: impl Into<String>, f: F) -> &mut Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        self.tasks.insert(name.into(), TaskFn::from_async(f));
        self
    }

    /// Registers an already wrapped task.
    pub fn insert(&mut self, name: impl Into<String>, task: TaskFn) -> &mut Self {
        self.tasks.insert(name.into(), task);
        self
    }

    /// The task registered under `name`.
    pub fn get(&self, name: &str) -> Option<&TaskFn> {
        self.tasks.get(name)
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.tasks.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tasks.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRegistry")
            .field("tasks", &self.names())
            .finish()
    }
}

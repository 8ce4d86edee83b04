//! The suite's tasks, resolvable by name, and the run times its [`JobRun`]s use.

use std::error::Error as StdError;
use std::fmt;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{JobRun, TaskContext, TaskFailure, TaskFn, TaskRegistry, TaskResult};
use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

use super::TIMEOUT;

/// Task name: returns its context as JSON (see the [module docs](super)).
pub const ECHO: &str = "testkit.echo";
/// Task name: returns an error with a `source()` chain built from its arguments.
pub const FAIL: &str = "testkit.fail";
/// Task name: returns a `TaskFailure` of kind `args[0]` with message `args[1]`.
pub const FAIL_KIND: &str = "testkit.fail-kind";
/// Task name: panics with the message `args[0]`.
pub const PANIC: &str = "testkit.panic";
/// Task name: blocks until the [`Gate`](super::Gate) whose address is `args[0]` is released.
pub const BLOCK: &str = "testkit.block";
/// Task name: does nothing and returns `null`.
pub const NOOP: &str = "testkit.noop";

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
            fences: Vec::new(),
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

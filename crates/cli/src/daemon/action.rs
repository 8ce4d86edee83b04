//! Running a job's action: a shell command in its own process group, or an HTTP
//! request. Each returns what the run history records: the exit code or HTTP status
//! and the tail of the output, as the task's value (success) or failure detail.

use std::io::Read as _;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::{CancelSignal, RunRecord, TaskFailure, TaskResult};
use chrono::DateTime;
use chrono_tz::Tz;
use rustix::process::{kill_process_group, Pid, Signal};
use serde_json::json;
use tokio::sync::watch;

use super::config::Action;
use super::run_as::{RunAs, DEFAULT_SHELL};

/// Who and when a run is, for the process's environment.
#[derive(Debug, Clone)]
pub(crate) struct RunEnv {
    pub(crate) job_id: String,
    pub(crate) run_id: String,
    pub(crate) scheduled_at: DateTime<Tz>,
    /// Which attempt at the fire time this run is (1, then 2 and up for retries).
    pub(crate) attempt: u32,
    /// `job@fire-time#attempt`: the same for every start of the same work.
    pub(crate) idempotency_key: String,
    /// The run's fence, with leased runs.
    pub(crate) fence: Option<u64>,
    /// Set when the job's overlap policy cancels this run for a newer fire time: a
    /// command's process group gets SIGTERM, then SIGKILL after the grace
    /// (`terminate_other`: SIGKILL at once). An HTTP request runs to its end.
    pub(crate) cancel: CancelSignal,
}

/// Settings every run shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Between SIGTERM and SIGKILL of a process group.
    pub(crate) kill_grace: Duration,
    /// How many bytes of output are kept (the last ones).
    pub(crate) output_cap: usize,
}

/// Runs `action`; `stop` turning true interrupts it (the daemon is stopping).
pub(crate) async fn run(
    action: &Action,
    env: &RunEnv,
    limits: Limits,
    stop: watch::Receiver<bool>,
) -> TaskResult {
    run_capturing(action, env, limits, 0, stop).await.0
}

/// The start of a command's output, kept for its mail (`[mail] max_output`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Captured {
    /// The first bytes written (stdout and stderr, interleaved), at most the cap.
    pub(crate) head: Vec<u8>,
    /// How many bytes the command wrote in all.
    pub(crate) total: u64,
}

/// [`run`], keeping also the first `capture` bytes of a command's output (nothing
/// when 0, and nothing for HTTP requests): what a mail carries.
pub(crate) async fn run_capturing(
    action: &Action,
    env: &RunEnv,
    limits: Limits,
    capture: usize,
    stop: watch::Receiver<bool>,
) -> (TaskResult, Captured) {
    match action {
        Action::Command { .. } => run_command(action, env, limits, capture, stop).await,
        Action::Http { .. } => {
            let action = action.clone();
            let cap = limits.output_cap;
            let mut stop = stop;
            let result = tokio::select! {
                joined = tokio::task::spawn_blocking(move || run_http(&action, cap)) => {
                    joined.unwrap_or_else(|e| Err(TaskFailure::new("error", format!("HTTP job panicked: {e}")).into()))
                }
                _ = stop.wait_for(|s| *s) => Err(TaskFailure::new(
                    "interrupted",
                    "the daemon stopped during the request",
                ).into()),
            };
            (result, Captured::default())
        }
    }
}

/// The last `cap` bytes written to a run's stdout and stderr, interleaved (and the
/// first `head_cap` ones, for a mail).
#[derive(Debug)]
struct Tail {
    bytes: Vec<u8>,
    cap: usize,
    head: Vec<u8>,
    head_cap: usize,
    total: u64,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let room = self.head_cap.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > self.cap.saturating_mul(2).max(8192) {
            let cut = self.bytes.len() - self.cap;
            self.bytes.drain(..cut);
        }
    }

    fn text(&self) -> String {
        RunRecord::output_tail(&self.bytes, self.cap)
    }
}

/// Reads the run's output pipe into `tail` until every writer has closed it.
fn pump(mut from: std::io::PipeReader, tail: &Mutex<Tail>) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
            Ok(n) => tail
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(&buf[..n]),
        }
    }
}

/// How a command's wait ended.
enum End {
    Exited(std::process::ExitStatus),
    TimedOut,
    Interrupted,
    /// The overlap policy cancelled the run; `true`: killed at once (`terminate_other`).
    Cancelled(bool),
}

async fn run_command(
    action: &Action,
    env: &RunEnv,
    limits: Limits,
    capture: usize,
    stop: watch::Receiver<bool>,
) -> (TaskResult, Captured) {
    let tail = Arc::new(Mutex::new(Tail {
        bytes: Vec::new(),
        cap: limits.output_cap,
        head: Vec::new(),
        head_cap: capture,
        total: 0,
    }));
    let result = command_into(action, env, limits, &tail, stop).await;
    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
    let captured = Captured {
        head: std::mem::take(&mut tail.head),
        total: tail.total,
    };
    (result, captured)
}

/// Runs the command, its output going to `tail`.
async fn command_into(
    action: &Action,
    env: &RunEnv,
    limits: Limits,
    tail: &Arc<Mutex<Tail>>,
    mut stop: watch::Receiver<bool>,
) -> TaskResult {
    let Action::Command {
        command,
        cwd,
        env: vars,
        timeout,
        kill_grace,
        user,
        group,
        shell,
        stdin,
    } = action
    else {
        unreachable!("run_command gets command actions")
    };
    let timeout = timeout.map(Duration::from_secs_f64);
    // The job's own grace, else the daemon's.
    let limits = Limits {
        kill_grace: kill_grace.map_or(limits.kill_grace, Duration::from_secs_f64),
        ..limits
    };
    let shell = shell.as_deref().unwrap_or(DEFAULT_SHELL);
    // Looked up at each run: a user removed since the config was loaded fails the run
    // (it never runs as the daemon's user instead).
    let run_as = user
        .as_deref()
        .map(|u| RunAs::resolve(u, group.as_deref()))
        .transpose()
        .map_err(|e| TaskFailure::new("spawn", format!("{}: {}", e.field, e.message)))?;
    // One pipe for stdout and stderr: the output keeps the order it was written in.
    let (reader, writer) = std::io::pipe()
        .map_err(|e| TaskFailure::new("spawn", format!("cannot create the output pipe: {e}")))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| TaskFailure::new("spawn", format!("cannot create the output pipe: {e}")))?;
    let mut cmd = tokio::process::Command::new(shell);
    cmd.arg("-c")
        .arg(command)
        .process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(writer)
        .stderr(writer2);
    if let Some(run_as) = &run_as {
        run_as.apply(&mut cmd);
        // cron runs a user's job in the user's home; `cwd` says otherwise.
        if cwd.is_none() && run_as.home.is_dir() {
            cmd.current_dir(&run_as.home);
        }
    }
    if run_as.is_some() || shell != DEFAULT_SHELL {
        cmd.env("SHELL", shell);
    }
    // The job's own variables last: they override cron's, as a crontab's lines do.
    cmd.envs(vars)
        .env("APS_JOB_ID", &env.job_id)
        .env("APS_RUN_ID", &env.run_id)
        .env("APS_ATTEMPT", env.attempt.to_string())
        .env("APS_IDEMPOTENCY_KEY", &env.idempotency_key)
        .env(
            "APS_SCHEDULED_AT",
            // Microseconds: the precision the run history keeps.
            env.scheduled_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        );
    if let Some(fence) = env.fence {
        cmd.env("APS_FENCE", fence.to_string());
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let spawned = cmd.spawn();
    // The parent's copies of the pipe's write end go now, or the reader never sees EOF.
    drop(cmd);
    let mut child = spawned.map_err(|e| {
        let dir = cwd
            .as_deref()
            .map(|d| format!(" in '{d}'"))
            .unwrap_or_default();
        let who = user
            .as_deref()
            .map(|u| format!(" as '{u}'"))
            .unwrap_or_default();
        TaskFailure::new(
            "spawn",
            format!("cannot start {shell} -c {command:?}{who}{dir}: {e}"),
        )
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let text = text.clone().into_bytes();
        let job_id = env.job_id.clone();
        // Written beside the wait (a large text fills the pipe until the command reads
        // it); dropping the pipe closes it, so the command sees the end of its input.
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            if let Err(e) = pipe.write_all(&text).await {
                // A command that exits without reading all of it: as under cron.
                tracing::debug!(job_id = %job_id, "standard input not fully written: {e}");
            }
        });
    }
    let group = child.id().and_then(|id| Pid::from_raw(id as i32));
    let reader = {
        let tail = tail.clone();
        tokio::task::spawn_blocking(move || pump(reader, &tail))
    };
    let timer = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let end = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => End::Exited(s),
            Err(e) => return Err(TaskFailure::new("error", format!("waiting for the command failed: {e}")).into()),
        },
        _ = timer => End::TimedOut,
        _ = stop.wait_for(|s| *s) => End::Interrupted,
        _ = env.cancel.cancelled() => End::Cancelled(env.cancel.request().is_some_and(|r| r.terminate)),
    };
    let mut exited_after_term = None;
    if !matches!(end, End::Exited(_)) {
        // The whole group: the shell's children and grandchildren too; `terminate_other`
        // skips the polite SIGTERM.
        if !matches!(end, End::Cancelled(true)) {
            if let Some(pg) = group {
                let _ = kill_process_group(pg, Signal::TERM);
            }
            if let Ok(Ok(status)) = tokio::time::timeout(limits.kill_grace, child.wait()).await {
                exited_after_term = Some(status);
            }
        }
        if let Some(pg) = group {
            let _ = kill_process_group(pg, Signal::KILL);
        }
        let _ = child.wait().await;
    }
    // Output still held open by a background grandchild is not waited for long (the
    // reading thread ends when the last writer closes the pipe).
    let _ = tokio::time::timeout(Duration::from_millis(200), reader).await;
    let output = tail.lock().unwrap_or_else(|e| e.into_inner()).text();
    match end {
        End::Exited(status) => match (status.code(), status.signal()) {
            (Some(0), _) => Ok(json!({ "exit_code": 0, "output": output })),
            (Some(code), _) => Err(TaskFailure::new("exit", format!("exit status {code}"))
                .with_detail(json!({ "exit_code": code, "output": output }))
                .into()),
            (None, signal) => Err(TaskFailure::new(
                "signal",
                format!("killed by signal {}", signal.unwrap_or(0)),
            )
            .with_detail(json!({ "output": output }))
            .into()),
        },
        End::TimedOut => Err(TaskFailure::new(
            "timeout",
            format!(
                "still running after the {} time-out: the process group got SIGTERM, then SIGKILL",
                humantime::format_duration(timeout.unwrap_or_default())
            ),
        )
        .with_detail(json!({ "output": output }))
        .into()),
        End::Cancelled(true) => Err(TaskFailure::new(
            "cancelled",
            "the process group got SIGKILL at once",
        )
        .with_detail(json!({ "output": output }))
        .into()),
        End::Cancelled(false) => Err(TaskFailure::new(
            "cancelled",
            match exited_after_term {
                Some(status) => format!(
                    "the process group got SIGTERM; the command ended ({}) within the {} grace",
                    describe(status),
                    humantime::format_duration(limits.kill_grace)
                ),
                None => format!(
                    "the process group got SIGTERM, then SIGKILL after the {} grace",
                    humantime::format_duration(limits.kill_grace)
                ),
            },
        )
        .with_detail(json!({ "exit_code": exited_after_term.and_then(|s| s.code()), "output": output }))
        .into()),
        End::Interrupted => Err(TaskFailure::new(
            "interrupted",
            "the daemon stopped and its grace period ended: the process group got SIGTERM, then SIGKILL",
        )
        .with_detail(json!({ "output": output }))
        .into()),
    }
}

/// An exit status in words: `exit status 0`, `signal 15`.
fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, signal) => format!("signal {}", signal.unwrap_or(0)),
    }
}

fn run_http(action: &Action, cap: usize) -> TaskResult {
    let Action::Http {
        method,
        url,
        headers,
        body,
        expect_status,
        timeout,
    } = action
    else {
        unreachable!("run_http gets HTTP actions")
    };
    let mut agent = ureq::AgentBuilder::new();
    if let Some(t) = timeout {
        agent = agent.timeout(Duration::from_secs_f64(*t));
    }
    let mut request = agent.build().request(method, url);
    for (k, v) in headers {
        request = request.set(k, v);
    }
    let sent = match body {
        Some(b) => request.send_string(b),
        None => request.call(),
    };
    let response = match sent {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => {
            let timed_out = t.kind() == ureq::ErrorKind::Io
                && t.to_string().to_ascii_lowercase().contains("timed out");
            let kind = if timed_out { "timeout" } else { "http" };
            return Err(TaskFailure::new(kind, format!("{method} {url}: {t}")).into());
        }
    };
    let status = response.status();
    let mut bytes = Vec::new();
    let _ = response
        .into_reader()
        .take(64 * 1024 * 1024)
        .read_to_end(&mut bytes);
    let output = RunRecord::output_tail(&bytes, cap);
    let ok = if expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        expect_status.contains(&status)
    };
    let detail = json!({ "http_status": status, "output": output });
    if ok {
        Ok(detail)
    } else {
        Err(TaskFailure::new(
            "http",
            format!("{method} {url}: unexpected status {status}"),
        )
        .with_detail(detail)
        .into())
    }
}

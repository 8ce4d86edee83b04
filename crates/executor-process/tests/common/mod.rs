//! What the `harness = false` test binaries share: the named tasks (registered
//! identically in the test process and in its workers, which re-execute the binary), a
//! test runner with libtest's command line, and helpers to look at worker processes.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::chrono::DateTime;
use apscheduler_core::chrono_tz::Tz;
use apscheduler_core::serde_json::{json, Value};
use libtest_mimic::{Arguments, Trial};

use apscheduler_core::{JobFailure, JobRun, RunReporter, TaskFailure, TaskRegistry};

/// Returns the worker's process id.
pub(crate) const PID: &str = "test.pid";
/// Calls `std::process::abort()`.
pub(crate) const ABORT: &str = "test.abort";
/// Calls `std::process::exit(args[0])`.
pub(crate) const EXIT: &str = "test.exit";
/// Sleeps `args[0]` milliseconds.
pub(crate) const SLEEP: &str = "test.sleep";
/// Connects to `args[0]`, sends its pid as a line, then waits for one byte.
pub(crate) const PID_THEN_BLOCK: &str = "test.pid_then_block";
/// Prints to stdout and stderr, then returns `"printed"`.
pub(crate) const PRINT: &str = "test.print";
/// An async task: sleeps 5 ms on the worker's runtime, returns its job id.
pub(crate) const ASYNC: &str = "test.async";
/// Fails with a `TaskFailure` of kind `ValueError`.
pub(crate) const VALUE_ERROR: &str = "test.value_error";
/// Burns CPU: `args[0]` rounds of a 64-bit mix; returns the digest.
pub(crate) const SPIN: &str = "test.spin";

/// The tasks of every test binary: the testkit's plus this crate's own.
pub(crate) fn registry() -> TaskRegistry {
    let mut registry = TaskRegistry::new();
    apscheduler_testkit::executor::register_tasks(&mut registry);
    registry
        .register(PID, |_| Ok(json!(std::process::id())))
        .register(ABORT, |_| std::process::abort())
        .register(EXIT, |ctx| {
            let code = ctx.arg(0).and_then(Value::as_i64).unwrap_or(1);
            std::process::exit(i32::try_from(code).unwrap_or(1))
        })
        .register(SLEEP, |ctx| {
            let ms = ctx.arg(0).and_then(Value::as_u64).unwrap_or(0);
            std::thread::sleep(Duration::from_millis(ms));
            Ok(json!("slept"))
        })
        .register(PID_THEN_BLOCK, |ctx| {
            let addr: SocketAddr = ctx
                .arg(0)
                .and_then(Value::as_str)
                .ok_or("needs an address")?
                .parse()?;
            let mut stream = TcpStream::connect(addr)?;
            stream.write_all(format!("{}\n", std::process::id()).as_bytes())?;
            stream.set_read_timeout(Some(Duration::from_secs(60)))?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte)?;
            Ok(json!("released"))
        })
        .register(PRINT, |_| {
            println!("a task printing to stdout (it goes to stderr in a worker)");
            eprintln!("a task printing to stderr");
            Ok(json!("printed"))
        })
        .register(VALUE_ERROR, |_| {
            Err(TaskFailure::new("ValueError", "bad value").into())
        })
        .register(SPIN, |ctx| {
            let rounds = ctx.arg(0).and_then(Value::as_u64).unwrap_or(0);
            Ok(json!(spin(rounds)))
        })
        .register_async(ASYNC, |ctx| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(json!(&*ctx.job_id))
        });
    registry
}

/// A CPU-bound loop (a splitmix64 chain) that the optimizer cannot skip.
pub(crate) fn spin(rounds: u64) -> u64 {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..rounds {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15 ^ i);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x = std::hint::black_box(z ^ (z >> 31));
    }
    x
}

/// The pids of this process's children (alive or zombie), from `/proc`.
pub(crate) fn child_pids() -> Vec<u32> {
    let me = std::process::id();
    let mut children = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may contain spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        if ppid == Some(me) {
            children.push(pid);
        }
    }
    children.sort_unstable();
    children
}

/// Waits until `condition` holds (checking every 5 ms), up to `limit`.
pub(crate) fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Accepts connections from [`PID_THEN_BLOCK`] tasks: each reports its pid and waits.
pub(crate) struct PidGate {
    listener: TcpListener,
    waiting: Vec<TcpStream>,
}

impl PidGate {
    pub(crate) fn new() -> Self {
        PidGate {
            listener: TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener"),
            waiting: Vec::new(),
        }
    }

    /// The task's `args[0]`.
    pub(crate) fn arg(&self) -> Value {
        json!(self.listener.local_addr().expect("address").to_string())
    }

    /// Waits for the next task to arrive and returns its pid.
    pub(crate) fn next_pid(&mut self) -> u32 {
        let (mut stream, _) = self.listener.accept().expect("a task connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a timeout");
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while stream.read_exact(&mut byte).is_ok() && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let pid = String::from_utf8_lossy(&line)
            .trim()
            .parse()
            .expect("a pid line");
        self.waiting.push(stream);
        pid
    }

    /// Lets every waiting task finish.
    pub(crate) fn release(&mut self) {
        for mut stream in self.waiting.drain(..) {
            let _ = stream.write_all(&[1]);
        }
    }
}

/// Counts outcomes and `finished` calls, and lets a test wait for them.
#[derive(Default)]
pub(crate) struct Counter {
    state: Mutex<Counts>,
    changed: Condvar,
}

#[derive(Default, Clone)]
pub(crate) struct Counts {
    pub(crate) ok: usize,
    pub(crate) failed: usize,
    pub(crate) finished: usize,
}

impl Counter {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Waits until `n` submissions have finished.
    pub(crate) fn wait_finished(&self, n: usize, limit: Duration) -> Counts {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().unwrap();
        while state.finished < n {
            let now = Instant::now();
            assert!(
                now < deadline,
                "only {} of {n} runs finished",
                state.finished
            );
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
        state.clone()
    }
}

impl RunReporter for Counter {
    fn submitted(&self, _run: &JobRun) {}

    fn outcome(&self, _run: &JobRun, _run_time: DateTime<Tz>, result: Result<Value, JobFailure>) {
        let mut state = self.state.lock().unwrap();
        match result {
            Ok(_) => state.ok += 1,
            Err(_) => state.failed += 1,
        }
    }

    fn finished(&self, _run: &JobRun) {
        self.state.lock().unwrap().finished += 1;
        self.changed.notify_all();
    }
}

/// Collects named test functions and runs them with libtest's command line (a name
/// filter, `--exact`, `--list`, ...), as `cargo test` and cargo-nextest call a test
/// binary; a panic fails its test.
pub(crate) struct Runner {
    tests: Vec<Trial>,
}

impl Runner {
    pub(crate) fn new() -> Self {
        Runner { tests: Vec::new() }
    }

    pub(crate) fn run(&mut self, name: &str, test: impl FnOnce() + Send + 'static) {
        self.tests.push(Trial::test(name, move || {
            test();
            Ok(())
        }));
    }

    /// Runs the tests and exits (non-zero when one failed). One at a time unless
    /// `--test-threads` says otherwise: some count this process's children.
    pub(crate) fn finish(self) -> ! {
        let mut args = Arguments::from_args();
        args.test_threads.get_or_insert(1);
        libtest_mimic::run(&args, self.tests).exit()
    }
}

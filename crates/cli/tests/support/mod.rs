//! What the CLI's end-to-end tests share: a temporary directory holding `aps.toml`, the
//! `aps` binary run on it, a daemon started on it (killed when dropped), polling waits,
//! commands that must succeed and a spare loopback port.
//!
//! Each test binary that uses it says `mod support;` and uses what it needs; the rest is
//! unused there.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod cluster;
pub mod databases;
pub mod failover;
pub mod max_instances;

/// The `aps` binary under test.
pub const APS: &str = env!("CARGO_BIN_EXE_aps");

/// A temp directory holding `aps.toml` (and its `aps.db`).
pub struct Dir {
    /// The directory (`aps.toml` and `aps.db` live in it).
    pub dir: tempfile::TempDir,
}

impl Dir {
    pub fn new(config: &str) -> Dir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("aps.toml"), config).unwrap();
        Dir { dir }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("aps.toml")
    }

    pub fn write(&self, config: &str) {
        std::fs::write(self.config(), config).unwrap();
    }

    /// `aps <args> --config aps.toml`.
    pub fn aps(&self, args: &[&str]) -> Output {
        Command::new(APS)
            .args(args)
            .arg("--config")
            .arg(self.config())
            .output()
            .unwrap()
    }

    /// `aps config check aps.toml`.
    pub fn config_check(&self) -> Output {
        Command::new(APS)
            .args(["config", "check"])
            .arg(self.config())
            .output()
            .unwrap()
    }

    pub fn history(&self, job: &str) -> Vec<Value> {
        let out = self.aps(&["history", "--job", job, "--limit", "1000", "--json"]);
        serde_json::from_slice::<Vec<Value>>(&succeeded("aps history", out)).unwrap()
    }

    pub fn outcomes(&self, job: &str) -> Vec<String> {
        self.history(job)
            .iter()
            .map(|r| r["outcome"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn jobs(&self) -> Vec<Value> {
        let out = self.aps(&["jobs", "list", "--json"]);
        serde_json::from_slice(&succeeded("aps jobs list", out)).unwrap()
    }

    /// `aps run` on `aps.toml`, waited for until it runs its jobs.
    pub fn start(&self) -> Daemon {
        let mut daemon = self.spawn();
        daemon.wait_started(Duration::from_secs(20));
        daemon
    }

    /// `aps run` on `aps.toml`, not waited for; its log is `daemon-<n>.log` here.
    pub fn spawn(&self) -> Daemon {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        Daemon::spawn(
            &self.config(),
            self.dir.path().join(format!("daemon-{n}.log")),
        )
    }
}

pub struct Daemon {
    /// The `aps run` process.
    pub child: Child,
    /// Its standard error.
    pub log: PathBuf,
}

impl Daemon {
    /// `aps run --config <config>`, its standard error written to `log`; not waited for.
    pub fn spawn(config: &Path, log: PathBuf) -> Daemon {
        let child = Command::new(APS)
            .args([
                "run",
                "--log-level",
                &std::env::var("APS_TEST_LOG").unwrap_or_else(|_| "info".into()),
                "--config",
            ])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    /// Waits until the daemon runs its jobs (its log says so); fails the test, with the
    /// log, when it exits first or takes over `limit`.
    pub fn wait_started(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains("Resumed scheduler job processing") {
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the daemon did not start within {limit:?} ({exited:?}); its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `GET /health` on `127.0.0.1:port` answers 200 (the daemon's
    /// `[http]` is up); fails the test, with the log, when it exits first or takes over
    /// `limit`.
    pub fn wait_healthy(&mut self, port: u16, limit: Duration) {
        let deadline = Instant::now() + limit;
        while http_status(port, "/health") != Some(200) {
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "GET /health did not answer 200 within {limit:?} ({exited:?}); log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, then the exit code within 30 s (`None`: killed by a signal).
    pub fn stop(&mut self) -> Option<i32> {
        self.signal("TERM");
        self.wait(Duration::from_secs(30))
    }

    /// Waits for the exit; its status code (`None`: killed by a signal).
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit within {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` every 100 ms until it holds; fails the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `out`'s standard output; fails the test, saying `what` and showing the standard
/// error, unless the command succeeded.
pub fn succeeded(what: &str, out: Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `aps <args>` as given (no config added): its standard output; fails the test unless
/// it succeeds.
pub fn aps_ok(args: &[&str]) -> Vec<u8> {
    let out = Command::new(APS).args(args).output().unwrap();
    succeeded(&format!("aps {args:?}"), out)
}

/// Runs `program` (a server's client) with `args`; fails the test unless it is on PATH
/// and succeeds.
pub fn run_ok(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (the server's client) on PATH: {e}"));
    succeeded(&format!("{program} {args:?}"), out);
}

/// `aps token new --role <role> --name <name>`: the token and its `[[http.tokens]]`
/// table.
pub fn token(role: &str, name: &str) -> (String, String) {
    let out = aps_ok(&["token", "new", "--role", role, "--name", name]);
    let text = String::from_utf8(out).unwrap();
    let token = text
        .lines()
        .next()
        .expect("the token line")
        .trim()
        .to_owned();
    assert!(token.starts_with("aps_"), "no token in: {text}");
    let table = text[text.find("[[http.tokens]]").expect("the tokens table")..].to_owned();
    (token, table)
}

/// The status code of `GET path` on `127.0.0.1:port`, if it answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = String::new();
    s.read_to_string(&mut head).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

/// `METHOD url` with a bearer `token` and a JSON `body` when given: the status and the
/// body (status 0 and the error when nothing answered).
pub fn http_call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut request = ureq::request(method, url).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        request = request.set("Authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => request
            .set("Content-Type", "application/json")
            .send_string(b),
        None => request.call(),
    };
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// A loopback port free when asked, for a daemon's `[http]` to bind, that no
/// outgoing connection can take meanwhile (see `spare_port`).
pub fn free_port() -> u16 {
    apscheduler_testkit::server::spare_port()
}

/// Processes whose command line contains `marker`.
pub fn count_processes(marker: &str) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) && !cmdline.contains("aps") {
                n += 1;
            }
        }
    }
    n
}

/// Writes `records` into the run history of the SQLite store at `db` (created when
/// missing), as a scheduler would: what `aps history`, the API and the dashboard then
/// show.
pub fn seed_runs(db: &Path, records: &[apscheduler_core::RunRecord]) {
    use apscheduler_core::JobStore as _;
    let url = format!("sqlite:///{}", db.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = apscheduler_store_sql::SqlJobStore::connect(&url).unwrap();
        let history = store.run_history().unwrap();
        history.prepare().await.unwrap();
        history.record_runs(records).await.unwrap();
        store.shutdown().await.unwrap();
    });
}

//! What the CLI's end-to-end tests share: a temporary directory holding `aps.toml`, the
//! `aps` binary run on it, a daemon started on it (killed when dropped), and polling waits.
//!
//! Each test binary that uses it says `mod support;` and uses what it needs; the rest is
//! unused there.
#![allow(dead_code, unreachable_pub)]

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

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

    pub fn history(&self, job: &str) -> Vec<Value> {
        let out = self.aps(&["history", "--job", job, "--limit", "1000", "--json"]);
        assert!(
            out.status.success(),
            "aps history: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }

    pub fn outcomes(&self, job: &str) -> Vec<String> {
        self.history(job)
            .iter()
            .map(|r| r["outcome"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn jobs(&self) -> Vec<Value> {
        let out = self.aps(&["jobs", "list", "--json"]);
        assert!(
            out.status.success(),
            "aps jobs list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn start(&self) -> Daemon {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let log = self.dir.path().join(format!("daemon-{n}.log"));
        let child = Command::new(APS)
            .args(["run", "--config"])
            .arg(self.config())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let daemon = Daemon { child, log };
        wait_for("the daemon to start", Duration::from_secs(20), || {
            daemon.log().contains("Resumed scheduler job processing")
        });
        daemon
    }
}

pub struct Daemon {
    /// The `aps run` process.
    pub child: Child,
    /// Its standard error.
    pub log: PathBuf,
}

impl Daemon {
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

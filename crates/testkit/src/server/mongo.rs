//! [`PrivateMongo`]: a MongoDB-wire server of a test's own, for fault tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{kill_child, random_namespace, server_log, spare_port};

/// A private MongoDB-wire server for fault tests: SecantusDB (the server
/// `scripts/start-mongo-wire.sh` installs in its virtualenv, `APS_MONGO_WIRE_VENV`,
/// default `~/.cache/aps-secantus`) on a spare loopback port, keeping its data on disk
/// in a temporary directory (`--sync-on-commit`: a SIGKILL keeps every acknowledged
/// write); SIGKILLed, and its directory removed, on drop.
#[derive(Debug)]
pub struct PrivateMongo {
    venv: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateMongo {
    /// Starts one; `None` when the virtualenv has no SecantusDB (run
    /// `scripts/start-mongo-wire.sh` once).
    ///
    /// # Panics
    /// When the server is there but does not come up.
    pub fn new() -> Option<Self> {
        let venv = std::env::var_os("APS_MONGO_WIRE_VENV")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/aps-secantus"))
            })?;
        if !venv.join("bin/secantusd-py").exists() {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("aps-mongo-{}", random_namespace()));
        std::fs::create_dir_all(&dir).expect("create the server directory");
        let port = spare_port();
        let mut server = PrivateMongo {
            venv,
            dir,
            port,
            child: None,
        };
        server.start();
        Some(server)
    }

    /// Starts it (again, after [`kill`](Self::kill)) on the same port and data, and
    /// waits until it answers `ping` (up to 60 s).
    ///
    /// # Panics
    /// When it exits or does not answer in time.
    pub fn start(&mut self) {
        let log = server_log(&self.dir);
        // Its own directory as the working directory: the server reads a
        // `./secantusd.toml` when there is one. The launcher shortens the life of a
        // transaction a killed client left open, as `start-mongo-wire.sh` does.
        let launcher = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/secantusd.py");
        let child = Command::new(self.venv.join("bin/python"))
            .arg(launcher)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(self.dir.join("data"))
            .args(["--log-level", "WARNING", "--sync-on-commit"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log's descriptor"))
            .stderr(log)
            .spawn()
            .expect("run secantusd-py");
        self.child = Some(child);
        let ping = format!(
            "import pymongo; pymongo.MongoClient('mongodb://127.0.0.1:{}/?directConnection=true', \
             serverSelectionTimeoutMS=500).admin.command('ping')",
            self.port
        );
        let started = Instant::now();
        loop {
            let up = Command::new(self.venv.join("bin/python"))
                .args(["-c", &ping])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if up {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && started.elapsed() < Duration::from_secs(60),
                "the private SecantusDB on port {} did not answer ({exited:?}; log: {})",
                self.port,
                self.dir.join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: a crash, not a clean shutdown.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// The URL of `database` on it.
    pub fn url(&self, database: &str) -> String {
        format!(
            "mongodb://127.0.0.1:{}/{database}?directConnection=true",
            self.port
        )
    }
}

impl Drop for PrivateMongo {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! [`PrivateRedis`]: a `redis-server` of a test's own, for fault tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{kill_child, random_namespace, spare_port};

/// A private `redis-server` for fault tests (append-only file with `appendfsync
/// always`, in a temporary directory, so every acknowledged write survives a crash) on
/// a spare loopback port; killed, and its directory removed, on drop. The binary is
/// `redis-server` on `PATH`, or `APS_REDIS_SERVER`.
#[derive(Debug)]
pub struct PrivateRedis {
    binary: String,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts the server and waits until it answers.
    ///
    /// # Panics
    /// When `redis-server` cannot be run or does not come up within 10 s.
    pub fn new() -> Self {
        let port = spare_port();
        let dir = std::env::temp_dir().join(format!("aps-redis-{}", random_namespace()));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        let binary = std::env::var("APS_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut server = PrivateRedis {
            binary,
            port,
            dir,
            child: None,
        };
        server.start();
        server
    }

    /// Its URL (`redis://127.0.0.1:PORT/`).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts it (again, after [`kill`](Self::kill)) on the same port and directory, and
    /// waits until it answers.
    ///
    /// # Panics
    /// As [`new`](Self::new).
    pub fn start(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run '{}' ({e}): the fault test needs redis-server on PATH \
                     (apt-get install redis-server) or APS_REDIS_SERVER",
                    self.binary
                )
            });
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the server answers PING with PONG (not LOADING).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut reply = [0u8; 16];
                if stream.write_all(b"PING\r\n").is_ok() {
                    if let Ok(n) = stream.read(&mut reply) {
                        if reply[..n].starts_with(b"+PONG") {
                            return;
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "the private redis-server on port {} did not come up",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash, not a clean shutdown.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Default for PrivateRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

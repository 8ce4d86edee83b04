//! Where backend tests find their servers, and a namespace of their own on them.
//!
//! One rule for every backend: a test reads its server's URL from an environment
//! variable (`APS_TEST_POSTGRES_URL`, `APS_TEST_REDIS_URL`, ...). When the variable is
//! unset or empty:
//! - under CI (`CI` set to `true` in any case, or `1`) the test **fails**: CI must test
//!   every backend against a real server;
//! - elsewhere the test is skipped and says so with a line on stderr, written to the
//!   process's stderr directly rather than through `eprintln!`, so the test harness's
//!   output capture does not swallow it and `cargo test` shows it even though the test
//!   itself reports `ok`:
//!
//! ```text
//! SKIPPED conformance (apscheduler-store-redis): APS_TEST_REDIS_URL is not set; start a Redis server and set it, e.g. APS_TEST_REDIS_URL=redis://127.0.0.1:6379/
//! ```
//!
//! ```
//! use apscheduler_testkit::server::{random_namespace, server_url};
//!
//! // In a test: `let Some(url) = server_url(...) else { return };`
//! # if !apscheduler_testkit::server::in_ci() {
//! let url = server_url("APS_TEST_DOCS_EXAMPLE_URL", "redis://127.0.0.1:6379/", "doc example");
//! assert!(url.is_none()); // and a SKIPPED line on stderr
//! # }
//! let ns = random_namespace();
//! assert!(ns.starts_with("aps_test_") && ns.len() == 21);
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether this run is CI: `CI` is `true` (any case) or `1`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
}

/// The URL in the environment variable `var`, or `None` when the test must be skipped
/// (after the notice described in the [module docs](self)). `example` is a URL to suggest
/// in the notice; `test` names the test.
///
/// # Panics
/// When `var` is unset or empty under CI.
pub fn server_url(var: &str, example: &str, test: &str) -> Option<String> {
    if let Ok(url) = std::env::var(var) {
        if !url.trim().is_empty() {
            return Some(url);
        }
    }
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    assert!(
        !in_ci(),
        "{test} ({package}): {var} is not set, but CI is: CI must run this test against a \
         real server (`source .ci/services.sh` starts them and sets the variables)"
    );
    skip_notice(&format!(
        "{test} ({package}): {var} is not set; start a server and set it, e.g. {var}={example}"
    ));
    None
}

/// Writes `SKIPPED <what>` to the process's stderr, past the test harness's capture.
pub fn skip_notice(what: &str) {
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {what}");
}

/// A fresh name for this test's tables, key prefix, database or collection:
/// `aps_test_` and 12 random hex digits (valid as an SQL table name, a Redis key prefix
/// and a MongoDB database or collection name).
pub fn random_namespace() -> String {
    format!("aps_test_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// A spare loopback port for a private server: bound to port 0, noted, released.
pub(crate) fn spare_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").port()
}

/// SIGKILLs and reaps a private server's process, if it runs.
pub(crate) fn kill_child(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `server.log` in a private server's directory, opened for appending (a restart adds
/// to it).
pub(crate) fn server_log(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("open the server's log")
}

/// Whether this process runs as root (servers that refuse root are told which user).
pub(crate) fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

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

/// A private PostgreSQL server for fault tests (`initdb` and `pg_ctl` on a spare
/// loopback port, in a temporary directory, `fsync = off`: a crash of the server, not
/// of the machine, keeps every committed write); stopped, and its directory removed,
/// on drop. As root, `initdb` refuses to run: the server then runs as the `postgres`
/// user through `runuser`.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
    /// Run `initdb`/`pg_ctl` as `postgres` (we are root).
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Creates its data directory (not started yet); `None` when `initdb` is not on
    /// `PATH`.
    ///
    /// # Panics
    /// When `initdb` is there but fails.
    pub fn init() -> Option<Self> {
        let found = Command::new("initdb")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("aps-pg-{}", random_namespace()));
        std::fs::create_dir_all(&dir).expect("create the server directory");
        let as_postgres = running_as_root();
        let port = spare_port();
        let server = PrivatePostgres {
            dir,
            port,
            as_postgres,
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres:"])
                .arg(&server.dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown postgres {}", server.dir.display());
        }
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "root", "--no-sync"],
        );
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn command(&self, program: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        // The server inherits nothing: with our pipes it would keep them open.
        let out = self
            .command(program)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it (again, after [`stop`](Self::stop)) and waits until it accepts
    /// connections.
    ///
    /// # Panics
    /// When `pg_ctl start` fails or times out (30 s).
    pub fn start(&self) {
        let data = self.data();
        let log = self.dir.join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start",
            ],
        );
    }

    /// `pg_ctl stop -m immediate`: every server process quits at once, as in a crash
    /// (the next start recovers from the WAL).
    ///
    /// # Panics
    /// When `pg_ctl stop` fails.
    pub fn stop(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    /// Its URL (`postgres://root@127.0.0.1:PORT/postgres`).
    pub fn url(&self) -> String {
        format!("postgres://root@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if Path::new(&self.data()).join("postmaster.pid").exists() {
            let data = self.data();
            let _ = self
                .command("pg_ctl")
                .args(["-D", &data, "-m", "immediate", "-w", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private MariaDB server for fault tests (`mariadb-install-db` and `mariadbd` on a
/// spare loopback port, in a temporary directory, with a database `test`);
/// SIGKILLed, and its directory removed, on drop.
#[derive(Debug)]
pub struct PrivateMariaDb {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateMariaDb {
    /// Creates its data directory and starts it; `None` when `mariadb-install-db` is
    /// not on `PATH`.
    ///
    /// # Panics
    /// When the server is there but cannot be set up or started.
    pub fn new() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("aps-mariadb-{}", random_namespace()));
        std::fs::create_dir_all(&dir).expect("create the server directory");
        let install = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(Self::as_root())
            .stdin(Stdio::null())
            .output();
        let out = match install {
            Ok(out) => out,
            Err(_) => {
                let _ = std::fs::remove_dir_all(&dir);
                return None;
            }
        };
        assert!(
            out.status.success(),
            "mariadb-install-db: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let port = spare_port();
        let mut server = PrivateMariaDb {
            dir,
            port,
            child: None,
        };
        server.start();
        server.sql("CREATE DATABASE test");
        Some(server)
    }

    /// `--user=root` when we are root (the server refuses to run as root otherwise).
    fn as_root() -> Vec<&'static str> {
        let root = running_as_root();
        if root {
            vec!["--user=root"]
        } else {
            Vec::new()
        }
    }

    /// Runs `sql` with the `mariadb` client.
    fn sql(&self, sql: &str) {
        let out = Command::new("mariadb")
            .args([
                "-h127.0.0.1",
                &format!("-P{}", self.port),
                "-uroot",
                "-e",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run the mariadb client");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it (again, after [`kill`](Self::kill)) on the same port and directory
    /// (InnoDB recovers from its redo log), and waits until it answers.
    ///
    /// # Panics
    /// When it does not answer within 30 s.
    pub fn start(&mut self) {
        let log = server_log(&self.dir);
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .arg(format!("--pid-file={}", self.dir.join("pid").display()))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--innodb-buffer-pool-size=64M"])
            .args(Self::as_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run mariadbd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = Command::new("mariadb")
                .args(["-h127.0.0.1", &format!("-P{}", self.port), "-uroot"])
                .args(["-e", "SELECT 1"])
                .stdin(Stdio::null())
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private MariaDB on port {} did not come up (log: {})",
                self.port,
                self.dir.join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: a crash, not a clean shutdown.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// Its URL (`mysql://root@127.0.0.1:PORT/test`).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/test", self.port)
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private ZooKeeper server (Debian's `zookeeper` package, `ZooKeeperServerMain`) on a
/// spare loopback port with its own data directory; killed, and its directory removed,
/// on drop. `APS_ZOOKEEPER_CLASSPATH` overrides where its jars are.
#[derive(Debug)]
pub struct PrivateZooKeeper {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// The classpath of the ZooKeeper server.
pub(crate) fn zookeeper_classpath() -> String {
    std::env::var("APS_ZOOKEEPER_CLASSPATH")
        .unwrap_or_else(|_| "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar".into())
}

impl PrivateZooKeeper {
    /// Whether a private server can be started here (Java and the server's jar). When
    /// not: under CI the test fails (CI installs Debian's `zookeeper`), elsewhere it is
    /// skipped with a `SKIPPED` line.
    pub fn available(test: &str) -> bool {
        let jar_found = zookeeper_classpath()
            .split(':')
            .any(|p| p.ends_with(".jar") && std::path::Path::new(p).exists());
        let java_found = Command::new("java")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if jar_found && java_found {
            return true;
        }
        let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
        let why = format!(
            "{test} ({package}): no ZooKeeper server to start (java: {java_found}, \
             jar on {}: {jar_found}); install Debian's zookeeper package",
            zookeeper_classpath()
        );
        assert!(!in_ci(), "{why}");
        skip_notice(&why);
        false
    }

    /// Starts one on a spare loopback port with a fresh data directory.
    ///
    /// # Panics
    /// When it does not answer (see [`start`](Self::start)).
    pub fn new() -> Self {
        let port = spare_port();
        let dir = std::env::temp_dir().join(format!("aps-zk-{}", random_namespace()));
        std::fs::create_dir_all(dir.join("data")).expect("create the server's directory");
        std::fs::write(
            dir.join("zoo.cfg"),
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n4lw.commands.whitelist=srvr\n\
                 minSessionTimeout=1000\nmaxSessionTimeout=20000\n",
                dir.join("data").display()
            ),
        )
        .expect("write zoo.cfg");
        let mut server = PrivateZooKeeper {
            port,
            dir,
            child: None,
        };
        server.start();
        server
    }

    /// Its `host:port`.
    pub fn hosts(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same port and data) and waits until it answers:
    /// up to 60 s (a JVM starting while a test run loads both cores once took over 30 s
    /// in CI). Its output goes to `server.log` in its directory, shown when it fails.
    ///
    /// # Panics
    /// When it exits or does not answer in time.
    pub fn start(&mut self) {
        let classpath = zookeeper_classpath();
        let log = server_log(&self.dir);
        let child = Command::new("java")
            .args(["-Xmx256m", "-cp", &classpath])
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log's descriptor"))
            .stderr(log)
            .spawn()
            .expect("start java (Debian's zookeeper package provides the server)");
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > Duration::from_secs(60) {
                let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                let tail: String = {
                    let lines: Vec<&str> = text.lines().collect();
                    lines[lines.len().saturating_sub(20)..].join("\n")
                };
                panic!(
                    "the private ZooKeeper on port {} did not answer after {:.1} s ({}); the \
                     end of its log:\n{tail}",
                    self.port,
                    started.elapsed().as_secs_f64(),
                    exited.map_or("still running".to_owned(), |s| format!("exited: {s}")),
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the server serves requests: `srvr` names its mode (`ruok` answers `imok`
    /// as soon as the port listens, before the server takes sessions).
    pub fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = String::new();
        s.write_all(b"srvr").is_ok()
            && s.read_to_string(&mut reply).is_ok()
            && reply.contains("Mode: ")
    }

    /// Kills the server with SIGKILL (its data stays for a restart).
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Drop for PrivateZooKeeper {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Default for PrivateZooKeeper {
    fn default() -> Self {
        Self::new()
    }
}

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
        // `./secantusd.toml` when there is one.
        let child = Command::new(self.venv.join("bin/secantusd-py"))
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

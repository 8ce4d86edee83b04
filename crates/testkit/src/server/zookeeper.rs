//! [`PrivateZooKeeper`]: a ZooKeeper server of a test's own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{in_ci, kill_child, random_namespace, server_log, skip_notice, spare_port};

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

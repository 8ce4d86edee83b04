//! A private Redis Sentinel group for tests (the Redis store's and the daemon's): a primary and a replica
//! (`redis-server`) and three `redis-sentinel` processes on spare loopback ports, in a
//! temporary directory; all SIGKILLed, and the directory removed, on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::{random_namespace, spare_port};

/// The name the Sentinels monitor the primary under.
pub const MASTER: &str = "apsmaster";

/// How long the Sentinels wait before they call a silent primary down.
pub const DOWN_AFTER_MS: u64 = 1000;

/// One command over a fresh connection, the raw reply as text (`None`: no answer).
pub fn ask(port: u16, command: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut encoded = String::new();
    let words: Vec<&str> = command.split_whitespace().collect();
    encoded.push_str(&format!("*{}\r\n", words.len()));
    for word in words {
        encoded.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    stream.write_all(encoded.as_bytes()).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    // Enough for the short replies these tests read (INFO sections, SENTINEL MASTER).
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if reply.ends_with(b"\r\n") && n < buf.len() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    (!reply.is_empty()).then(|| String::from_utf8_lossy(&reply).into_owned())
}

/// The group's processes.
#[derive(Debug)]
pub struct SentinelGroup {
    dir: PathBuf,
    /// The data nodes' ports: `[0]` starts as the primary, `[1]` as its replica.
    pub redis_ports: [u16; 2],
    /// The Sentinels' ports.
    pub sentinel_ports: [u16; 3],
    redis: [Option<Child>; 2],
    sentinels: Vec<Child>,
}

impl SentinelGroup {
    /// Starts the primary, the replica and the Sentinels, and waits until the replica
    /// is in sync and every Sentinel knows the replica and the two other Sentinels (so
    /// a failover can happen).
    ///
    /// # Panics
    /// When a binary is missing (the message says which package) or the group does not
    /// come together within 30 s.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("aps-sentinel-{}", random_namespace()));
        std::fs::create_dir_all(&dir).expect("create the group's directory");
        let redis_ports = [spare_port(), spare_port()];
        let sentinel_ports = [spare_port(), spare_port(), spare_port()];
        let mut group = SentinelGroup {
            dir,
            redis_ports,
            sentinel_ports,
            redis: [None, None],
            sentinels: Vec::new(),
        };
        for i in 0..2 {
            let node_dir = group.dir.join(format!("redis-{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &redis_ports[i].to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", ""])
                .args(["--appendonly", "yes"])
                .arg("--dir")
                .arg(&node_dir);
            if i == 1 {
                cmd.args(["--replicaof", "127.0.0.1", &redis_ports[0].to_string()]);
            }
            group.redis[i] = Some(spawn(cmd, &node_dir, "redis-server", "redis-server"));
        }
        for (i, port) in sentinel_ports.iter().enumerate() {
            let conf = group.dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n\
                     sentinel failover-timeout {MASTER} 10000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    dir = group.dir.display(),
                    primary = redis_ports[0],
                ),
            )
            .unwrap();
            let mut cmd = Command::new("redis-sentinel");
            cmd.arg(&conf);
            group
                .sentinels
                .push(spawn(cmd, &group.dir, "redis-sentinel", "redis-sentinel"));
        }
        group.wait_formed();
        group
    }

    /// `redis+sentinel://` URL of the group (every Sentinel), `prefix` and `db` 0.
    pub fn url(&self, prefix: &str) -> String {
        let hosts: Vec<String> = self
            .sentinel_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!(
            "redis+sentinel://{}/{MASTER}/0?prefix={prefix}",
            hosts.join(",")
        )
    }

    fn wait_formed(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let synced = ask(self.redis_ports[1], "INFO replication")
                .is_some_and(|r| r.contains("master_link_status:up"));
            let known = self.sentinel_ports.iter().all(|p| {
                ask(*p, &format!("SENTINEL MASTER {MASTER}")).is_some_and(|r| {
                    field(&r, "num-slaves") == Some("1".into())
                        && field(&r, "num-other-sentinels") == Some("2".into())
                })
            });
            if synced && known {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Sentinel group did not form within 30 s (replica synced: {synced}; \
                 logs in {})",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The port of the data node the Sentinels currently call the primary.
    pub fn primary_port(&self) -> Option<u16> {
        let reply = ask(
            self.sentinel_ports[0],
            &format!("SENTINEL GET-MASTER-ADDR-BY-NAME {MASTER}"),
        )?;
        reply.lines().nth(4)?.trim().parse().ok()
    }

    /// SIGKILLs the data node on `port`.
    pub fn kill_node(&mut self, port: u16) {
        let i = self
            .redis_ports
            .iter()
            .position(|p| *p == port)
            .expect("a data node's port");
        if let Some(mut child) = self.redis[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the data node on `port`.
    pub fn signal_node(&self, port: u16, signal: &str) {
        let i = self
            .redis_ports
            .iter()
            .position(|p| *p == port)
            .expect("a data node's port");
        let pid = self.redis[i].as_ref().expect("the node runs").id();
        crate::server::signal_pid(pid, signal);
    }

    /// Waits until the Sentinels name a primary other than `old` and it answers as one.
    pub fn wait_promoted(&self, old: u16, within: Duration) -> u16 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(port) = self.primary_port().filter(|p| *p != old) {
                if ask(port, "ROLE").is_some_and(|r| r.contains("master")) {
                    return port;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no replica was promoted within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A field of a flat `SENTINEL MASTER` reply (name line, then value line).
fn field(reply: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = reply.lines().collect();
    let at = lines.iter().position(|l| *l == name)?;
    lines.get(at + 2).map(|v| v.trim().to_owned())
}

fn spawn(mut cmd: Command, dir: &std::path::Path, binary: &str, package: &str) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{binary}.log")))
        .expect("open a log");
    cmd.stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run '{binary}' ({e}): the Sentinel tests need it on PATH \
                 (apt-get install {package})"
            )
        })
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too; continue it first all the same, so that
        // nothing is left stopped should the kill fail.
        for child in self.redis.iter().flatten() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        for child in self
            .redis
            .iter_mut()
            .flatten()
            .chain(self.sentinels.iter_mut())
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

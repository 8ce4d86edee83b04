//! A private three-server ZooKeeper ensemble for failover tests: Debian's `zookeeper`
//! (`QuorumPeerMain`) on spare loopback ports, each server with its own data directory
//! and `myid`; the leader found with the `srvr` four-letter word, killed with SIGKILL.
//!
//! ```no_run
//! use apscheduler_testkit::ensemble::ZooKeeperEnsemble;
//!
//! let mut zk = ZooKeeperEnsemble::new();
//! let hosts = zk.hosts(); // "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
//! let leader = zk.wait_leader(std::time::Duration::from_secs(30));
//! zk.kill(leader);
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::{kill_child, random_namespace, server_log, spare_port, zookeeper_classpath};

/// How many servers: the smallest ensemble that outlives one of them.
const SERVERS: usize = 3;

/// Three ZooKeeper servers in one quorum; killed, and their directory removed, on drop.
/// Whether one can run here: [`PrivateZooKeeper::available`](crate::server::PrivateZooKeeper::available).
#[derive(Debug)]
pub struct ZooKeeperEnsemble {
    dir: PathBuf,
    /// Client port of each server.
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
}

impl ZooKeeperEnsemble {
    /// Writes the three configurations and starts the servers, then waits (up to 90 s:
    /// three JVMs on a loaded machine) until each serves as leader or follower.
    ///
    /// # Panics
    /// When a server exits or the quorum does not form in time.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("aps-zk-ensemble-{}", random_namespace()));
        let ports: Vec<u16> = (0..SERVERS).map(|_| spare_port()).collect();
        let quorum: Vec<(u16, u16)> = (0..SERVERS).map(|_| (spare_port(), spare_port())).collect();
        let servers: String = quorum
            .iter()
            .enumerate()
            .map(|(i, (peer, election))| format!("server.{}=127.0.0.1:{peer}:{election}\n", i + 1))
            .collect();
        for (i, port) in ports.iter().enumerate() {
            let home = dir.join(format!("zk{}", i + 1));
            std::fs::create_dir_all(home.join("data")).expect("create a server's directory");
            std::fs::write(home.join("data/myid"), format!("{}\n", i + 1)).expect("write myid");
            // Short ticks: a follower takes the leader for gone after syncLimit ticks
            // (1 s), so the failover is measured in seconds, as in production with
            // tickTime=2000 it would be in several.
            std::fs::write(
                home.join("zoo.cfg"),
                format!(
                    "tickTime=500\ninitLimit=20\nsyncLimit=2\ndataDir={}\nclientPort={port}\n\
                     clientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
                     4lw.commands.whitelist=srvr\nminSessionTimeout=1000\n\
                     maxSessionTimeout=20000\n{servers}",
                    home.join("data").display()
                ),
            )
            .expect("write zoo.cfg");
        }
        let mut ensemble = ZooKeeperEnsemble {
            dir,
            ports,
            children: (0..SERVERS).map(|_| None).collect(),
        };
        for i in 0..SERVERS {
            ensemble.spawn(i);
        }
        let started = Instant::now();
        while (0..SERVERS).any(|i| ensemble.mode(i).is_none()) {
            ensemble.check_alive(started, Duration::from_secs(90));
            std::thread::sleep(Duration::from_millis(200));
        }
        ensemble
    }

    /// The connect string, `127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`.
    pub fn hosts(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client port of server `i` (0-based).
    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    /// What server `i` serves as (`leader`, `follower`), from `srvr`; `None` when it
    /// does not serve (down, or electing).
    pub fn mode(&self, i: usize) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.ports[i])).ok()?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        s.write_all(b"srvr").ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok()?;
        reply
            .lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(|m| m.trim().to_owned())
    }

    /// The index of the leader, waiting up to `within` for the quorum to have one.
    ///
    /// # Panics
    /// When none is elected in time.
    pub fn wait_leader(&self, within: Duration) -> usize {
        let started = Instant::now();
        loop {
            if let Some(i) = (0..SERVERS).find(|&i| self.mode(i).as_deref() == Some("leader")) {
                return i;
            }
            assert!(
                started.elapsed() < within,
                "no ZooKeeper leader within {within:?}; modes: {:?}",
                (0..SERVERS).map(|i| self.mode(i)).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILLs server `i` (its data stays).
    pub fn kill(&mut self, i: usize) {
        kill_child(&mut self.children[i]);
    }

    /// The process id of server `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(Child::id)
    }

    fn spawn(&mut self, i: usize) {
        let home = self.dir.join(format!("zk{}", i + 1));
        let log = server_log(&home);
        let child = Command::new("java")
            .args(["-Xmx128m", "-cp", &zookeeper_classpath()])
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(home.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log's descriptor"))
            .stderr(log)
            .spawn()
            .expect("start java (Debian's zookeeper package provides the server)");
        self.children[i] = Some(child);
    }

    /// Panics, with the end of each server's log, when one has exited or `limit` passed.
    fn check_alive(&mut self, started: Instant, limit: Duration) {
        let exited = self.children.iter_mut().position(|c| {
            c.as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some()
        });
        if exited.is_none() && started.elapsed() < limit {
            return;
        }
        let tails: Vec<String> = (0..SERVERS)
            .map(|i| {
                let text = std::fs::read_to_string(
                    self.dir.join(format!("zk{}", i + 1)).join("server.log"),
                )
                .unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "server {}:\n{}",
                    i + 1,
                    lines[lines.len().saturating_sub(10)..].join("\n")
                )
            })
            .collect();
        panic!(
            "the ZooKeeper ensemble on {} did not form after {:.1} s (server exited: {exited:?}); \
             the end of the logs:\n{}",
            self.hosts(),
            started.elapsed().as_secs_f64(),
            tails.join("\n")
        );
    }
}

impl Default for ZooKeeperEnsemble {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ZooKeeperEnsemble {
    fn drop(&mut self) {
        for child in &mut self.children {
            kill_child(child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

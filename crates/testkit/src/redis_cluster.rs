//! A private Redis Cluster for tests (the Redis store's and the daemon's): six
//! `redis-server --cluster-enabled yes` on spare loopback ports in a temporary
//! directory, joined by `redis-cli --cluster create ... --cluster-replicas 1`: three
//! primaries, each with one replica. All SIGKILLed, and the directory removed, on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sentinel::ask;
use crate::server::{random_namespace, spare_port};

/// How long a primary may be silent before the others call it failed and its replica
/// takes over (`cluster-node-timeout`, milliseconds).
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// How many nodes the cluster has (three primaries and their replicas).
pub const NODES: usize = 6;

/// The cluster's processes.
#[derive(Debug)]
pub struct RedisCluster {
    dir: PathBuf,
    /// The nodes' client ports.
    pub ports: [u16; NODES],
    nodes: Vec<Option<Child>>,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    /// The node's id.
    pub id: String,
    /// Its client port.
    pub port: u16,
    /// Its flags (`master`, `slave`, `fail`, `myself`, ...).
    pub flags: Vec<String>,
    /// The id of its primary (`-` for a primary).
    pub master: String,
    /// The slot ranges it serves (primaries), inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Starts the six nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok` and every primary has its replica in sync.
    ///
    /// # Panics
    /// When `redis-server` or `redis-cli` is missing (the message says which package)
    /// or the cluster does not form within 60 s.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("aps-cluster-{}", random_namespace()));
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        let ports: [u16; NODES] = std::array::from_fn(|_| spare_port());
        let mut cluster = RedisCluster {
            dir,
            ports,
            nodes: Vec::new(),
        };
        for port in ports {
            let node_dir = cluster.dir.join(format!("node-{port}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut cmd = Command::new("redis-server");
            // The bus port is given (not port + 10000, which may be out of range or
            // taken).
            cmd.args(["--port", &port.to_string()])
                .args(["--cluster-port", &spare_port().to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                .args(["--save", ""])
                .args(["--appendonly", "yes"])
                .arg("--dir")
                .arg(&node_dir);
            cluster
                .nodes
                .push(Some(spawn(cmd, &node_dir, "redis-server", "redis-server")));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ports
            .iter()
            .all(|p| ask(*p, "PING").is_some_and(|r| r.contains("PONG")))
        {
            assert!(
                Instant::now() < deadline,
                "the cluster's nodes did not answer within 30 s (logs in {})",
                cluster.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = create.stdin(Stdio::null()).output().unwrap_or_else(|e| {
            panic!("cannot run 'redis-cli' ({e}): apt-get install redis-tools")
        });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_formed(Duration::from_secs(60));
        cluster
    }

    /// The directory with the nodes' logs and data.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// `redis+cluster://` URL naming every node, with `prefix` and `extra` options
    /// (`&partitions=8`, or empty).
    pub fn url(&self, prefix: &str, extra: &str) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!(
            "redis+cluster://{}/?prefix={prefix}{extra}",
            hosts.join(",")
        )
    }

    fn wait_formed(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ok = self.ports.iter().all(|p| self.state_ok(*p));
            let synced = self.nodes_seen().is_some_and(|nodes| {
                nodes
                    .iter()
                    .filter(|n| n.flags.iter().any(|f| f == "slave"))
                    .count()
                    == NODES / 2
                    && nodes
                        .iter()
                        .filter(|n| n.flags.iter().any(|f| f == "slave"))
                        .all(|n| {
                            ask(n.port, "INFO replication")
                                .is_some_and(|r| r.contains("master_link_status:up"))
                        })
            });
            if ok && synced {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster did not form within {within:?} (state ok: {ok}, replicas \
                 in sync: {synced}; logs in {})",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the node on `port` answers `cluster_state:ok`.
    pub fn state_ok(&self, port: u16) -> bool {
        ask(port, "CLUSTER INFO").is_some_and(|r| r.contains("cluster_state:ok"))
    }

    /// `CLUSTER NODES` as some live node sees it.
    pub fn nodes_seen(&self) -> Option<Vec<NodeLine>> {
        self.ports
            .iter()
            .enumerate()
            .filter(|(i, _)| self.nodes[*i].is_some())
            .find_map(|(_, p)| ask(*p, "CLUSTER NODES"))
            .map(|text| parse_nodes(&text))
    }

    /// The ports of the nodes that are primaries now (and not failed).
    pub fn primaries(&self) -> Vec<u16> {
        self.nodes_seen()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| {
                n.flags.iter().any(|f| f == "master") && !n.flags.iter().any(|f| f == "fail")
            })
            .map(|n| n.port)
            .collect()
    }

    /// The port of the primary that serves `key`'s slot now.
    pub fn primary_for_key(&self, key: &str) -> Option<u16> {
        let live = self
            .ports
            .iter()
            .enumerate()
            .find(|(i, _)| self.nodes[*i].is_some())
            .map(|(_, p)| *p)?;
        let reply = ask(live, &format!("CLUSTER KEYSLOT {key}"))?;
        let slot: u16 = reply.trim().trim_start_matches(':').parse().ok()?;
        self.nodes_seen()?
            .into_iter()
            .filter(|n| !n.flags.iter().any(|f| f == "fail"))
            .find(|n| n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|n| n.port)
    }

    /// The port of the replica of the primary on `port`.
    pub fn replica_of(&self, port: u16) -> Option<u16> {
        let nodes = self.nodes_seen()?;
        let primary = nodes.iter().find(|n| n.port == port)?;
        nodes
            .iter()
            .find(|n| n.master == primary.id)
            .map(|n| n.port)
    }

    /// SIGKILLs the node on `port`.
    pub fn kill_node(&mut self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a node's port");
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the node on `port`: a stopped primary keeps
    /// its connections open and answers nothing, as a hung or partitioned server does.
    pub fn signal_node(&self, port: u16, signal: &str) {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a node's port");
        let pid = self.nodes[i].as_ref().expect("the node runs").id();
        crate::server::signal_pid(pid, signal);
    }

    /// `CONFIG SET name value` on every running node.
    ///
    /// # Panics
    /// When a node refuses it.
    pub fn config_set(&self, name: &str, value: &str) {
        for (i, port) in self.ports.iter().enumerate() {
            if self.nodes[i].is_some() {
                let reply = ask(*port, &format!("CONFIG SET {name} {value}"));
                assert!(
                    reply.as_deref().is_some_and(|r| r.contains("OK")),
                    "CONFIG SET {name} {value} on :{port}: {reply:?}"
                );
            }
        }
    }

    /// Waits until `replica` answers as a primary and every live node reports
    /// `cluster_state:ok` (the failed primary's slots served again).
    pub fn wait_promoted(&self, replica: u16, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let promoted = ask(replica, "ROLE").is_some_and(|r| r.contains("master"));
            let ok = self
                .ports
                .iter()
                .enumerate()
                .filter(|(i, _)| self.nodes[*i].is_some())
                .all(|(_, p)| self.state_ok(*p));
            if promoted && ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica on :{replica} was not promoted within {within:?} (logs in {})",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The lines of a `CLUSTER NODES` reply (a RESP bulk string: the lines start after
/// the length line).
pub fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() < 8 {
                return None;
            }
            // `127.0.0.1:7000@17000[,hostname]`
            let port = words[1]
                .split('@')
                .next()?
                .rsplit_once(':')?
                .1
                .parse()
                .ok()?;
            let slots = words[8..]
                .iter()
                .filter_map(|range| {
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    Some((a.parse().ok()?, b.parse().ok()?))
                })
                .collect();
            Some(NodeLine {
                id: words[0].to_owned(),
                port,
                flags: words[2].split(',').map(str::to_owned).collect(),
                master: words[3].to_owned(),
                slots,
            })
        })
        .collect()
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
                "cannot run '{binary}' ({e}): the Redis Cluster tests need it on PATH \
                 (apt-get install {package})"
            )
        })
}

/// One `redis-server --cluster-enabled yes` that has joined no cluster: a cluster of
/// its own, for the tests of a URL that names nodes of different clusters.
#[derive(Debug)]
pub struct LoneClusterNode {
    dir: PathBuf,
    /// Its client port.
    pub port: u16,
    child: Child,
}

impl LoneClusterNode {
    /// Starts it and waits until it answers.
    ///
    /// # Panics
    /// When `redis-server` is missing or the node does not answer within 30 s.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("aps-lone-{}", random_namespace()));
        std::fs::create_dir_all(&dir).expect("create the node's directory");
        let port = spare_port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string()])
            .args(["--cluster-port", &spare_port().to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(&dir);
        let child = spawn(cmd, &dir, "redis-server", "redis-server");
        let node = LoneClusterNode { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ask(port, "PING").is_some_and(|r| r.contains("PONG")) {
            assert!(
                Instant::now() < deadline,
                "the lone node did not answer within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }
}

impl Drop for LoneClusterNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

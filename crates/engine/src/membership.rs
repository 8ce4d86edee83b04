//! Cluster membership: this scheduler's heartbeat in the store's node registry, and the
//! reaper that records a dead node's runs `interrupted`.
//!
//! Every [`HistoryOptions::heartbeat`](crate::HistoryOptions::heartbeat) the node
//! writes its entry (with how many runs it has in flight), then reads the registry:
//! a node whose heartbeat is older than the node time-out is taken for dead, its
//! `running` records become `interrupted` and its entry is removed. Any live node may
//! do this; the store hands each record it changed to one of them, which passes them
//! on for recovery (jobs with `recover` set run again there). `running` records of a
//! node missing from the registry for a node time-out are taken the same way
//! ([`Orphans`]). Leases need no reaper: a dead
//! node's claims expire after the lease (5 s by default, shorter than the node
//! time-out), and another node claims the jobs then. With leased runs
//! ([`RunProtocol::LeasedRuns`]) the store's sweep takes a dead node's runs, and the
//! reaper only removes its entry. Each heartbeat also looks for a live node of another
//! run protocol ([`other_protocol`]), which the start refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{Clock, NodeInfo, RunHistory, RunProtocol, RunRecord};
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::liveness::Liveness;

/// What the heartbeat task needs.
pub(crate) struct Member {
    pub(crate) history: Arc<dyn RunHistory>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) node: Arc<str>,
    pub(crate) heartbeat: Duration,
    pub(crate) node_timeout: Duration,
    /// How many runs are in flight now.
    pub(crate) running: Arc<dyn Fn() -> usize + Send + Sync>,
    /// Takes the records this node turned `interrupted` (to recover their runs).
    pub(crate) interrupted: InterruptedHook,
    /// Keeps each registry read, for `max_instances` across the cluster.
    pub(crate) liveness: Arc<Liveness>,
    /// How this node keeps its runs (written into its entry).
    pub(crate) protocol: RunProtocol,
}

/// Where the records a node turned `interrupted` go: the engine's recovery queue.
pub(crate) type InterruptedHook = Arc<dyn Fn(Vec<RunRecord>) + Send + Sync>;

/// The running heartbeat task; [`Membership::leave`] stops it and removes the entry.
pub(crate) struct Membership {
    stop: Option<oneshot::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Membership {
    /// Registers at once, then heartbeats and reaps on the current runtime; `None`
    /// when the history keeps no node registry.
    pub(crate) fn join(member: Member) -> Option<Membership> {
        member.history.nodes()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(member.run(stopped));
        Some(Membership {
            stop: Some(stop),
            task,
        })
    }

    /// Stops heartbeating and, when `remove`, removes this node's entry (a clean leave
    /// is not a death: nothing of it is reaped). A node leaving with records it could
    /// not write keeps its entry, so that other nodes reap it.
    pub(crate) async fn leave(mut self, remove: bool) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(remove);
        }
        let _ = (&mut self.task).await;
    }
}

impl Member {
    fn entry(&self, started_at: chrono::DateTime<chrono::Utc>) -> NodeInfo {
        NodeInfo {
            node: self.node.to_string(),
            host: host_name(),
            pid: std::process::id(),
            started_at,
            heartbeat_at: started_at,
            running: 0,
            protocol: self.protocol.clone(),
        }
    }

    async fn run(self, mut stopped: oneshot::Receiver<bool>) {
        let Some(nodes) = self.history.nodes() else {
            return;
        };
        let mut entry = self.entry(self.clock.now());
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let mut orphans = Orphans::default();
        let mut mixed = BTreeSet::new();
        let remove = loop {
            tokio::select! {
                remove = &mut stopped => break remove.unwrap_or(false),
                _ = tick.tick() => {}
            }
            let sent = tokio::time::Instant::now();
            entry.heartbeat_at = self.clock.now();
            entry.running = u32::try_from((self.running)()).unwrap_or(u32::MAX);
            let beat = match nodes.heartbeat(&entry).await {
                Ok(()) => {
                    self.liveness.beat_confirmed(sent);
                    self.reap(nodes, &mut orphans, &mut mixed).await
                }
                Err(e) => Err(e),
            };
            match beat {
                Ok(()) if failing => {
                    failing = false;
                    apscheduler_core::log_warn!(target: "apscheduler", node = %self.node, "node registry reachable again: heartbeats resumed");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    apscheduler_core::log_warn!(target: "apscheduler", node = %self.node, "heartbeat failed (retried every {:?}; other nodes take this one for dead after {:?} without one): {e}", self.heartbeat, self.node_timeout);
                }
                Err(_) => {}
            }
        };
        if !remove {
            return;
        }
        match nodes.remove_node(&self.node).await {
            Ok(_) => {}
            Err(e) => {
                apscheduler_core::log_warn!(target: "apscheduler", node = %self.node, "this node's registry entry could not be removed at shutdown (others will take it for dead): {e}")
            }
        }
    }

    /// Takes every other node silent for longer than the node time-out for dead.
    async fn reap(
        &self,
        nodes: &dyn apscheduler_core::NodeRegistry,
        orphans: &mut Orphans,
        mixed: &mut BTreeSet<String>,
    ) -> Result<(), apscheduler_core::Error> {
        let now = self.clock.now();
        let listed = nodes.list_nodes().await?;
        self.liveness.saw(now, &listed);
        // A node of another protocol that started beside this one (at the same moment,
        // or a release that does not check): said once per node, as an error.
        match other_protocol(&listed, &self.node, &self.protocol, now, self.node_timeout) {
            Some(other) if mixed.insert(other.node.clone()) => {
                apscheduler_core::log_error!(target: "apscheduler", node = %self.node, other_node = %other.node, "{}", mixed_protocols(&self.node, &self.protocol, other));
            }
            Some(_) => {}
            None => mixed.clear(),
        }
        // With leased runs the store's sweep takes a dead node's runs (once their
        // leases ran out); its `running` records are the sweep's to end, and only its
        // registry entry goes here.
        let leased = self.protocol == RunProtocol::LeasedRuns;
        if !leased && orphans.due(now, self.node_timeout) {
            self.reap_orphans(&listed, orphans, now).await?;
        }
        for dead in listed {
            if *dead.node == *self.node || !dead.is_stale(now, self.node_timeout) {
                continue;
            }
            if leased {
                let silent = (now - dead.heartbeat_at).to_std().unwrap_or_default();
                apscheduler_core::log_warn!(target: "apscheduler", node = %self.node, dead_node = %dead.node, "node {} taken for dead: no heartbeat for {:.1} s; its entry removed (its runs are taken over as their leases run out)", dead.node, silent.as_secs_f64());
                nodes.remove_node(&dead.node).await?;
                continue;
            }
            let message = format!(
                "node {} stopped heartbeating during the run, or as it was starting it (last heartbeat {}); recorded by {}",
                dead.node,
                dead.heartbeat_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                self.node
            );
            let interrupted = self
                .history
                .interrupt_running(&dead.node, now, &message)
                .await?;
            let silent = (now - dead.heartbeat_at).to_std().unwrap_or_default();
            apscheduler_core::log_warn!(target: "apscheduler", node = %self.node, dead_node = %dead.node, "node {} taken for dead: no heartbeat for {:.1} s; {} of its run(s) recorded interrupted", dead.node, silent.as_secs_f64(), interrupted.len());
            if !interrupted.is_empty() {
                let shown: Vec<String> = interrupted
                    .iter()
                    .take(20)
                    .map(|r| format!("{} ({})", r.job_id, r.run_id))
                    .collect();
                let more = interrupted.len().saturating_sub(shown.len());
                apscheduler_core::log_warn!(target: "apscheduler", dead_node = %dead.node, "runs interrupted by the death of node {}: {}{}", dead.node, shown.join(", "), if more > 0 { format!(" and {more} more") } else { String::new() });
                (self.interrupted)(interrupted);
            }
            nodes.remove_node(&dead.node).await?;
        }
        Ok(())
    }
}

/// The first live node of `listed` (other than `me`) whose run protocol is not
/// `protocol`: schedulers of two protocols must not share a store.
pub(crate) fn other_protocol<'a>(
    listed: &'a [NodeInfo],
    me: &str,
    protocol: &RunProtocol,
    now: DateTime<Utc>,
    node_timeout: Duration,
) -> Option<&'a NodeInfo> {
    listed
        .iter()
        .find(|n| n.node != me && n.protocol != *protocol && !n.is_stale(now, node_timeout))
}

/// What a scheduler of `protocol` says when it finds `other` live on its store.
pub(crate) fn mixed_protocols(me: &str, protocol: &RunProtocol, other: &NodeInfo) -> String {
    // A node of an earlier release, whose leased runs may not read an `ending` run.
    let earlier = match (protocol, &other.protocol) {
        (RunProtocol::LeasedRuns, RunProtocol::Other(name)) if name == "leased_runs" => {
            " (leased_runs is the leased runs of an earlier release, which may not read a run \
             that is ending: stop its nodes and start them with this release)"
        }
        _ => "",
    };
    format!(
        "node {} (host {}, pid {}, last heartbeat {}) keeps its runs as {} and node {me} as {protocol}: \
         schedulers of two run protocols must not share one store (each would start fire times \
         the other started); stop the nodes of one protocol, or give them all the same one \
         (aps: [scheduler] leased_runs; library: EngineBuilder::leased_runs){earlier}",
        other.node,
        other.host,
        other.pid,
        other.heartbeat_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        other.protocol,
    )
}

/// Nodes with `running` records and no registry entry, as this node last found them.
///
/// A reaper that read a node's heartbeat as stale removes its entry even when the node,
/// back from a stall, has just written a fresh one; the node registers again at its
/// next heartbeat, but if it dies before that, nothing would ever reap its `running`
/// records. So every node time-out a node also reads the other nodes' `running`
/// records (one query; a look that fails is made again at the next heartbeat) and
/// takes those of a node missing from the registry at looks a node time-out apart, and
/// at every look between, for dead: a live node is missing for at most one heartbeat.
#[derive(Default)]
struct Orphans {
    /// Missing nodes found at the last look, with when they were first found missing.
    missing: BTreeMap<String, DateTime<Utc>>,
    last_look: Option<DateTime<Utc>>,
}

impl Orphans {
    /// Whether a node time-out has passed since the last look (or there was none).
    fn due(&self, now: DateTime<Utc>, node_timeout: Duration) -> bool {
        self.last_look
            .is_none_or(|t| (now - t).to_std().unwrap_or_default() >= node_timeout)
    }
}

impl Member {
    /// Interrupts the `running` records of nodes missing from `listed` at this look
    /// and at every look since one a node time-out ago or more (see [`Orphans`]).
    async fn reap_orphans(
        &self,
        listed: &[NodeInfo],
        orphans: &mut Orphans,
        now: DateTime<Utc>,
    ) -> Result<(), apscheduler_core::Error> {
        let running = self.history.running_elsewhere(&self.node).await?;
        let missing: BTreeSet<String> = running
            .into_iter()
            .map(|r| r.node)
            .filter(|n| !listed.iter().any(|l| l.node == *n))
            .collect();
        orphans.missing.retain(|n, _| missing.contains(n));
        for node in missing {
            let since = *orphans.missing.entry(node.clone()).or_insert(now);
            if (now - since).to_std().unwrap_or_default() < self.node_timeout {
                continue;
            }
            let message = format!(
                "node {node} left the node registry during the run (missing since {} at the latest); recorded by {}",
                since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                self.node
            );
            let interrupted = self.history.interrupt_running(&node, now, &message).await?;
            orphans.missing.remove(&node);
            apscheduler_core::log_warn!(target: "apscheduler", node = %self.node, dead_node = %node, "node {node} taken for dead: not in the node registry for a node time-out, with runs recorded running; {} of them recorded interrupted", interrupted.len());
            if !interrupted.is_empty() {
                (self.interrupted)(interrupted);
            }
        }
        // Only a whole look counts: one that failed is made again at the next heartbeat.
        orphans.last_look = Some(now);
        Ok(())
    }
}

/// This machine's host name (what `uname -n` prints).
fn host_name() -> String {
    #[cfg(unix)]
    {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").unwrap_or_else(|_| "unknown".to_owned())
    }
}

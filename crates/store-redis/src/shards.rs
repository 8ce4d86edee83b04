//! On a Redis Cluster, which partitions answer. A partition whose node fails a claim
//! (a primary down, before its replica takes over) is left out of the claims that
//! follow, so that they serve the partitions of the other primaries without waiting
//! for it; each later claim sends it one probe (at most one at a time), and the first
//! probe that is answered brings it back.

use std::sync::{Arc, Mutex};

use crate::error::StoreError;
use crate::RedisJobStore;

/// One partition's state.
#[derive(Debug, Clone, Default)]
enum State {
    #[default]
    Up,
    /// Failed a call; `probing` while a probe is in flight; `node`: the primary that
    /// served it when it failed, once looked up.
    Down { probing: bool, node: Option<String> },
}

/// The state of every partition of a store.
#[derive(Debug, Default)]
pub(crate) struct Health {
    parts: Mutex<Vec<State>>,
}

impl Health {
    pub(crate) fn new(partitions: usize) -> Self {
        Health {
            parts: Mutex::new(vec![State::Up; partitions]),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<State>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The partitions to claim from now, and those down that no probe is asking
    /// (marked as being probed: the caller probes them).
    fn split(&self) -> (Vec<usize>, Vec<usize>) {
        let mut parts = self.lock();
        let (mut up, mut probe) = (Vec::new(), Vec::new());
        for (i, state) in parts.iter_mut().enumerate() {
            match state {
                State::Up => up.push(i),
                State::Down { probing, .. } if !*probing => {
                    *probing = true;
                    probe.push(i);
                }
                State::Down { .. } => {}
            }
        }
        (up, probe)
    }

    /// Marks a partition down; true when it was up.
    fn down(&self, part: usize) -> bool {
        let mut parts = self.lock();
        let was_up = matches!(parts[part], State::Up);
        if was_up {
            parts[part] = State::Down {
                probing: true,
                node: None,
            };
        }
        was_up
    }

    /// The partition's probe failed: the next claim probes again.
    fn probe_failed(&self, part: usize) -> Option<String> {
        let mut parts = self.lock();
        match &mut parts[part] {
            State::Down { probing, node } => {
                *probing = false;
                node.clone()
            }
            State::Up => None,
        }
    }

    fn set_node(&self, part: usize, at: String) {
        if let State::Down { node, .. } = &mut self.lock()[part] {
            *node = Some(at);
        }
    }

    fn up(&self, part: usize) {
        self.lock()[part] = State::Up;
    }
}

impl RedisJobStore {
    /// The partitions a claim asks (those not known to be down); each partition known
    /// down gets a probe, in the background, unless one is in flight.
    pub(crate) fn claimable_partitions(&self) -> Vec<usize> {
        let (up, probe) = self.health.split();
        for part in probe {
            self.spawn_probe(part, None);
        }
        up
    }

    /// A call to partition `part` failed. When its node did not answer (`Unavailable`)
    /// it is left out of claims until a probe is answered, logged with the primary
    /// that serves it (looked up in the background); an error Redis answered is
    /// logged and leaves out that call only.
    pub(crate) fn partition_failed(&self, part: usize, error: &StoreError) {
        if !matches!(error, StoreError::Unavailable { .. }) {
            // Redis answered, with an error: the node is up, the call alone is left out.
            let key = &self.parts.get(part).jobs;
            apscheduler_core::log_warn!(target: "apscheduler", prefix = %self.prefix, partition = part, "Redis Cluster: partition {part} ({key}) failed a call and is left out of it: {error}");
            return;
        }
        if self.health.down(part) {
            self.spawn_probe(part, Some(error.to_string()));
        }
    }

    /// Probes partition `part` (`EXISTS` on its jobs key, routed to its primary). With
    /// `failure` (the error that put it down), first looks up its primary for the
    /// warning.
    fn spawn_probe(&self, part: usize, failure: Option<String>) {
        let (conn, health) = (self.conn.clone(), self.health.clone());
        let key = self.parts.get(part).jobs.clone();
        let prefix = self.prefix.clone();
        tokio::spawn(async move {
            if let Some(error) = failure {
                let node = conn.node_serving(&key).await;
                let at = node.clone().unwrap_or_else(|| "unknown".to_owned());
                apscheduler_core::log_warn!(target: "apscheduler", prefix = %prefix, partition = part, node = %at, "Redis Cluster: partition {part} ({key}, served by {at}) does not answer; claims leave it out until it answers again, and claim the other partitions meanwhile: {error}");
                if let Some(node) = node {
                    health.set_node(part, node);
                }
            }
            let mut cmd = redis::cmd("EXISTS");
            cmd.arg(&key);
            match conn.query::<i64>("probe a partition", &cmd).await {
                Ok(_) => {
                    health.up(part);
                    tracing::info!(target: "apscheduler", prefix = %prefix, partition = part, "Redis Cluster: partition {part} ({key}) answers again; claims include it");
                }
                Err(e) => {
                    let at = health
                        .probe_failed(part)
                        .unwrap_or_else(|| "unknown".to_owned());
                    apscheduler_core::log_warn!(target: "apscheduler", prefix = %prefix, partition = part, node = %at, "Redis Cluster: partition {part} ({key}, served by {at}) still does not answer; claims leave it out: {e}");
                }
            }
        });
    }
}

/// Shared by the store and its probes.
pub(crate) type SharedHealth = Arc<Health>;

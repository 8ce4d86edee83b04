//! Cluster membership: the schedulers (nodes) sharing a store, as their heartbeats
//! describe them.
//!
//! Each scheduler with a run history writes a [`NodeInfo`] at an interval; any node
//! that finds another's heartbeat older than the node time-out takes it for dead,
//! records its `running` runs `interrupted` and removes its entry (see the engine's
//! cluster documentation).

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;

/// One scheduler process, as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's name, as written into its run records.
    pub node: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started (its own clock).
    pub started_at: DateTime<Utc>,
    /// When it last wrote this entry (its own clock).
    pub heartbeat_at: DateTime<Utc>,
    /// How many runs it had in flight then.
    pub running: u32,
}

/// Where nodes register and heartbeat: kept beside the run history by the stores that
/// keep one (see [`RunHistory::nodes`](crate::RunHistory::nodes)), checked by
/// `apscheduler_testkit::history`.
///
/// # Behavior
/// - [`heartbeat`](NodeRegistry::heartbeat) writes the whole entry, replacing the
///   node's previous one (and creating it the first time).
/// - [`list_nodes`](NodeRegistry::list_nodes) returns every entry, ordered by node
///   name; a node that stopped heartbeating stays listed until someone removes it.
/// - [`remove_node`](NodeRegistry::remove_node) says whether there was an entry.
#[async_trait]
pub trait NodeRegistry: Send + Sync + fmt::Debug {
    /// Writes `node`'s entry.
    ///
    /// # Errors
    /// Backend errors; `InvalidInput` for a node name the store cannot hold.
    async fn heartbeat(&self, node: &NodeInfo) -> Result<(), Error>;

    /// Every registered node, ordered by name.
    ///
    /// # Errors
    /// Backend errors; `Serialization` for an entry that cannot be read.
    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, Error>;

    /// Removes `node`'s entry; whether there was one.
    ///
    /// # Errors
    /// Backend errors.
    async fn remove_node(&self, node: &str) -> Result<bool, Error>;
}

impl NodeInfo {
    /// Whether the last heartbeat is older than `timeout` at `now` (the caller's
    /// clock): the node is taken for dead.
    pub fn is_stale(&self, now: DateTime<Utc>, timeout: std::time::Duration) -> bool {
        let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::TimeDelta::MAX);
        now.signed_duration_since(self.heartbeat_at) > timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    #[test]
    fn stale_after_the_timeout_only() {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let node = NodeInfo {
            node: "a/1".into(),
            host: "a".into(),
            pid: 1,
            started_at: at,
            heartbeat_at: at,
            running: 0,
        };
        let timeout = Duration::from_secs(10);
        assert!(!node.is_stale(at + chrono::Duration::seconds(10), timeout));
        assert!(node.is_stale(at + chrono::Duration::milliseconds(10_001), timeout));
        // A heartbeat from a clock ahead of ours is fresh.
        assert!(!node.is_stale(at - chrono::Duration::seconds(30), timeout));
    }
}

//! Cluster membership: the schedulers (nodes) sharing a store, as their heartbeats
//! describe them.
//!
//! Each scheduler with a run history writes a [`NodeInfo`] at an interval; any node
//! that finds another's heartbeat older than the node time-out takes it for dead and
//! removes its entry; without leased runs it also records the dead node's `running`
//! runs `interrupted` (see the engine's cluster documentation). Each entry names its
//! node's [`RunProtocol`]: nodes of two protocols never share a store.

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
    /// How it keeps its runs in the store. An entry written before nodes said so
    /// (an earlier release) reads as [`RunProtocol::HistoryRecords`].
    #[serde(default)]
    pub protocol: RunProtocol,
}

/// How a scheduler keeps its runs in a shared store. Schedulers of two protocols
/// cannot share one store: neither sees the other's runs as its own protocol counts
/// them, so a fire time could start on both. A scheduler refuses to start while a live
/// node of another protocol is registered (see the engine's cluster documentation).
///
/// Stored as its [name](RunProtocol::as_str); a name this release does not know (a
/// later release's, or `leased_runs`, the leased runs of earlier releases, most of
/// them without the `ending` state) reads as [`RunProtocol::Other`], which differs
/// from both. A protocol whose rows a release before could not read gets a new name,
/// so that nodes of both releases refuse to share a store whichever starts first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RunProtocol {
    /// Runs kept as run history records, their starts written conditionally
    /// (`history_records`): schedulers without leased runs, and every release before
    /// nodes named their protocol.
    #[default]
    HistoryRecords,
    /// Every run a leased row of the job store, a run whose work ended `ending` until
    /// its record is written (`leased_runs.2`).
    LeasedRuns,
    /// A protocol this release does not know, by its stored name.
    Other(String),
}

/// The stored name of [`RunProtocol::LeasedRuns`].
const LEASED_RUNS: &str = "leased_runs.2";

impl RunProtocol {
    /// The stored name: `history_records`, `leased_runs.2`, or the unknown name kept.
    pub fn as_str(&self) -> &str {
        match self {
            RunProtocol::HistoryRecords => "history_records",
            RunProtocol::LeasedRuns => LEASED_RUNS,
            RunProtocol::Other(name) => name,
        }
    }
}

impl From<String> for RunProtocol {
    fn from(name: String) -> Self {
        match name.as_str() {
            "history_records" => RunProtocol::HistoryRecords,
            LEASED_RUNS => RunProtocol::LeasedRuns,
            _ => RunProtocol::Other(name),
        }
    }
}

impl From<RunProtocol> for String {
    fn from(protocol: RunProtocol) -> Self {
        match protocol {
            RunProtocol::Other(name) => name,
            known => known.as_str().to_owned(),
        }
    }
}

impl fmt::Display for RunProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
            protocol: RunProtocol::LeasedRuns,
        };
        let timeout = Duration::from_secs(10);
        assert!(!node.is_stale(at + chrono::Duration::seconds(10), timeout));
        assert!(node.is_stale(at + chrono::Duration::milliseconds(10_001), timeout));
        // A heartbeat from a clock ahead of ours is fresh.
        assert!(!node.is_stale(at - chrono::Duration::seconds(30), timeout));
    }

    #[test]
    fn protocol_names_round_trip_and_old_entries_read_as_history_records() {
        for p in [
            RunProtocol::HistoryRecords,
            RunProtocol::LeasedRuns,
            RunProtocol::Other("runs_v3".into()),
        ] {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<RunProtocol>(&json).unwrap(), p);
        }
        // What a release before the protocol field wrote.
        let old = r#"{"node":"a","host":"h","pid":7,"started_at":"2026-01-01T00:00:00Z",
            "heartbeat_at":"2026-01-01T00:00:01Z","running":2}"#;
        let read: NodeInfo = serde_json::from_str(old).unwrap();
        assert_eq!(read.protocol, RunProtocol::HistoryRecords);
        assert_ne!(
            RunProtocol::Other("leased_runs2".into()),
            RunProtocol::LeasedRuns
        );
        // The leased runs of earlier releases (most without the `ending` state).
        assert_eq!(RunProtocol::LeasedRuns.as_str(), "leased_runs.2");
        assert_eq!(
            RunProtocol::from("leased_runs".to_owned()),
            RunProtocol::Other("leased_runs".into())
        );
    }
}

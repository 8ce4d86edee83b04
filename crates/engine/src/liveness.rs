//! Which other nodes may still be running their runs: what `max_instances` across the
//! cluster counts.
//!
//! A node's `running` records stay `running` until it writes their ends, and a node
//! that died writes none: until another node reaps it (the node time-out, 10 s by
//! default) its records would hold their jobs although the runs ended long ago. A node
//! renews the liveness of all its runs at each heartbeat, so a `running` record counts
//! as an instance only while its node's last heartbeat is younger than one claim lease
//! (5 s by default); a node silent longer than that stops holding its jobs' fire times.
//! The heartbeats are the ones this node read from the registry at its own last
//! heartbeat (the read it does anyway, to reap dead nodes), so counting costs nothing
//! more.
//!
//! It also keeps when this node's own last confirmed heartbeat was sent: a run started
//! after this node was silent for half the node time-out may be taken for interrupted
//! by a node that takes this one for dead just then, and started again there if its
//! job asks for recovery (see [`Liveness::own_silence`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use apscheduler_core::NodeInfo;
use chrono::{DateTime, Utc};

/// The registry as this node last read it.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    seen: Mutex<Option<Seen>>,
    /// When this node's last confirmed heartbeat was sent (monotonic).
    beat: Mutex<Option<tokio::time::Instant>>,
}

#[derive(Debug)]
struct Seen {
    /// When the registry was read (this node's clock).
    read_at: DateTime<Utc>,
    /// Each node's last heartbeat then.
    heartbeats: HashMap<String, DateTime<Utc>>,
}

impl Liveness {
    /// Keeps what a read of the registry at `read_at` found.
    pub(crate) fn saw(&self, read_at: DateTime<Utc>, nodes: &[NodeInfo]) {
        let heartbeats = nodes
            .iter()
            .map(|n| (n.node.clone(), n.heartbeat_at))
            .collect();
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(Seen {
            read_at,
            heartbeats,
        });
    }

    /// This node's heartbeat sent at `sent` was confirmed by the registry.
    pub(crate) fn beat_confirmed(&self, sent: tokio::time::Instant) {
        let mut beat = self.beat.lock().unwrap_or_else(|e| e.into_inner());
        if beat.is_none_or(|b| b < sent) {
            *beat = Some(sent);
        }
    }

    /// How long ago this node's last confirmed heartbeat was sent; `None` before the
    /// first (a node never registered cannot be taken for dead). Other nodes take this
    /// one for dead once their clocks are a node time-out past that heartbeat's time.
    pub(crate) fn own_silence(&self) -> Option<Duration> {
        let beat = self.beat.lock().unwrap_or_else(|e| e.into_inner());
        beat.map(|b| b.elapsed())
    }

    /// Whether `node`'s runs may no longer be running at `now`: the last read of the
    /// registry found it silent longer than `lease`. A node the read did not find (it
    /// joined since, or was reaped) counts as live, and so does every node when the
    /// last read is older than `lease` (the registry cannot be read: what it said then
    /// says nothing of now).
    pub(crate) fn silent(&self, node: &str, now: DateTime<Utc>, lease: Duration) -> bool {
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::TimeDelta::MAX);
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let Some(seen) = seen.as_ref() else {
            return false;
        };
        if now.signed_duration_since(seen.read_at) > lease {
            return false;
        }
        seen.heartbeats
            .get(node)
            .is_some_and(|heartbeat| now.signed_duration_since(*heartbeat) > lease)
    }

    /// The nodes whose runs may still be running at `now` (not [`silent`](Self::silent)),
    /// as the last read of the registry found them; `None` when nothing was read yet
    /// or the last read is older than `lease`.
    pub(crate) fn live(&self, now: DateTime<Utc>, lease: Duration) -> Option<Vec<String>> {
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::TimeDelta::MAX);
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let seen = seen.as_ref()?;
        if now.signed_duration_since(seen.read_at) > lease {
            return None;
        }
        Some(
            seen.heartbeats
                .iter()
                .filter(|(_, heartbeat)| now.signed_duration_since(**heartbeat) <= lease)
                .map(|(node, _)| node.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(node: &str, heartbeat_at: DateTime<Utc>) -> NodeInfo {
        NodeInfo {
            node: node.into(),
            host: "h".into(),
            pid: 1,
            started_at: heartbeat_at,
            heartbeat_at,
            running: 1,
            protocol: apscheduler_core::RunProtocol::HistoryRecords,
        }
    }

    #[test]
    fn a_node_is_silent_once_its_last_heartbeat_is_older_than_a_lease() {
        let t0 = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap();
        let lease = Duration::from_secs(5);
        let s = |secs: i64| t0 + chrono::Duration::milliseconds(secs);
        let live = Liveness::default();
        // Nothing read yet: every node counts.
        assert!(!live.silent("a", s(60_000), lease));
        live.saw(s(3_000), &[entry("a", t0), entry("b", s(2_900))]);
        assert!(!live.silent("a", s(5_000), lease));
        assert!(live.silent("a", s(5_001), lease));
        assert!(!live.silent("b", s(5_001), lease));
        // Not in the registry: joined since the read, counts.
        assert!(!live.silent("c", s(5_001), lease));
        // A read older than a lease says nothing of now.
        assert!(live.silent("a", s(8_000), lease));
        assert!(!live.silent("a", s(8_001), lease));
    }

    #[test]
    fn own_silence_counts_from_the_last_confirmed_heartbeats_sending() {
        let live = Liveness::default();
        assert_eq!(live.own_silence(), None, "never registered");
        let now = tokio::time::Instant::now();
        let sent = now - Duration::from_secs(3);
        live.beat_confirmed(sent);
        let silent = live.own_silence().unwrap();
        assert!(silent >= Duration::from_secs(3), "{silent:?}");
        // A slow reply to an older heartbeat does not make the node look younger.
        live.beat_confirmed(sent - Duration::from_secs(1));
        let older = live.own_silence().unwrap();
        assert!(older < Duration::from_secs(4), "{older:?}");
        live.beat_confirmed(tokio::time::Instant::now());
        assert!(live.own_silence().unwrap() < Duration::from_secs(1));
    }

    #[test]
    fn the_live_nodes_are_those_heard_within_a_lease() {
        let t0 = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap();
        let lease = Duration::from_secs(5);
        let s = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        let live = Liveness::default();
        assert_eq!(live.live(t0, lease), None);
        live.saw(s(3_000), &[entry("a", t0), entry("b", s(2_900))]);
        let mut found = live.live(s(5_000), lease).unwrap();
        found.sort();
        assert_eq!(found, ["a", "b"]);
        assert_eq!(live.live(s(5_001), lease).unwrap(), ["b"]);
        // A read older than a lease says nothing of now.
        assert_eq!(live.live(s(8_001), lease), None);
    }
}

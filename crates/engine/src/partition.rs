//! Partitioned claiming: which of a store's claim partitions this node prefers.
//!
//! A store that divides its jobs into partitions
//! ([`Capabilities::partitions`](apscheduler_core::Capabilities::partitions)) lets a
//! claimer name the partitions it owns; the store claims their due jobs first and
//! steals from the others only when they give fewer than a batch
//! ([`JobStore::acquire_due_jobs_preferring`](apscheduler_core::JobStore::acquire_due_jobs_preferring)).
//! Owners are chosen by rendezvous (highest random weight) hashing of each partition
//! over the live nodes of the registry, as this node last read it: every node that read
//! the same registry computes the same owners without talking to the others, and a
//! node that joins or dies moves only the partitions it wins or held. Nodes whose views
//! differ for a moment (one heartbeat) may both prefer a partition, or none may: both
//! are harmless, as the claim's locks decide who gets a job, and stealing serves a
//! partition nobody prefers.
//!
//! Below [`PARTITIONED_FROM_NODES`] live nodes a node claims the whole due head, as
//! without partitions: a few nodes do not contend enough for partitions to pay (a
//! partition filter reads every due job of the owned partitions to find the earliest).

use std::sync::{Arc, Mutex};

/// The fewest live nodes (this one included) at which a node claims its own partitions
/// first.
pub const PARTITIONED_FROM_NODES: usize = 4;

/// The partitions this node owns, recomputed when the live nodes change.
#[derive(Debug, Default)]
pub(crate) struct Ownership {
    last: Mutex<Option<Owned>>,
}

#[derive(Debug)]
struct Owned {
    live: Vec<String>,
    partitions: u32,
    owned: Option<Arc<[u32]>>,
}

impl Ownership {
    /// The partitions (of `partitions`) that `me` owns among `live` (the live nodes'
    /// names, `me` among them or not); `None` when this node should claim the whole
    /// due head: the store has no partitions, or fewer than [`PARTITIONED_FROM_NODES`]
    /// nodes are live.
    pub(crate) fn owned(
        &self,
        me: &str,
        mut live: Vec<String>,
        partitions: u32,
    ) -> Option<Arc<[u32]>> {
        if partitions == 0 {
            return None;
        }
        if !live.iter().any(|n| n == me) {
            live.push(me.to_owned());
        }
        live.sort_unstable();
        live.dedup();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = last.as_ref() {
            if l.partitions == partitions && l.live == live {
                return l.owned.clone();
            }
        }
        let owned: Option<Arc<[u32]>> = if live.len() < PARTITIONED_FROM_NODES {
            None
        } else {
            Some(rendezvous(me, &live, partitions).into())
        };
        let changed = last.as_ref().map_or(owned.is_some(), |l| l.owned != owned);
        if changed {
            match &owned {
                Some(o) => {
                    tracing::info!(target: "apscheduler", node = %me, "claim partitions: this node claims {} of {} partitions first ({} live nodes), then steals from the others", o.len(), partitions, live.len())
                }
                None => {
                    tracing::info!(target: "apscheduler", node = %me, "claim partitions: {} live node(s), fewer than {PARTITIONED_FROM_NODES}: this node claims from every partition", live.len())
                }
            }
        }
        *last = Some(Owned {
            live,
            partitions,
            owned: owned.clone(),
        });
        owned
    }
}

/// The claim partitions below `partitions` that the node named `me` owns among the
/// live nodes `live` (their names as in the node registry), ascending: each partition
/// goes to the node of highest weight for it (rendezvous hashing; ties, practically
/// impossible, go to the smaller name). Every node computing it from the same list gets
/// the same owners; a node joining or leaving moves only the partitions it wins or
/// held. What the engine passes in a [`ClaimHint`](apscheduler_core::ClaimHint).
pub fn rendezvous(me: &str, live: &[String], partitions: u32) -> Vec<u32> {
    let seeds: Vec<(u64, &str)> = live.iter().map(|n| (fnv1a64(n), n.as_str())).collect();
    let mine = fnv1a64(me);
    (0..partitions)
        .filter(|&p| {
            let own = weight(mine, p);
            seeds.iter().all(|&(seed, name)| {
                let w = weight(seed, p);
                name == me || w < own || (w == own && me < name)
            })
        })
        .collect()
}

/// 64-bit FNV-1a of a node name: stable across processes and versions.
fn fnv1a64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The weight of a node (by its name's hash) for a partition: SplitMix64's finalizer
/// over both, so that weights of one partition are independent across nodes.
fn weight(seed: u64, partition: u32) -> u64 {
    let mut z = seed ^ u64::from(partition).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("host-{i}/{}", 1000 + i)).collect()
    }

    #[test]
    fn every_partition_has_exactly_one_owner_and_the_spread_is_even() {
        for count in [4, 10, 30, 100] {
            let live = nodes(count);
            let mut owners = vec![0u32; 1024];
            let mut sizes = Vec::new();
            for me in &live {
                let mine = rendezvous(me, &live, 1024);
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "ascending");
                sizes.push(mine.len());
                for p in mine {
                    owners[p as usize] += 1;
                }
            }
            assert!(owners.iter().all(|&o| o == 1), "{count} nodes: {owners:?}");
            let mean = 1024.0 / count as f64;
            let max = *sizes.iter().max().unwrap() as f64;
            // Binomial spread: the busiest node within about four standard deviations.
            assert!(
                max < mean + 4.0 * mean.sqrt() + 1.0,
                "{count} nodes: {sizes:?}"
            );
        }
    }

    #[test]
    fn stable_and_only_the_partitions_of_a_joining_or_dying_node_move() {
        let live = nodes(10);
        let before: Vec<Vec<u32>> = live.iter().map(|me| rendezvous(me, &live, 1024)).collect();
        // The same view gives the same owners, in any order of the list.
        let mut shuffled = live.clone();
        shuffled.reverse();
        for (me, was) in live.iter().zip(&before) {
            assert_eq!(&rendezvous(me, &shuffled, 1024), was);
        }
        // A node dies: the survivors keep theirs and split its partitions.
        let dead = &before[3];
        let survivors: Vec<String> = live.iter().filter(|n| **n != live[3]).cloned().collect();
        let mut taken = Vec::new();
        for (i, me) in live.iter().enumerate().filter(|(i, _)| *i != 3) {
            let now = rendezvous(me, &survivors, 1024);
            assert!(
                before[i].iter().all(|p| now.contains(p)),
                "{me} lost a partition"
            );
            taken.extend(now.into_iter().filter(|p| !before[i].contains(p)));
        }
        taken.sort_unstable();
        assert_eq!(&taken, dead);
        // A node joins: it takes only from the others, each keeps the rest.
        let mut grown = live.clone();
        grown.push("host-new/7".into());
        let newcomer = rendezvous("host-new/7", &grown, 1024);
        assert!(!newcomer.is_empty());
        for (me, was) in live.iter().zip(&before) {
            let now = rendezvous(me, &grown, 1024);
            let lost: Vec<u32> = was.iter().copied().filter(|p| !now.contains(p)).collect();
            assert!(lost.iter().all(|p| newcomer.contains(p)), "{me}");
            assert!(now.iter().all(|p| was.contains(p)), "{me} gained on a join");
        }
    }

    #[test]
    fn few_nodes_or_no_partitions_claim_everything() {
        let own = Ownership::default();
        assert_eq!(own.owned("a", nodes(10), 0), None);
        assert_eq!(own.owned("host-0/1000", nodes(3), 1024), None);
        // This node counts itself even before its own heartbeat is read back.
        let three = nodes(3);
        assert!(own.owned("me", three.clone(), 1024).is_some());
        let four = own.owned("host-0/1000", nodes(4), 1024).unwrap();
        assert_eq!(&*four, &rendezvous("host-0/1000", &nodes(4), 1024)[..]);
        // Recomputed when a node dies.
        let mut fewer = nodes(5);
        fewer.remove(2);
        let five = own.owned("host-0/1000", nodes(5), 1024).unwrap();
        let after = own.owned("host-0/1000", fewer, 1024).unwrap();
        assert!(after.len() > five.len());
        assert!(five.iter().all(|p| after.contains(p)));
    }
}

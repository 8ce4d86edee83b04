//! The store's key names under its prefix, and what a prefix may be.

use apscheduler_core::Error;

use crate::error::StoreError;

/// The names of the keys a store uses.
///
/// # Key layout
/// With the default prefix `apscheduler.` (see
/// [`RedisJobStoreBuilder::prefix`](crate::RedisJobStoreBuilder::prefix)):
///
/// | key | type | holds |
/// |---|---|---|
/// | `apscheduler.jobs` | hash | job id → the job's [`JobState`](apscheduler_core::JobState) as JSON, plus `next_run_time_zone` (the IANA zone of the next run time) |
/// | `apscheduler.run_times` | sorted set | job id → next run time in UTC microseconds, for scheduled jobs nobody has claimed; paused jobs are not in it |
/// | `apscheduler.claimed` | sorted set | job id → the instant (UTC microseconds) a claimed job can be claimed again: the later of its next run time and its lease's expiry |
/// | `apscheduler.leases` | hash | job id → `<expiry_us>\|<run_us>\|<scheduler id>`: who holds the claim, until when (on the server's clock, `TIME`), and the run time it was claimed for (empty when paused while claimed) |
/// | `apscheduler.corrupt` | hash | job id → why the job cannot be read; such jobs stay in `jobs` and are in neither sorted set |
/// | `apscheduler.held:<scheduler id>` | sorted set | job id → run time (UTC microseconds) of every claim that scheduler holds on a scheduled job: the leases by holder, so a claim finds its caller's own stranded claims without reading anyone else's |
/// | `apscheduler.held_indexed` | string | `1` once the `held:` sets index every lease (a store written before they existed is indexed by its first claim) |
/// | `apscheduler.runs:<job id>` | hash | the job's runs (the run contract): `v` its version, `f` its last fence, `x` `1` while the finished job waits for its last live run, `r:<run id>` each run as JSON |
/// | `apscheduler.run_expiry` | sorted set | job id → the earliest end of its live runs' leases (server microseconds) |
/// | `apscheduler.run_jobs` | set | the jobs with a runs hash |
/// | `apscheduler.waiters` | sorted set | a scheduler's change token → the instant (server microseconds) until which it sleeps waiting for a lease to end; a release announces itself only while one of these is ahead |
///
/// The first two keys are APScheduler's own layout (`jobs_key`, `run_times_key`); a
/// claimed job moves from `run_times` to `claimed` until it is released, so a claim
/// never has to step over jobs other schedulers are running. Every change that
/// touches more than one key is one Lua script (or a `MULTI`/`EXEC` transaction), so
/// the keys are consistent at every instant and a crash at any point leaves no job
/// half-written. Scores are whole microseconds (exact as Redis doubles until the year
/// 2255); a run time with a fraction of a microsecond is rounded up, so a job is never
/// due early.
///
/// A claim ([`acquire_due_jobs`](apscheduler_core::JobStore::acquire_due_jobs)) is one
/// script: it first drops the leases that have expired on due jobs (members of
/// `claimed` scored at or before now) and puts those jobs back into `run_times`, ends
/// the caller's own leases on due jobs (stranded claims: the due members of its
/// `held:` set), then takes up to `limit` members of `run_times` scored at or before
/// now, leases them, moves them to `claimed` and returns their states. Its work
/// depends on the jobs it takes and the leases it ends, not on how many leases other
/// schedulers hold. Releasing, adding (a whole batch, with the conflict check),
/// updating, removing, extending leases and setting corrupt jobs aside are scripts
/// too.
///
/// # On a Redis Cluster
/// With a `redis+cluster://` URL the jobs are spread over `partitions` (default 16)
/// sets of these keys, partition `N` under the hash tag `{<prefix>pN}` (for
/// example `{apscheduler.p3}jobs`), so each partition's keys share one slot and every
/// script stays on one node. A job lives in partition
/// `FNV-1a-64(job id) mod partitions`. A claim asks every partition at once which
/// jobs it would give first (a read-only script), merges the answers by (run time,
/// id), and claims from each partition that holds some of the first `limit` that
/// many, at once: two round trips, and the contract's order over the whole store.
/// A claim that prefers some partitions
/// ([`acquire_due_jobs_preferring`](apscheduler_core::JobStore::acquire_due_jobs_preferring))
/// takes the earliest due jobs of those first and fills the rest from the others, in
/// the same two round trips. A partition whose node does not answer is left out of
/// the claim (with a warning) and the others are claimed. The
/// calls about one job (update, remove, look up, extend, release) go to its
/// partition only; listing jobs and the next run time ask every partition at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    /// Hash: job id → job state JSON.
    pub jobs: String,
    /// Sorted set: job id → next run time (UTC microseconds), unclaimed scheduled jobs.
    pub run_times: String,
    /// Sorted set: job id → when a claimed job can be claimed again (UTC microseconds).
    pub claimed: String,
    /// Hash: job id → `<expiry_us>|<run_us>|<scheduler id>`.
    pub leases: String,
    /// Hash: job id → why the job cannot be read.
    pub corrupt: String,
    /// The prefix of the per-scheduler sorted sets `<held><scheduler id>`: job id →
    /// run time of each claim the scheduler holds on a scheduled job.
    pub held: String,
    /// String: `1` once the `held` sets index every lease.
    pub held_indexed: String,
    /// Sorted set: change token → until when that scheduler waits for a release
    /// (server microseconds). Only the release script reads it.
    pub waiters: String,
    /// Sorted set: job id → the earliest end of its live runs' leases (server
    /// microseconds), for the run sweep.
    pub run_expiry: String,
    /// Set: the jobs with a runs hash (`<prefix>runs:<job id>`).
    pub run_jobs: String,
}

impl KeyLayout {
    pub(crate) fn new(prefix: &str) -> Self {
        KeyLayout {
            jobs: format!("{prefix}jobs"),
            run_times: format!("{prefix}run_times"),
            claimed: format!("{prefix}claimed"),
            leases: format!("{prefix}leases"),
            corrupt: format!("{prefix}corrupt"),
            held: format!("{prefix}held:"),
            held_indexed: format!("{prefix}held_indexed"),
            waiters: format!("{prefix}waiters"),
            run_expiry: format!("{prefix}run_expiry"),
            run_jobs: format!("{prefix}run_jobs"),
        }
    }

    /// The keys of partition `n` on a cluster: under the hash tag `{<prefix>p<n>}`.
    pub(crate) fn partition(prefix: &str, n: usize) -> Self {
        Self::new(&format!("{{{prefix}p{n}}}"))
    }

    /// The prefix of the per-job runs hashes (`<prefix>runs:<job id>`): the jobs
    /// key's own prefix, so that a job's runs share its slot.
    pub(crate) fn run_prefix(&self) -> &str {
        self.jobs.strip_suffix("jobs").unwrap_or(&self.jobs)
    }

    /// Every fixed key the job scripts take, in their order (the `held` sets are named
    /// by the scripts from the holder; `waiters`, which only the release takes, comes
    /// after these).
    pub(crate) fn all(&self) -> [&str; 6] {
        [
            &self.jobs,
            &self.run_times,
            &self.claimed,
            &self.leases,
            &self.corrupt,
            &self.held_indexed,
        ]
    }
}

/// FNV-1a (64 bits) over the parts: stable across processes, machines and versions,
/// which placing jobs in partitions needs.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The key sets of a store: one outside a cluster, `partitions` on one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partitions {
    parts: Vec<KeyLayout>,
}

impl Partitions {
    /// One set of keys, named from the prefix as they always were.
    pub(crate) fn single(prefix: &str) -> Self {
        Partitions {
            parts: vec![KeyLayout::new(prefix)],
        }
    }

    /// `n` sets, each under a hash tag of its own.
    pub(crate) fn cluster(prefix: &str, n: usize) -> Self {
        Partitions {
            parts: (0..n).map(|i| KeyLayout::partition(prefix, i)).collect(),
        }
    }

    /// Every partition's keys.
    pub(crate) fn all(&self) -> &[KeyLayout] {
        &self.parts
    }

    /// The keys of partition `i`.
    pub(crate) fn get(&self, i: usize) -> &KeyLayout {
        &self.parts[i]
    }

    /// The partition a job lives in.
    pub(crate) fn of(&self, id: &str) -> usize {
        if self.parts.len() == 1 {
            return 0;
        }
        (fnv1a(&[id.as_bytes()]) % self.parts.len() as u64) as usize
    }

    /// The items grouped by the partition of their ids, in partition order, each group in the given order.
    pub(crate) fn group<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        id: impl Fn(&T) -> &str,
    ) -> Vec<(usize, Vec<T>)> {
        let mut groups: Vec<Vec<T>> = (0..self.parts.len()).map(|_| Vec::new()).collect();
        for item in items {
            let i = self.of(id(&item));
            groups[i].push(item);
        }
        groups
            .into_iter()
            .enumerate()
            .filter(|(_, g)| !g.is_empty())
            .collect()
    }
}

/// Checks a key prefix: not empty, at most 256 bytes, no whitespace or control
/// characters.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](apscheduler_core::ErrorKind::InvalidInput) naming the
/// problem.
pub fn validate_prefix(prefix: &str) -> Result<(), Error> {
    let problem = if prefix.is_empty() {
        Some("it is empty".to_owned())
    } else if prefix.len() > 256 {
        Some(format!("it is {} bytes long, more than 256", prefix.len()))
    } else {
        prefix
            .chars()
            .find(|c| c.is_whitespace() || c.is_control())
            .map(|c| format!("it contains the character {c:?}"))
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(StoreError::InvalidInput(format!(
            "invalid value for field 'prefix': {prefix:?}: {why} (use letters, digits and \
             punctuation, such as 'apscheduler.')"
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_spread_evenly_over_the_partitions() {
        let parts = Partitions::cluster("app.", 16);
        assert_eq!(parts.get(3).jobs, "{app.p3}jobs");
        let mut counts = [0usize; 16];
        for i in 0..16_000 {
            counts[parts.of(&format!("job-{i}"))] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        // The placement is fixed: other processes and versions must agree on it.
        assert_eq!(
            parts.of("nightly-report"),
            (fnv1a(&[b"nightly-report"]) % 16) as usize
        );
        assert_eq!(Partitions::single("x.").of("anything"), 0);
    }
}

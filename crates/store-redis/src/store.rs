//! The store itself: its fields, its inherent methods and the helpers its job writes
//! share (commands on the connection, encoding, replication waits, change
//! notifications).

use std::fmt;
use std::sync::Arc;

use apscheduler_core::codec::{StateCodec, StateFormat};
use apscheduler_core::{CorruptJob, Error, Job};
use redis::{Cmd, FromRedisValue, Pipeline, ScriptInvocation};

use crate::codec::{decode, encode, Encoded};
use crate::conn::Connection;
use crate::error::StoreError;
use crate::keys::{KeyLayout, Partitions};
use crate::scripts::SCRIPTS;
use crate::{durability, RedisRunHistory};

/// A job store in Redis (APScheduler's `RedisJobStore`), shareable by several
/// schedulers.
///
/// Persistent: it stores [`JobState`](apscheduler_core::JobState) JSON, so jobs must run
/// tasks registered by name and have persistable triggers. See the
/// [crate documentation](crate) for an example and [`KeyLayout`] for the keys.
///
/// # Behavior
/// The store follows the [`JobStore`](apscheduler_core::JobStore) contract and passes
/// the `apscheduler-testkit` conformance suite. Where the contract leaves room:
/// - It connects in [`start`](apscheduler_core::JobStore::start) (or on first use),
///   never in the constructor, so a scheduler can be configured while Redis is down;
///   `start` itself fails with `Unavailable` when Redis cannot be reached then. The
///   connection is a [`redis::aio::ConnectionManager`]: a dropped connection is
///   re-established in the background, and a call that finds the connection refused (so
///   nothing was sent) is tried once more on the new one. Errors reaching Redis
///   (refused, dropped, timed out, `LOADING`, `READONLY`, ...) are
///   [`ErrorKind::Unavailable`](apscheduler_core::ErrorKind::Unavailable), which the
///   engine retries with backoff; the Redis error is the error's
///   [`source`](std::error::Error::source). Other kinds: `Conflict`, `NotFound`,
///   `Serialization`, `LeaseLost` as the contract says; `InvalidInput` for a bad URL or
///   prefix.
/// - Claims are ordered by score (run time in microseconds), then by id as raw bytes
///   (Redis orders equal scores that way, which is also how Rust orders `str`).
/// - Corrupt jobs (not JSON, not a job, an unknown format version or trigger, an
///   unknown time zone, a state larger than
///   [`max_state_bytes`](crate::RedisJobStoreBuilder::max_state_bytes)) are reported
///   once in [`Acquired::corrupt`](apscheduler_core::Acquired::corrupt) when they first
///   come due, then moved from `run_times` to the `corrupt` hash with the error; they
///   stay in `jobs` and are never deleted.
///   [`lookup_job`](apscheduler_core::JobStore::lookup_job) reports them as
///   `Serialization` errors, [`get_all_jobs`](apscheduler_core::JobStore::get_all_jobs)
///   skips them (with a warning),
///   [`remove_job`](apscheduler_core::JobStore::remove_job) removes them, and storing a
///   new state under their id (replace, update) makes them ordinary jobs again.
///   [`RedisJobStore::corrupt_jobs`](crate::RedisJobStore::corrupt_jobs) lists them.
/// - Leases behave as in the memory store: `add_job` with `replace_existing` and
///   `update_job` keep the lease of a claimed job; a release from a scheduler that lost
///   its lease, or for a job removed meanwhile, is ignored;
///   [`get_next_run_time`](apscheduler_core::JobStore::get_next_run_time) reports a
///   claimed job at the later of its run time and its lease's expiry.
/// - Leases are timed by the server's clock (`TIME`, read inside the scripts): a claim
///   leases until the server's time plus the lease, and a lease expires by the
///   server's time, so node clock skew cannot let two schedulers hold one lease
///   ([`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)). The
///   `now` a scheduler passes says which jobs are due.
/// - [`add_jobs`](apscheduler_core::JobStore::add_jobs) is one script: all or nothing,
///   also for two jobs of the batch with the same id.
/// - On one server (or a primary behind Sentinel) the scripts touch the keys of one
///   [`KeyLayout`]. On a Redis Cluster (`redis+cluster://`) the jobs are spread over
///   partitions, each partition's keys under one hash tag, so every script runs on one
///   node (see [`KeyLayout`]); the run history's keys share one hash tag of their own.
///   A claim there prefers the partitions the engine's hint names
///   ([`Capabilities::partitions`](apscheduler_core::Capabilities::partitions) is the
///   partition count), and leaves out a partition whose node fails (a primary down
///   before its failover) until it answers again, with a warning, so the other
///   primaries' partitions are still claimed. There,
///   [`add_jobs`](apscheduler_core::JobStore::add_jobs) of a batch that spans
///   partitions checks for conflicts in every partition first and changes nothing
///   when it finds one, then writes each partition atomically: a conflicting job
///   added by someone else between the check and the write can leave the batch
///   written in some partitions only (the call then fails with `Conflict`).
pub struct RedisJobStore {
    /// Shared with the run history.
    pub(crate) conn: Arc<Connection>,
    pub(crate) prefix: String,
    pub(crate) parts: Partitions,
    /// On a cluster, which partitions answer (see `shards`).
    pub(crate) health: crate::shards::SharedHealth,
    pub(crate) max_state_bytes: usize,
    pub(crate) state_format: StateFormat,
    pub(crate) history: Arc<RedisRunHistory>,
    /// `WAIT` after each job write.
    pub(crate) wait: Option<durability::WaitFor>,
    /// Change notifications (pub/sub).
    pub(crate) changes: apscheduler_core::ChangeChannel,
    /// Until when (server microseconds) this store's wait for a release is recorded
    /// in `waiters`; 0 when it never waited.
    pub(crate) waiting_until: std::sync::atomic::AtomicI64,
}

impl fmt::Debug for RedisJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisJobStore")
            .field("server", &self.conn.describe())
            .field("prefix", &self.prefix)
            .field("connected", &self.conn.is_connected())
            .finish_non_exhaustive()
    }
}

impl RedisJobStore {
    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The names of the keys this store uses (on a cluster, those of its first
    /// partition; [`partition_keys`](Self::partition_keys) lists every partition's).
    pub fn keys(&self) -> &KeyLayout {
        self.parts.get(0)
    }

    /// The names of the keys of every partition: one set outside a cluster.
    pub fn partition_keys(&self) -> &[KeyLayout] {
        self.parts.all()
    }

    /// The jobs set aside because they cannot be read, with the reason, by id.
    ///
    /// # Errors
    /// `Unavailable` when Redis cannot be reached.
    pub async fn corrupt_jobs(&self) -> Result<Vec<CorruptJob>, Error> {
        let reads = self.parts.all().iter().map(|k| async move {
            let mut cmd = redis::cmd("HGETALL");
            cmd.arg(&k.corrupt);
            self.query::<Vec<Vec<u8>>>("list corrupt jobs", &cmd).await
        });
        let flat: Vec<Vec<u8>> = futures_util::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let mut jobs: Vec<CorruptJob> = flat
            .chunks_exact(2)
            .map(|pair| CorruptJob {
                id: String::from_utf8_lossy(&pair[0]).into_owned(),
                error: String::from_utf8_lossy(&pair[1]).into_owned(),
            })
            .collect();
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(jobs)
    }

    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &Cmd,
    ) -> Result<T, StoreError> {
        self.conn.query(what, cmd).await
    }

    pub(crate) async fn pipeline<T: FromRedisValue>(
        &self,
        what: &'static str,
        pipe: &Pipeline,
    ) -> Result<T, StoreError> {
        self.conn.pipeline(what, pipe).await
    }

    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        what: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.conn.invoke(what, invocation).await
    }

    /// A script call with the keys of partition `part`.
    pub(crate) fn invocation<'a>(
        &self,
        part: usize,
        script: &'a redis::Script,
    ) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in self.parts.get(part).all() {
            invocation.key(key);
        }
        invocation
    }

    pub(crate) fn codec(&self) -> StateCodec {
        StateCodec::new(self.state_format, self.max_state_bytes)
    }

    pub(crate) fn encode(&self, job: &Job) -> Result<Encoded, Error> {
        encode(job, &self.codec())
    }

    pub(crate) fn decode(&self, id: &[u8], raw: &[u8]) -> Result<Job, StoreError> {
        decode(id, raw, &self.codec()).map_err(|reason| StoreError::Corrupt {
            id: String::from_utf8_lossy(id).into_owned(),
            reason,
        })
    }

    pub(crate) async fn add(&self, jobs: &[Job], replace_existing: bool) -> Result<(), Error> {
        let encoded = jobs
            .iter()
            .map(|job| self.encode(job))
            .collect::<Result<Vec<_>, _>>()?;
        let groups = self
            .parts
            .group(jobs.iter().zip(&encoded), |(job, _)| &*job.id);
        if !replace_existing && groups.len() > 1 {
            // Several partitions cannot be written in one atomic step: look for a
            // conflict everywhere first, so that a batch that conflicts changes nothing.
            if let Some(id) = self.first_conflict(jobs).await? {
                return Err(StoreError::Conflict(id).into());
            }
        }
        let writes = groups.iter().map(|(part, group)| {
            let mut invocation = self.invocation(*part, &SCRIPTS.add);
            invocation.arg(if replace_existing { "1" } else { "0" });
            for (job, enc) in group {
                invocation
                    .arg(&*job.id)
                    .arg(&enc.state[..])
                    .arg(enc.run_arg());
            }
            async move { self.invoke::<Option<String>>("add jobs", &invocation).await }
        });
        let conflicts = futures_util::future::try_join_all(writes).await?;
        match conflicts.into_iter().flatten().next() {
            Some(id) => Err(StoreError::Conflict(id).into()),
            None => {
                let parts: Vec<usize> = groups.iter().map(|(p, _)| *p).collect();
                self.replicated(&parts, "add jobs").await
            }
        }
    }

    /// The first job of the batch (in its order) whose id is stored already or comes
    /// earlier in the batch.
    async fn first_conflict(&self, jobs: &[Job]) -> Result<Option<String>, Error> {
        let groups = self
            .parts
            .group(jobs.iter().enumerate(), |(_, job)| &*job.id);
        let checks = groups.iter().map(|(part, group)| {
            let mut pipe = redis::pipe();
            for (_, job) in group {
                pipe.cmd("HEXISTS")
                    .arg(&self.parts.get(*part).jobs)
                    .arg(&*job.id);
            }
            async move {
                let found: Vec<bool> = self.pipeline("add jobs", &pipe).await?;
                Ok::<_, StoreError>(
                    group
                        .iter()
                        .zip(found)
                        .filter(|(_, exists)| *exists)
                        .map(|((i, _), _)| *i)
                        .min(),
                )
            }
        });
        let stored = futures_util::future::try_join_all(checks)
            .await?
            .into_iter()
            .flatten()
            .min();
        let mut seen = std::collections::HashSet::new();
        let repeated = jobs.iter().position(|job| !seen.insert(&*job.id));
        let first = match (stored, repeated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(first.map(|i| jobs[i].id.to_string()))
    }

    /// With [`wait_replicas`](crate::RedisJobStoreBuilder::wait_replicas), waits until
    /// the write just made (in partitions `parts`) is on enough replicas: on a
    /// cluster, on each partition's primary, at once.
    pub(crate) async fn replicated(
        &self,
        parts: &[usize],
        what: &'static str,
    ) -> Result<(), Error> {
        let Some(wait) = &self.wait else {
            return Ok(());
        };
        if !self.conn.is_cluster() {
            return Ok(wait.confirm(&self.conn, what).await?);
        }
        let waits = parts
            .iter()
            .map(|p| wait.confirm_on(&self.conn, &self.parts.get(*p).jobs, what));
        futures_util::future::try_join_all(waits).await?;
        Ok(())
    }

    /// The channel of this prefix's change notifications.
    pub(crate) fn changes_channel(&self) -> String {
        format!("{}changes", self.prefix)
    }

    /// Records in partition `part`'s `waiters` that this store's scheduler sleeps until
    /// `until` (server microseconds), the end of a lease there, so that the release
    /// of a job under a lease wakes it. Written once per wait and only by a store that
    /// listens; waits over for an hour are dropped on the way. A wait recorded just
    /// after another scheduler's release checked for waiters misses that release:
    /// this scheduler then wakes at the lease's end, and the scheduler that released
    /// the job has planned it meanwhile.
    pub(crate) async fn wait_for_release(&self, part: usize, until: i64) {
        use std::sync::atomic::Ordering;
        if self.changes.listener().is_none() || self.waiting_until.load(Ordering::Relaxed) >= until
        {
            return;
        }
        let waiters = &self.parts.get(part).waiters;
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(waiters)
            .arg(until)
            .arg(&**self.changes.token())
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(waiters)
            .arg("-inf")
            .arg(format!("({}", until - 3_600_000_000))
            .ignore();
        match self.pipeline::<()>("wait for a release", &pipe).await {
            Ok(()) => {
                self.waiting_until.fetch_max(until, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(target: "apscheduler", "wait for a release not recorded (this scheduler wakes at the lease's end): {e}");
            }
        }
    }

    /// Removes this store's waits (at shutdown), in every partition.
    pub(crate) async fn stop_waiting(&self) {
        let removals = self.parts.all().iter().map(|k| async move {
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(&k.waiters).arg(&**self.changes.token());
            let _: Result<i64, _> = self.query("stop waiting for releases", &cmd).await;
        });
        futures_util::future::join_all(removals).await;
    }

    /// Tells the other schedulers that jobs changed (`PUBLISH`), after a write that
    /// succeeded. A failed notification is not the write's failure: the others still
    /// see the change at their next pass or poll.
    pub(crate) async fn changed(&self) {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.changes_channel()).arg(&**self.changes.token());
        let sent: Result<i64, _> = self.query("notify a change", &cmd).await;
        if let Err(e) = sent {
            tracing::debug!(target: "apscheduler", "change notification not sent: {e}");
        }
    }
}

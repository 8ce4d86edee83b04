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
use crate::keys::KeyLayout;
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
/// - The scripts touch five keys (and the run history's scripts name keys from the
///   prefix), so the store needs one Redis server (or a primary); with Redis Cluster, a
///   hash-tag prefix such as `{aps}.` would keep them in one slot, but this crate
///   connects to a single node.
pub struct RedisJobStore {
    /// Shared with the run history.
    pub(crate) conn: Arc<Connection>,
    pub(crate) prefix: String,
    pub(crate) keys: KeyLayout,
    pub(crate) max_state_bytes: usize,
    pub(crate) state_format: StateFormat,
    pub(crate) history: Arc<RedisRunHistory>,
    /// `WAIT` after each job write.
    pub(crate) wait: Option<durability::WaitFor>,
    /// Change notifications (pub/sub).
    pub(crate) changes: apscheduler_core::ChangeChannel,
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

    /// The names of the keys this store uses.
    pub fn keys(&self) -> &KeyLayout {
        &self.keys
    }

    /// The jobs set aside because they cannot be read, with the reason, by id.
    ///
    /// # Errors
    /// `Unavailable` when Redis cannot be reached.
    pub async fn corrupt_jobs(&self) -> Result<Vec<CorruptJob>, Error> {
        let flat: Vec<Vec<u8>> = self
            .query(
                "list corrupt jobs",
                redis::cmd("HGETALL").arg(&self.keys.corrupt),
            )
            .await?;
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

    /// A script call with the store's keys.
    pub(crate) fn invocation<'a>(&self, script: &'a redis::Script) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in self.keys.all() {
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
        let mut invocation = self.invocation(&SCRIPTS.add);
        invocation.arg(if replace_existing { "1" } else { "0" });
        for (job, enc) in jobs.iter().zip(&encoded) {
            invocation
                .arg(&*job.id)
                .arg(&enc.state[..])
                .arg(enc.run_arg());
        }
        let conflict: Option<String> = self.invoke("add jobs", &invocation).await?;
        match conflict {
            Some(id) => Err(StoreError::Conflict(id).into()),
            None => self.replicated("add jobs").await,
        }
    }

    /// With [`wait_replicas`](RedisJobStoreBuilder::wait_replicas), waits until the
    /// write just made is on enough replicas.
    pub(crate) async fn replicated(&self, what: &'static str) -> Result<(), Error> {
        match &self.wait {
            Some(wait) => Ok(wait.confirm(&self.conn, what).await?),
            None => Ok(()),
        }
    }

    /// The channel of this prefix's change notifications.
    pub(crate) fn changes_channel(&self) -> String {
        format!("{}changes", self.prefix)
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

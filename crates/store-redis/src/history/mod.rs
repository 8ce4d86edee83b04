//! [`RedisRunHistory`]: run records beside the jobs, on the store's connection and
//! under its key prefix (layout in [`RedisRunHistory`]). The record encoding is in
//! `records`, the node registry in `registry`.

use std::fmt;
use std::sync::Arc;

use apscheduler_core::time::micros;
use apscheduler_core::{
    async_trait, Error, NodeRegistry, RunHistory, RunOutcome, RunQuery, RunRecord,
};
use chrono::{DateTime, Utc};

use crate::conn::Connection;
use crate::error::StoreError;
use crate::scripts::HISTORY_SCRIPTS;

mod records;
mod registry;

use records::{decode_run, push_record, FIELDS};

/// Records written per script call (one atomic step).
const WRITE_BATCH: usize = 1000;
/// Runs examined per pruning script call (bounds how long one call blocks Redis).
const PRUNE_BATCH: usize = 1000;
/// Index entries read per round trip while filtering.
const SCAN_PAGE: usize = 1000;
/// A `keep` larger than any job's history (and exact in Lua's doubles).
const KEEP_CAP: usize = 1 << 50;

/// The run history of a [`RedisJobStore`](crate::RedisJobStore), from its
/// [`run_history`](apscheduler_core::JobStore::run_history): one hash per run and
/// sorted indexes under the store's key prefix, on the store's connection.
///
/// # Layout and costs
/// It passes the `apscheduler_testkit::history` suite. With prefix `P`:
///
/// | key | type | holds |
/// |---|---|---|
/// | `Prun:<run id>` | hash | one run: `job_id`, `scheduled_at`, `started_at`, `finished_at` (UTC microseconds), `outcome`, `exit_code`, `http_status`, `output`, `message`, `node`, and only when not the default `attempt` (default 1), `backfill` (`1`), `due_at` (µs); absent optional fields are `None` |
/// | `Pruns` | sorted set | every run id, scored by `scheduled_at` in microseconds |
/// | `Pruns:job:<job id>` | sorted set | the job's run ids, same scores |
/// | `Pruns:outcome:<outcome>` | sorted set | the run ids with that outcome (`running`, `success`, ...) |
/// | `Pruns:node:<node>` | sorted set | the run ids of one scheduler node |
///
/// - Order: `ZREVRANGEBYSCORE` returns equal scores by member (run id) descending as
///   raw bytes, which is the contract's `scheduled_at` then `run_id` descending. Times
///   are stored to the microsecond (a fraction of one is dropped); scores are exact
///   between the years 1685 and 2255.
/// - [`record_runs`](apscheduler_core::RunHistory::record_runs) is one script per 1,000
///   records: each record replaces its hash whole (fields it no longer has are gone)
///   and moves between the job, outcome and node sets when those changed (a run going
///   from `running` to `success` leaves `runs:outcome:running`).
/// - [`record_starts`](apscheduler_core::RunHistory::record_starts) is one script per
///   1,000 records: each is written whole where no record has its id, and only gets
///   its `started_at` where the stored one is still `running` without one.
/// - [`query_runs`](apscheduler_core::RunHistory::query_runs) walks one sorted set
///   newest first within the `since`/`until` scores: `runs` without a job, outcome or
///   node filter, the filter's set with one, and with several the set with the fewest
///   runs in the range (`ZCOUNT`); the other filters are checked with `ZMSCORE` on
///   pages of 1,000 ids, and only the matching records are read (`HMGET`, pipelined).
///   So a query takes a few round trips whatever the history's size, unless it
///   combines two large sets whose common runs are rare: then each 1,000 runs of the
///   smaller set walked past cost a few milliseconds (1,000,000 runs: about 1 ms per
///   query; 26 to 80 ms, by machine load, for a combination that matches none of the
///   10,000 runs of the smaller set). It never runs a long script, so other clients
///   are not held up. `interrupt_running` walks the smaller of `runs:outcome:running`
///   (the runs in flight) and the node's set, and rewrites those records in a script
///   that writes each only while it is still `running` on that node (so of nodes
///   reaping the same dead node at once, each record goes to one, even to a reaper
///   whose read came before another's takeover). Needs Redis 6.2 or later (`ZMSCORE`).
/// - Pruning walks `runs:job:<job>` (newest first) or `runs` (scores before the cut)
///   in script calls of 1,000 runs, deleting ended runs from the hash and every set in
///   the same script, so the sets always hold exactly the stored runs (an empty set
///   disappears).
/// - Memory: about 1.2 KB per run with a short output (1,000,000 runs: 1.2 GB).
///   [`remove_all_jobs`](apscheduler_core::JobStore::remove_all_jobs) leaves the
///   history alone.
/// - A stored record that cannot be read (an unknown outcome, a missing or malformed
///   field) is a `Serialization` error naming the run id and the value.
/// - On a Redis Cluster (`redis+cluster://`) `P` is `{<prefix>h}`: every key of the
///   history (and the node registry, `Pnodes`) shares that one hash tag, so its
///   scripts run on one node, and the whole history lives on one shard (the jobs are
///   spread over partitions, see [`KeyLayout`](crate::KeyLayout)).
///
/// # Example
/// ```no_run
/// use apscheduler_core::{JobStore, RunQuery};
/// use apscheduler_store_redis::RedisJobStore;
///
/// # async fn demo() -> Result<(), apscheduler_core::Error> {
/// let store = RedisJobStore::new("redis://127.0.0.1:6379/")?;
/// let history = store.run_history().expect("the Redis store keeps history");
/// history.prepare().await?;
/// for run in history.query_runs(&RunQuery { limit: 10, ..RunQuery::default() }).await? {
///     println!("{} {} {}", run.scheduled_at, run.job_id, run.outcome);
/// }
/// # Ok(())
/// # }
/// ```
pub struct RedisRunHistory {
    conn: Arc<Connection>,
    prefix: String,
}

impl fmt::Debug for RedisRunHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRunHistory")
            .field("server", &self.conn.describe())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRunHistory {
    pub(crate) fn new(conn: Arc<Connection>, prefix: &str) -> Self {
        RedisRunHistory {
            conn,
            prefix: prefix.to_owned(),
        }
    }

    /// The script call that writes `records` (at most one batch), and the keys of
    /// the records it writes, for the store to send with its release.
    pub(crate) fn record_call(
        &self,
        records: &[RunRecord],
    ) -> Option<(redis::ScriptInvocation<'static>, Vec<String>)> {
        if records.is_empty() || records.len() > WRITE_BATCH {
            return None;
        }
        let mut invocation = HISTORY_SCRIPTS.record.prepare_invoke();
        invocation.arg(&self.prefix);
        for record in records {
            push_record(&mut invocation, record);
        }
        let keys = records
            .iter()
            .map(|r| format!("{}run:{}", self.prefix, r.run_id))
            .collect();
        Some((invocation, keys))
    }

    /// The key prefix (the store's).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn all_key(&self) -> String {
        format!("{}runs", self.prefix)
    }

    fn run_key(&self, id: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 4 + id.len());
        key.extend_from_slice(self.prefix.as_bytes());
        key.extend_from_slice(b"run:");
        key.extend_from_slice(id);
        key
    }

    fn job_key(&self, job: &str) -> String {
        format!("{}runs:job:{job}", self.prefix)
    }

    fn outcome_key(&self, outcome: RunOutcome) -> String {
        format!("{}runs:outcome:{outcome}", self.prefix)
    }

    fn node_key(&self, node: &str) -> String {
        format!("{}runs:node:{node}", self.prefix)
    }

    /// The node registry: a hash of node name to the node's entry (JSON).
    fn nodes_key(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// Reads the records of `ids` (one round trip); ids without a record are skipped.
    async fn fetch(&self, ids: &[&[u8]]) -> Result<Vec<RunRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET").arg(self.run_key(id)).arg(&FIELDS[..]);
        }
        let rows: Vec<Vec<Option<Vec<u8>>>> = self.conn.pipeline("read runs", &pipe).await?;
        let mut records = Vec::with_capacity(rows.len());
        for (id, row) in ids.iter().zip(rows) {
            if let Some(record) = decode_run(id, row)? {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Picks the index to walk: the filter set with the fewest runs in the time range
    /// (`None` when some filter set has none there, so nothing matches). Returns it and
    /// the other filter sets, whose membership is checked per run.
    async fn plan(
        &self,
        query: &RunQuery,
        min: &str,
        max: &str,
    ) -> Result<Option<(String, Vec<String>)>, StoreError> {
        let mut sets = Vec::new();
        if let Some(job) = &query.job_id {
            sets.push(self.job_key(job));
        }
        if let Some(outcome) = query.outcome {
            sets.push(self.outcome_key(outcome));
        }
        if let Some(node) = &query.node {
            sets.push(self.node_key(node));
        }
        if sets.len() < 2 {
            let driver = sets.pop().unwrap_or_else(|| self.all_key());
            return Ok(Some((driver, sets)));
        }
        let mut pipe = redis::pipe();
        for set in &sets {
            pipe.cmd("ZCOUNT").arg(set).arg(min).arg(max);
        }
        let counts: Vec<u64> = self.conn.pipeline("count runs", &pipe).await?;
        let Some((smallest, &count)) = counts.iter().enumerate().min_by_key(|&(_, c)| c) else {
            return Ok(None);
        };
        if count == 0 {
            return Ok(None);
        }
        let driver = sets.swap_remove(smallest);
        Ok(Some((driver, sets)))
    }

    async fn query(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        // Stored times are whole microseconds, so `t >= since` is `us >= ceil(since)`
        // and `t < until` is `us < ceil(until)`.
        let min = query
            .since
            .map_or_else(|| "-inf".to_owned(), |t| micros::run_time(&t).to_string());
        let mut max = query.until.map_or_else(
            || "+inf".to_owned(),
            |t| format!("({}", micros::run_time(&t)),
        );
        let Some((driver, checks)) = self.plan(query, &min, &max).await? else {
            return Ok(Vec::new());
        };

        let mut found: Vec<RunRecord> = Vec::new();
        // The walk's position: runs scored at most `max`, skipping the first `skip`
        // (the runs already seen with the score `max`, when `at` is that score).
        let mut at: Option<String> = None;
        let mut skip = 0usize;
        // With other filters to check, pages start at twice the limit and double up to
        // SCAN_PAGE: small for a query that matches soon, few round trips for a long walk.
        let mut filtered_page = query.limit.saturating_mul(2).clamp(100, SCAN_PAGE);
        loop {
            let need = query.limit - found.len();
            let page = if checks.is_empty() {
                need.min(SCAN_PAGE)
            } else {
                filtered_page
            };
            filtered_page = filtered_page.saturating_mul(2).min(SCAN_PAGE);
            let flat: Vec<Vec<u8>> = self
                .conn
                .query(
                    "query runs",
                    redis::cmd("ZREVRANGEBYSCORE")
                        .arg(&driver)
                        .arg(&max)
                        .arg(&min)
                        .arg("WITHSCORES")
                        .arg("LIMIT")
                        .arg(skip)
                        .arg(page),
                )
                .await?;
            let entries: Vec<(&[u8], &[u8])> = flat
                .chunks_exact(2)
                .map(|pair| (&pair[0][..], &pair[1][..]))
                .collect();

            let mut candidates: Vec<&[u8]> = entries.iter().map(|&(id, _)| id).collect();
            if !checks.is_empty() && !candidates.is_empty() {
                let mut pipe = redis::pipe();
                for set in &checks {
                    pipe.cmd("ZMSCORE").arg(set).arg(&candidates[..]);
                }
                let scores: Vec<Vec<Option<f64>>> =
                    self.conn.pipeline("filter runs", &pipe).await?;
                let mut keep = vec![true; candidates.len()];
                for in_set in &scores {
                    for (keep, score) in keep.iter_mut().zip(in_set) {
                        *keep &= score.is_some();
                    }
                }
                let mut keep = keep.into_iter();
                candidates.retain(|_| keep.next().unwrap_or(false));
            }

            // Read only as many records as are still needed; read more when some
            // changed meanwhile and no longer match.
            let mut rest = &candidates[..];
            while !rest.is_empty() && found.len() < query.limit {
                let take = (query.limit - found.len()).min(rest.len());
                let (now, later) = rest.split_at(take);
                found.extend(
                    self.fetch(now)
                        .await?
                        .into_iter()
                        .filter(|r| query.matches(r)),
                );
                rest = later;
            }
            if found.len() >= query.limit || entries.len() < page {
                break;
            }
            let last = entries.last().map_or(&[][..], |&(_, score)| score);
            let ties = entries.iter().rev().take_while(|e| e.1 == last).count();
            let last = String::from_utf8_lossy(last).into_owned();
            if at.as_deref() == Some(last.as_str()) {
                skip += ties;
            } else {
                max.clone_from(&last);
                at = Some(last);
                skip = ties;
            }
        }
        found.sort_by(|a, b| (b.scheduled_at, &b.run_id).cmp(&(a.scheduled_at, &a.run_id)));
        found.truncate(query.limit);
        Ok(found)
    }

    pub(crate) async fn record(&self, records: &[RunRecord]) -> Result<(), StoreError> {
        for batch in records.chunks(WRITE_BATCH) {
            let mut invocation = HISTORY_SCRIPTS.record.prepare_invoke();
            // The scripts name their keys from the prefix; this one routes the call
            // to the node serving them on a cluster (they share one hash tag).
            invocation.key(self.all_key());
            invocation.arg(&self.prefix);
            for record in batch {
                push_record(&mut invocation, record);
            }
            let _: u64 = self.conn.invoke("record runs", &invocation).await?;
        }
        Ok(())
    }

    /// `record_starts`: one script per batch, each record's start written only where
    /// its stored record is absent or still `running` without one.
    async fn start(&self, records: &[RunRecord]) -> Result<Vec<String>, StoreError> {
        let mut started = Vec::with_capacity(records.len());
        for batch in records.chunks(WRITE_BATCH) {
            let mut invocation = HISTORY_SCRIPTS.start.prepare_invoke();
            // The scripts name their keys from the prefix; this one routes the call
            // to the node serving them on a cluster (they share one hash tag).
            invocation.key(self.all_key());
            invocation.arg(&self.prefix);
            for record in batch {
                push_record(&mut invocation, record);
            }
            let ids: Vec<String> = self.conn.invoke("record starts", &invocation).await?;
            started.extend(ids);
        }
        Ok(started)
    }

    /// `interrupt_running`: the node's running records, read a batch at a time, are
    /// rewritten `interrupted` by a script that writes each only while it is still
    /// `running`; the records it wrote are this caller's.
    async fn interrupt(
        &self,
        node: &str,
        now: DateTime<Utc>,
        message: &str,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let running = RunQuery {
            outcome: Some(RunOutcome::Running),
            node: Some(node.to_owned()),
            limit: WRITE_BATCH,
            ..RunQuery::default()
        };
        let mut changed = Vec::new();
        // Each record is tried once: one that ends meanwhile is not running any more.
        let mut tried = std::collections::HashSet::new();
        loop {
            let batch: Vec<RunRecord> = self
                .query(&running)
                .await?
                .into_iter()
                .filter(|r| tried.insert(r.run_id.clone()))
                .map(|mut r| {
                    r.outcome = RunOutcome::Interrupted;
                    r.finished_at = Some(now);
                    r.message = Some(message.to_owned());
                    r
                })
                .collect();
            if batch.is_empty() {
                return Ok(changed);
            }
            changed.extend(self.interrupt_read(batch).await?);
        }
    }

    /// The script step of [`interrupt`](Self::interrupt): `batch` (records as read,
    /// rewritten `interrupted`) is written where each stored record is still `running`
    /// on the node read; returns those written, each with the start its record kept.
    async fn interrupt_read(&self, batch: Vec<RunRecord>) -> Result<Vec<RunRecord>, StoreError> {
        let mut invocation = HISTORY_SCRIPTS.interrupt.prepare_invoke();
        // The scripts name their keys from the prefix; this one routes the call
        // to the node serving them on a cluster (they share one hash tag).
        invocation.key(self.all_key());
        invocation.arg(&self.prefix);
        for record in &batch {
            push_record(&mut invocation, record);
        }
        let written: Vec<String> = self
            .conn
            .invoke("interrupt running runs", &invocation)
            .await?;
        // Each id written, and the start its record kept (written since it was read).
        let written: std::collections::HashMap<&str, Option<i64>> = written
            .chunks_exact(2)
            .map(|pair| (pair[0].as_str(), pair[1].parse().ok()))
            .collect();
        Ok(batch
            .into_iter()
            .filter_map(|mut r| {
                let started = written.get(r.run_id.as_str())?;
                r.started_at = started.map(micros::to_instant);
                Some(r)
            })
            .collect())
    }

    async fn prune_job(&self, job_id: &str, keep: usize) -> Result<u64, StoreError> {
        let (mut removed, mut offset, mut keep) = (0, 0usize, keep.min(KEEP_CAP));
        loop {
            let mut invocation = HISTORY_SCRIPTS.prune_job.prepare_invoke();
            // The scripts name their keys from the prefix; this one routes the call
            // to the node serving them on a cluster (they share one hash tag).
            invocation.key(self.all_key());
            invocation
                .arg(&self.prefix)
                .arg(job_id)
                .arg(offset)
                .arg(PRUNE_BATCH)
                .arg(keep);
            let (gone, examined, stayed, left): (u64, usize, usize, usize) =
                self.conn.invoke("prune a job's runs", &invocation).await?;
            removed += gone;
            offset += stayed;
            keep = left;
            if examined < PRUNE_BATCH {
                return Ok(removed);
            }
        }
    }

    async fn prune_before(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let cut = micros::run_time(&before);
        let (mut removed, mut offset) = (0, 0usize);
        loop {
            let mut invocation = HISTORY_SCRIPTS.prune_before.prepare_invoke();
            // The scripts name their keys from the prefix; this one routes the call
            // to the node serving them on a cluster (they share one hash tag).
            invocation.key(self.all_key());
            invocation
                .arg(&self.prefix)
                .arg(cut)
                .arg(offset)
                .arg(PRUNE_BATCH);
            let (gone, examined, stayed): (u64, usize, usize) =
                self.conn.invoke("prune old runs", &invocation).await?;
            removed += gone;
            offset += stayed;
            if examined < PRUNE_BATCH {
                return Ok(removed);
            }
        }
    }
}

#[async_trait]
impl RunHistory for RedisRunHistory {
    fn nodes(&self) -> Option<&dyn NodeRegistry> {
        Some(self)
    }

    /// Nothing to create (keys appear with the first record); checks that Redis answers.
    async fn prepare(&self) -> Result<(), Error> {
        let _: String = self.conn.query("ping", &redis::cmd("PING")).await?;
        Ok(())
    }

    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error> {
        Ok(self.record(records).await?)
    }

    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        Ok(self.start(records).await?)
    }

    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        Ok(self.query(query).await?)
    }

    async fn prune_job_runs(&self, job_id: &str, keep: usize) -> Result<u64, Error> {
        Ok(self.prune_job(job_id, keep).await?)
    }

    async fn interrupt_running(
        &self,
        node: &str,
        now: DateTime<Utc>,
        message: &str,
    ) -> Result<Vec<RunRecord>, Error> {
        Ok(self.interrupt(node, now, message).await?)
    }

    async fn prune_runs_before(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        Ok(self.prune_before(before).await?)
    }
}

#[cfg(test)]
mod tests {
    use apscheduler_core::RunHistory;
    use chrono::TimeZone;

    use super::*;

    /// Two live nodes reap a dead one: the second read the dead node's waiting run
    /// before the first interrupted it and took it over (rewritten `running` on the
    /// first's node). The second's script step, with what it read, must leave the
    /// takeover alone; otherwise both nodes would run the fire time.
    #[tokio::test]
    async fn a_reaper_whose_read_came_before_a_takeover_leaves_it_alone() {
        let Some(url) = apscheduler_testkit::server::server_url(
            "APS_TEST_REDIS_URL",
            "redis://127.0.0.1:6379/",
            "a stale interrupt of a Redis run history",
        ) else {
            return;
        };
        let prefix = format!("{}.", apscheduler_testkit::server::random_namespace());
        let store = crate::RedisJobStore::builder(&url)
            .prefix(&prefix)
            .build()
            .unwrap();
        let history = store.history.clone();
        let at = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap();
        let mut waiting = RunRecord::pending("buffer@1", "buffer", at, "dead");
        waiting.due_at = Some(at);
        history.record_runs(&[waiting.clone()]).await.unwrap();

        // The second reaper's read.
        let mut stale = waiting.clone();
        stale.outcome = RunOutcome::Interrupted;
        stale.finished_at = Some(at);
        stale.message = Some("reaped by second".into());
        // The first reaper interrupts the run and takes it over.
        let first = history
            .interrupt_running("dead", at, "reaped by first")
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        let mut mine = waiting.clone();
        mine.node = "first".into();
        history.record_runs(&[mine.clone()]).await.unwrap();

        let second = history.interrupt_read(vec![stale]).await.unwrap();
        assert!(second.is_empty(), "taken over twice: {second:?}");
        let stored = history.query_runs(&RunQuery::default()).await.unwrap();
        let stored: Vec<_> = stored
            .iter()
            .map(|r| (r.run_id.as_str(), r.outcome, r.node.as_str()))
            .collect();
        assert_eq!(stored, [("buffer@1", RunOutcome::Running, "first")]);

        let mut conn = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

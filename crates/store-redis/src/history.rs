//! [`RedisRunHistory`]: run records beside the jobs, on the store's connection and
//! under its key prefix (layout in [`RedisRunHistory`]).

use std::fmt;
use std::sync::Arc;

use apscheduler_core::time::micros;
use apscheduler_core::{
    async_trait, Error, ErrorKind, NodeInfo, NodeRegistry, RunHistory, RunOutcome, RunQuery,
    RunRecord,
};
use chrono::{DateTime, Utc};
use redis::ScriptInvocation;

use crate::conn::Connection;
use crate::error::StoreError;
use crate::scripts::HISTORY_SCRIPTS;

/// Records written per script call (one atomic step).
const WRITE_BATCH: usize = 1000;
/// Runs examined per pruning script call (bounds how long one call blocks Redis).
const PRUNE_BATCH: usize = 1000;
/// Index entries read per round trip while filtering.
const SCAN_PAGE: usize = 1000;
/// A `keep` larger than any job's history (and exact in Lua's doubles).
const KEEP_CAP: usize = 1 << 50;

/// A record's hash fields, in the order they are read. The last three are written
/// only when they differ from a first, scheduled, not waiting run (`attempt` 1,
/// `backfill` 0, no `due_at`): a record without them, as every record written before
/// they existed, reads as one.
const FIELDS: [&str; 13] = [
    "job_id",
    "scheduled_at",
    "started_at",
    "finished_at",
    "outcome",
    "exit_code",
    "http_status",
    "output",
    "message",
    "node",
    "attempt",
    "backfill",
    "due_at",
];

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
///   that writes each only while it is still `running` (so of nodes reaping the same
///   dead node at once, each record goes to one). Needs Redis 6.2 or later (`ZMSCORE`).
/// - Pruning walks `runs:job:<job>` (newest first) or `runs` (scores before the cut)
///   in script calls of 1,000 runs, deleting ended runs from the hash and every set in
///   the same script, so the sets always hold exactly the stored runs (an empty set
///   disappears).
/// - Memory: about 1.2 KB per run with a short output (1,000,000 runs: 1.2 GB).
///   [`remove_all_jobs`](apscheduler_core::JobStore::remove_all_jobs) leaves the
///   history alone.
/// - A stored record that cannot be read (an unknown outcome, a missing or malformed
///   field) is a `Serialization` error naming the run id and the value.
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
            invocation.arg(&self.prefix);
            for record in batch {
                push_record(&mut invocation, record);
            }
            let _: u64 = self.conn.invoke("record runs", &invocation).await?;
        }
        Ok(())
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
            let mut invocation = HISTORY_SCRIPTS.interrupt.prepare_invoke();
            invocation.arg(&self.prefix);
            for record in &batch {
                push_record(&mut invocation, record);
            }
            let written: Vec<String> = self
                .conn
                .invoke("interrupt running runs", &invocation)
                .await?;
            let written: std::collections::HashSet<String> = written.into_iter().collect();
            changed.extend(batch.into_iter().filter(|r| written.contains(&r.run_id)));
        }
    }

    async fn prune_job(&self, job_id: &str, keep: usize) -> Result<u64, StoreError> {
        let (mut removed, mut offset, mut keep) = (0, 0usize, keep.min(KEEP_CAP));
        loop {
            let mut invocation = HISTORY_SCRIPTS.prune_job.prepare_invoke();
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

/// Adds one record to a `record_runs` call: `id, score, job, outcome, node, n`, then
/// the `n` fields of its hash (absent optional fields are not written).
fn push_record(invocation: &mut ScriptInvocation<'_>, r: &RunRecord) {
    let score = micros::now(&r.scheduled_at).to_string();
    let time = |t: &Option<DateTime<Utc>>| t.as_ref().map(|t| micros::now(t).to_string());
    let optional = [
        ("started_at", time(&r.started_at)),
        ("finished_at", time(&r.finished_at)),
        ("exit_code", r.exit_code.map(|c| c.to_string())),
        ("http_status", r.http_status.map(|s| s.to_string())),
        ("attempt", (r.attempt != 1).then(|| r.attempt.to_string())),
        ("backfill", r.backfill.then(|| "1".to_owned())),
        ("due_at", time(&r.due_at)),
    ];
    let present = optional.iter().filter(|(_, v)| v.is_some()).count();
    let fields = 5 + present + usize::from(r.message.is_some());
    invocation
        .arg(&r.run_id)
        .arg(&score)
        .arg(&r.job_id)
        .arg(r.outcome.as_str())
        .arg(&r.node)
        .arg(fields)
        .arg("job_id")
        .arg(&r.job_id)
        .arg("scheduled_at")
        .arg(&score)
        .arg("outcome")
        .arg(r.outcome.as_str())
        .arg("node")
        .arg(&r.node)
        .arg("output")
        .arg(&r.output);
    for (name, value) in &optional {
        if let Some(value) = value {
            invocation.arg(*name).arg(value);
        }
    }
    if let Some(message) = &r.message {
        invocation.arg("message").arg(message);
    }
}

/// A record from its hash fields (in [`FIELDS`] order); `None` when there is no record.
fn decode_run(id: &[u8], row: Vec<Option<Vec<u8>>>) -> Result<Option<RunRecord>, StoreError> {
    if row.iter().all(Option::is_none) {
        return Ok(None);
    }
    let run_id = String::from_utf8_lossy(id).into_owned();
    let bad = |reason: String| StoreError::CorruptRun {
        id: run_id.clone(),
        reason,
    };
    let mut text = Vec::with_capacity(FIELDS.len());
    for (name, value) in FIELDS.iter().zip(row) {
        text.push(
            value
                .map(String::from_utf8)
                .transpose()
                .map_err(|_| bad(format!("field '{name}' is not UTF-8")))?,
        );
    }
    let mut take = |i: usize| text[i].take();
    let required = |value: Option<String>, i: usize| {
        value.ok_or_else(|| bad(format!("field '{}' is missing", FIELDS[i])))
    };
    fn number<T: std::str::FromStr>(
        value: Option<String>,
        name: &str,
    ) -> Result<Option<T>, String> {
        value
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| format!("field '{name}' is not a valid number: {v:?}"))
            })
            .transpose()
    }
    let time = |value: Option<String>, name: &str| {
        number::<i64>(value, name).map(|us| us.map(micros::to_instant))
    };

    let job_id = required(take(0), 0)?;
    let scheduled_at = time(Some(required(take(1), 1)?), FIELDS[1]).map_err(&bad)?;
    let started_at = time(take(2), FIELDS[2]).map_err(&bad)?;
    let finished_at = time(take(3), FIELDS[3]).map_err(&bad)?;
    let outcome = required(take(4), 4)?;
    let outcome = outcome
        .parse::<RunOutcome>()
        .map_err(|e| bad(e.message().to_owned()))?;
    let exit_code = number::<i32>(take(5), FIELDS[5]).map_err(&bad)?;
    let http_status = number::<u16>(take(6), FIELDS[6]).map_err(&bad)?;
    let output = required(take(7), 7)?;
    let message = take(8);
    let node = required(take(9), 9)?;
    let attempt = number::<u32>(take(10), FIELDS[10]).map_err(&bad)?;
    let backfill = match take(11).as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => return Err(bad(format!("field 'backfill' is not 0 or 1: {other:?}"))),
    };
    let due_at = time(take(12), FIELDS[12]).map_err(&bad)?;
    Ok(Some(RunRecord {
        run_id,
        job_id,
        scheduled_at: scheduled_at.unwrap_or_default(),
        started_at,
        finished_at,
        outcome,
        exit_code,
        http_status,
        output,
        message,
        node,
        attempt: attempt.unwrap_or(1),
        backfill,
        due_at,
    }))
}

/// The node registry: the hash `<prefix>nodes`, node name to the entry as JSON.
#[async_trait]
impl NodeRegistry for RedisRunHistory {
    async fn heartbeat(&self, node: &NodeInfo) -> Result<(), Error> {
        let entry = serde_json::to_string(node)
            .map_err(|e| Error::new(ErrorKind::Serialization, e.to_string()))?;
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.nodes_key()).arg(&node.node).arg(entry);
        let _: i64 = self.conn.query("heartbeat", &cmd).await?;
        Ok(())
    }

    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.nodes_key());
        let entries: Vec<(String, Vec<u8>)> = self.conn.query("list nodes", &cmd).await?;
        let mut nodes = entries
            .into_iter()
            .map(|(name, entry)| {
                serde_json::from_slice::<NodeInfo>(&entry).map_err(|e| {
                    Error::new(
                        ErrorKind::Serialization,
                        format!(
                            "Redis: node entry '{name}' in {} cannot be read: {e}",
                            self.nodes_key()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    async fn remove_node(&self, node: &str) -> Result<bool, Error> {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(self.nodes_key()).arg(node);
        let removed: i64 = self.conn.query("remove node", &cmd).await?;
        Ok(removed > 0)
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
    use super::*;

    fn row(values: [Option<&str>; 13]) -> Vec<Option<Vec<u8>>> {
        values
            .iter()
            .map(|v| v.map(|s| s.as_bytes().to_vec()))
            .collect()
    }

    const GOOD: [Option<&str>; 13] = [
        Some("job"),
        Some("1000001"),
        None,
        Some("2000000"),
        Some("success"),
        Some("-2"),
        Some("503"),
        Some(""),
        None,
        Some("node-a"),
        None,
        None,
        None,
    ];

    #[test]
    fn decodes_a_stored_record() {
        let r = decode_run(b"r1", row(GOOD)).unwrap().unwrap();
        assert_eq!(r.run_id, "r1");
        assert_eq!(r.scheduled_at.timestamp_micros(), 1_000_001);
        assert_eq!(r.started_at, None);
        assert_eq!(r.finished_at.unwrap().timestamp_micros(), 2_000_000);
        assert_eq!((r.exit_code, r.http_status), (Some(-2), Some(503)));
        assert_eq!(r.outcome, RunOutcome::Success);
        assert_eq!((r.attempt, r.backfill, r.due_at), (1, false, None));
        assert!(decode_run(b"gone", row([None; 13])).unwrap().is_none());

        let mut retry = GOOD;
        retry[10] = Some("3");
        retry[11] = Some("1");
        retry[12] = Some("1500002");
        let r = decode_run(b"r2", row(retry)).unwrap().unwrap();
        assert_eq!((r.attempt, r.backfill), (3, true));
        assert_eq!(r.due_at.unwrap().timestamp_micros(), 1_500_002);
    }

    #[test]
    fn unreadable_records_name_the_run_and_the_value() {
        let mut bad = GOOD;
        bad[4] = Some("succes");
        let err: Error = decode_run(b"r1", row(bad)).unwrap_err().into();
        assert_eq!(err.kind(), apscheduler_core::ErrorKind::Serialization);
        assert!(
            err.message().contains("'r1'") && err.message().contains("'succes'"),
            "{err}"
        );

        let mut bad = GOOD;
        bad[1] = Some("soon");
        let err = decode_run(b"r2", row(bad)).unwrap_err().to_string();
        assert!(
            err.contains("'r2'") && err.contains("scheduled_at"),
            "{err}"
        );

        let mut bad = GOOD;
        bad[9] = None;
        let err = decode_run(b"r3", row(bad)).unwrap_err().to_string();
        assert!(err.contains("'node' is missing"), "{err}");

        for (i, value, field) in [
            (10, "-1", "attempt"),
            (11, "yes", "backfill"),
            (12, "x", "due_at"),
        ] {
            let mut bad = GOOD;
            bad[i] = Some(value);
            let err = decode_run(b"r4", row(bad)).unwrap_err().to_string();
            assert!(err.contains("'r4'") && err.contains(field), "{err}");
        }
    }
}

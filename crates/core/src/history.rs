//! Run history: what ran, when, and how it ended (APScheduler keeps none).
//!
//! A [`RunHistory`] stores one [`RunRecord`] per run, keyed by its run id. The scheduler
//! writes a record when a run starts (outcome [`RunOutcome::Running`]) and writes it
//! again, whole, when it ends; a missed or skipped fire time gets a record of its own.
//! Writing a whole record (an upsert) is most of what a backend does to record: the
//! same call serves the start, the end and a miss, and a repeated write is harmless.
//! The one conditional write is [`RunHistory::record_starts`]: the start of a run a
//! scheduler claimed, written only while its record is still `running`.
//!
//! Job stores that keep history hand one out through
//! [`JobStore::run_history`](crate::JobStore::run_history), sharing their connection.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, ErrorKind};

/// How a run ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    /// Started, not yet ended.
    Running,
    /// Ended well (exit code 0, the expected HTTP status, a task that returned `Ok`).
    Success,
    /// Ended badly (a non-zero exit, an unexpected HTTP status, a task error or panic).
    Failure,
    /// Killed for running past its time-out.
    Timeout,
    /// Never ran: later than its misfire grace time, or skipped because
    /// `max_instances` runs were in flight (the record's message says which).
    Missed,
    /// Was running when the scheduler stopped or died.
    Interrupted,
    /// Could not be run at all (a command that cannot be spawned, an unknown task, an
    /// executor that refused it).
    Error,
}

impl RunOutcome {
    /// Every outcome, in declaration order.
    pub const ALL: [RunOutcome; 7] = [
        RunOutcome::Running,
        RunOutcome::Success,
        RunOutcome::Failure,
        RunOutcome::Timeout,
        RunOutcome::Missed,
        RunOutcome::Interrupted,
        RunOutcome::Error,
    ];

    /// The lowercase name stored and printed (`success`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Success => "success",
            RunOutcome::Failure => "failure",
            RunOutcome::Timeout => "timeout",
            RunOutcome::Missed => "missed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::Error => "error",
        }
    }

    /// Whether the run has ended (anything but `running`).
    pub fn is_final(self) -> bool {
        self != RunOutcome::Running
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunOutcome {
    type Err = Error;

    /// Parses a stored or typed name; the error names the value and the accepted ones.
    fn from_str(s: &str) -> Result<Self, Error> {
        RunOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "unknown outcome '{s}' (expected one of running, success, \
                         failure, timeout, missed, interrupted, error)"
                    ),
                )
            })
    }
}

/// One run of a job. Times are UTC, kept to the microsecond by every backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique id of this run (a UUID).
    pub run_id: String,
    /// The job's id.
    pub job_id: String,
    /// The fire time this run is for.
    pub scheduled_at: DateTime<Utc>,
    /// When it started; `None` for a run that never started (`missed`, `error`).
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended (or was found missed); `None` while running.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub outcome: RunOutcome,
    /// The process's exit code, for a command; `None` when killed by a signal or not a
    /// command.
    pub exit_code: Option<i32>,
    /// The response status, for an HTTP job.
    pub http_status: Option<u16>,
    /// The last bytes of the run's output (stdout and stderr interleaved, or the
    /// response body), decoded lossily, capped by the recorder (default 4 KiB).
    pub output: String,
    /// Why it failed, was missed or could not run; `None` on success.
    pub message: Option<String>,
    /// The scheduler (node) that ran it.
    pub node: String,
    /// Which attempt at its fire time this run is: 1 for the first run, 2 for the first
    /// retry (see [`RetryPolicy`](crate::RetryPolicy)).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// Whether the run was started by a backfill rather than by the scheduler.
    #[serde(default)]
    pub backfill: bool,
    /// For a run that waits to start (a retry, a buffered fire time): when it is due.
    /// Such a record is `running` with no `started_at`; if its node dies, the node that
    /// records the node's runs `interrupted` starts it instead (see docs/scheduler.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
}

fn first_attempt() -> u32 {
    1
}

impl RunRecord {
    /// A record of a run that has not started yet: `running`, with no start or end, no
    /// exit code, HTTP status, output or message.
    pub fn pending(
        run_id: impl Into<String>,
        job_id: impl Into<String>,
        scheduled_at: DateTime<Utc>,
        node: impl Into<String>,
    ) -> Self {
        Self {
            run_id: run_id.into(),
            job_id: job_id.into(),
            scheduled_at,
            started_at: None,
            finished_at: None,
            outcome: RunOutcome::Running,
            exit_code: None,
            http_status: None,
            output: String::new(),
            message: None,
            node: node.into(),
            attempt: 1,
            backfill: false,
            due_at: None,
        }
    }

    /// Truncates `bytes` to its last `cap` bytes (at a character boundary after lossy
    /// decoding), as records keep them.
    pub fn output_tail(bytes: &[u8], cap: usize) -> String {
        let tail = &bytes[bytes.len().saturating_sub(cap)..];
        let text = String::from_utf8_lossy(tail);
        if text.len() <= cap {
            return text.into_owned();
        }
        // Replacement characters can make the text longer than the bytes it came from.
        let mut start = text.len() - cap;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_owned()
    }
}

/// What [`RunHistory::query_runs`] returns: filters (all optional, combined with AND)
/// and a limit. Results are newest first: by `scheduled_at` descending, then `run_id`
/// descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunQuery {
    /// Only this job's runs.
    pub job_id: Option<String>,
    /// Only runs with this outcome.
    pub outcome: Option<RunOutcome>,
    /// Only runs scheduled at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only runs scheduled before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only runs by this node.
    pub node: Option<String>,
    /// At most this many records.
    pub limit: usize,
}

impl Default for RunQuery {
    fn default() -> Self {
        RunQuery {
            job_id: None,
            outcome: None,
            since: None,
            until: None,
            node: None,
            limit: 100,
        }
    }
}

impl RunQuery {
    /// Whether `record` passes the filters (the limit aside): the reference semantics
    /// every backend's query reproduces.
    pub fn matches(&self, record: &RunRecord) -> bool {
        self.job_id.as_deref().is_none_or(|j| j == record.job_id)
            && self.outcome.is_none_or(|o| o == record.outcome)
            && self.since.is_none_or(|t| record.scheduled_at >= t)
            && self.until.is_none_or(|t| record.scheduled_at < t)
            && self.node.as_deref().is_none_or(|n| n == record.node)
    }
}

/// The most `running` records [`RunHistory::running_elsewhere`]'s default reads: far
/// more than a cluster has in flight at once.
pub const RUNNING_SCAN_LIMIT: usize = 100_000;

/// A run another node has in flight: its `running` record, as
/// [`RunHistory::running_elsewhere`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunElsewhere {
    /// The job it runs.
    pub job_id: String,
    /// The run's id (its record's).
    pub run_id: String,
    /// The fire time it runs.
    pub scheduled_at: DateTime<Utc>,
    /// The node running it.
    pub node: String,
}

/// How much history to keep. Running records are never pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many ended runs per job (the newest by `scheduled_at`).
    pub max_runs_per_job: Option<usize>,
    /// Drop ended runs scheduled longer ago than this.
    pub max_age: Option<std::time::Duration>,
}

impl Default for Retention {
    /// 100 runs per job, no age limit.
    fn default() -> Self {
        Retention {
            max_runs_per_job: Some(100),
            max_age: None,
        }
    }
}

/// Sees each run record a scheduler makes, as it makes it: the `running` record of a
/// run that starts, then its end (`success`, `failure`, `timeout`, `interrupted`,
/// `error`), and the records of fire times that did not run (`missed`, `error`). Metrics
/// and notifications hang here, so that what they count is what the history holds.
///
/// # Behavior
/// - Called on the scheduler's or an executor's thread, before the record is written:
///   keep it short and never block (hand slow work, such as a webhook, to a task).
/// - A record whose `run_id` was seen `running` ends with a second call for that id.
///
/// Registered with `HistoryOptions::observe` in `apscheduler-engine`.
pub trait RunObserver: Send + Sync + fmt::Debug {
    /// One record, as made.
    fn observe(&self, record: &RunRecord);

    /// A job's failure streak reached its `notify_after_failures` (`Failing`), or a
    /// success ended such a streak (`Recovered`): once per streak. `Counted` gives the
    /// streak's length after each final outcome of a job with streak rules. `streak` is the
    /// number of consecutive failed fire times; `record` the run that changed it, when
    /// the scheduler records history. Ignored by default.
    fn streak(&self, change: StreakChange, job_id: &str, streak: u32, record: Option<&RunRecord>) {
        let _ = (change, job_id, streak, record);
    }
}

/// What happened to a job's failure streak (see [`RunObserver::streak`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreakChange {
    /// `notify_after_failures` consecutive fire times failed.
    Failing,
    /// A success ended a streak that had reached `notify_after_failures`.
    Recovered,
    /// The streak's length now (after every final outcome of a job with streak rules,
    /// and 0 at a resume): for a gauge, never a notification.
    Counted,
}

impl StreakChange {
    /// The notification's name: `job.failing` or `job.recovered`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreakChange::Failing => "job.failing",
            StreakChange::Recovered => "job.recovered",
            StreakChange::Counted => "job.streak",
        }
    }
}

/// Where run records live. Implemented by the SQL, Redis, MongoDB, ZooKeeper and memory stores
/// (checked by `apscheduler_testkit::history`).
///
/// # Behavior
/// - [`record_runs`](RunHistory::record_runs) writes whole records, replacing any with
///   the same `run_id`.
/// - [`record_starts`](RunHistory::record_starts) writes a start only on a record that
///   is still `running`, and says which runs may start.
/// - [`query_runs`](RunHistory::query_runs) returns records matching
///   [`RunQuery::matches`], newest first, at most `limit`.
/// - Pruning never removes a `running` record.
/// - Errors are [`Error`]s; `Unavailable` when the backend cannot be reached (the
///   recorder retries).
#[async_trait]
pub trait RunHistory: Send + Sync + fmt::Debug {
    /// Creates what the history needs (tables, indexes); called before any other method
    /// and safe to call again.
    ///
    /// # Errors
    /// Backend errors.
    async fn prepare(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Writes these records, each replacing the one with its run id.
    ///
    /// # Errors
    /// Backend errors.
    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error>;

    /// Writes the start of runs about to start, each only where its run may still
    /// start, and returns the run ids of those that may (in no particular order).
    ///
    /// Each of `records` is a `running` record with its start time (`started_at`)
    /// set. For each, atomically (against [`interrupt_running`](RunHistory::interrupt_running)
    /// and any other writer of that record):
    /// - no record with its run id: it is written whole; accepted;
    /// - the stored record is `running` without a start time: only its `started_at`
    ///   is set (to the record's); accepted;
    /// - the stored record is `running` with a start time: it is left as it is (the
    ///   first start time stays); accepted, so that a write tried again after a lost
    ///   reply gives the same answer;
    /// - the stored record has any other outcome (`interrupted`: another node took
    ///   this one for dead and owns the fire time now; `missed`; an end): it is left
    ///   as it is; refused, and the run must not start.
    ///
    /// A scheduler writes the starts of the runs it claimed this way before it starts
    /// them (`HistoryOptions::record_starts` in `apscheduler-engine`), so that a run
    /// whose record another node has ended meanwhile never starts. There is no default:
    /// a read then a write would let an interruption slip in between.
    ///
    /// # Errors
    /// Backend errors; then nothing is known of which starts were written, and none of
    /// the runs may start (writing the same records again is harmless).
    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error>;

    /// The registry of the nodes (schedulers) recording into this history, for
    /// histories that keep one beside their records; the default keeps none.
    fn nodes(&self) -> Option<&dyn crate::NodeRegistry> {
        None
    }

    /// Records matching `query`, newest first.
    ///
    /// # Errors
    /// Backend errors; `Serialization` for a stored record that cannot be read.
    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error>;

    /// The newest record of each of these jobs (jobs without any record are left
    /// out), in no particular order: what a listing of jobs shows as their last run.
    /// The default asks [`query_runs`](RunHistory::query_runs) once per job; stores
    /// override it with fewer round trips.
    ///
    /// # Errors
    /// Backend errors.
    async fn latest_runs(&self, job_ids: &[String]) -> Result<Vec<RunRecord>, Error> {
        let mut latest = Vec::new();
        for id in job_ids {
            let query = RunQuery {
                job_id: Some(id.clone()),
                limit: 1,
                ..RunQuery::default()
            };
            latest.extend(self.query_runs(&query).await?);
        }
        Ok(latest)
    }

    /// The `running` records of nodes other than `node`, as [`RunElsewhere`]s: what a
    /// scheduler adds to its own instances of a job to hold `max_instances` across the
    /// nodes sharing this history. The default asks
    /// [`query_runs`](RunHistory::query_runs) once for every running record (up to
    /// [`RUNNING_SCAN_LIMIT`]).
    ///
    /// # Errors
    /// Backend errors.
    async fn running_elsewhere(&self, node: &str) -> Result<Vec<RunElsewhere>, Error> {
        let query = RunQuery {
            outcome: Some(RunOutcome::Running),
            limit: RUNNING_SCAN_LIMIT,
            ..RunQuery::default()
        };
        Ok(self
            .query_runs(&query)
            .await?
            .into_iter()
            .filter(|r| r.node != node)
            .map(|r| RunElsewhere {
                job_id: r.job_id,
                run_id: r.run_id,
                scheduled_at: r.scheduled_at,
                node: r.node,
            })
            .collect())
    }

    /// Removes ended runs of `job_id` beyond the newest `keep`; returns how many.
    ///
    /// # Errors
    /// Backend errors.
    async fn prune_job_runs(&self, job_id: &str, keep: usize) -> Result<u64, Error>;

    /// Removes ended runs (of every job) scheduled before `before`; returns how many.
    ///
    /// # Errors
    /// Backend errors.
    async fn prune_runs_before(&self, before: DateTime<Utc>) -> Result<u64, Error>;

    /// Marks every `running` record of `node` as `interrupted`, ended at `now` with
    /// `message`: what a scheduler does at start for runs its previous life left behind,
    /// and what a live node does for a dead one's. Returns the records it changed.
    ///
    /// Callers interrupting the same node at once, each with its own message (the
    /// reaper names itself in it), each get only the records their own call changed,
    /// so each record goes to one of them: the one that recovers its run (`Job::recover`).
    /// The default (read, then write) does not promise that; the stores' own do.
    ///
    /// # Errors
    /// Backend errors.
    async fn interrupt_running(
        &self,
        node: &str,
        now: DateTime<Utc>,
        message: &str,
    ) -> Result<Vec<RunRecord>, Error> {
        let mut changed = Vec::new();
        loop {
            let batch = self
                .query_runs(&RunQuery {
                    outcome: Some(RunOutcome::Running),
                    node: Some(node.to_owned()),
                    limit: 1000,
                    ..RunQuery::default()
                })
                .await?;
            if batch.is_empty() {
                return Ok(changed);
            }
            let ended: Vec<RunRecord> = batch
                .into_iter()
                .map(|mut r| {
                    r.outcome = RunOutcome::Interrupted;
                    r.finished_at = Some(now);
                    r.message = Some(message.to_owned());
                    r
                })
                .collect();
            self.record_runs(&ended).await?;
            changed.extend(ended);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_tail_keeps_the_last_bytes_and_survives_bad_utf8() {
        assert_eq!(RunRecord::output_tail(b"hello world", 5), "world");
        assert_eq!(RunRecord::output_tail(b"abc", 10), "abc");
        let out = RunRecord::output_tail(&[0xff, 0xfe, b'o', b'k'], 4);
        assert!(out.len() <= 4 && out.ends_with("ok"), "{out:?}");
        // A cut through a multi-byte character does not panic.
        let out = RunRecord::output_tail("héllo".as_bytes(), 5);
        assert!(out.ends_with("llo"));
    }

    #[test]
    fn outcomes_round_trip_and_unknown_ones_are_named() {
        for o in RunOutcome::ALL {
            assert_eq!(o.as_str().parse::<RunOutcome>().unwrap(), o);
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        let err = "succes".parse::<RunOutcome>().unwrap_err();
        assert!(err.message().contains("'succes'"), "{err}");
    }
}

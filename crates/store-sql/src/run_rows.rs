//! The run contract's rows (`<table>_run_leases`, with the per-job fences in
//! `<table>_run_fences`): each operation is one transaction that locks the fence rows
//! of the jobs it touches (so that steps on one job's runs follow one another, on
//! every node), loads those jobs' live runs and the runs it names into a
//! [`RunTable`], lets the table decide, and writes back what changed. The decisions
//! are core's, the same as every other store's; this file only keeps the rows.
//!
//! Leases are timed by the server's clock on PostgreSQL and MySQL/MariaDB, by the
//! process's on SQLite (one machine).

use std::collections::HashSet;
use std::sync::Arc;

use apscheduler_core::{Changes, Decide, JobWrites, Run, RunKey, RunTable, StepView};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Pool;

use crate::codec::{from_micros, micros_floor, EncodedJob};
use crate::driver::Result;
use crate::error::StoreError;
use crate::schema::{Dialect, Names};

/// Binds a run row's columns ([`RunColumns`], in `upsert_runs`' order) to a query.
macro_rules! bind_run {
    ($q:expr, $c:expr) => {
        $q.bind($c.job_id.as_str())
            .bind($c.fire_time)
            .bind($c.attempt)
            .bind($c.rerun)
            .bind($c.state)
            .bind($c.lease_until)
            .bind($c.holder.as_str())
            .bind($c.fence)
            .bind($c.ended_at)
            .bind($c.json.as_str())
    };
}

/// Binds a job's fence row (job id, fence, finishing) to a query.
macro_rules! bind_fence {
    ($q:expr, $job:expr, $fence:expr, $finishing:expr) => {
        $q.bind(&**$job)
            .bind(i64::try_from(*$fence).unwrap_or(i64::MAX))
            .bind(i64::from(*$finishing))
    };
}

/// Binds a job's new state ([`EncodedJob`], in `update_jobs`' order) to a query.
macro_rules! bind_job {
    ($q:expr, $job:expr) => {
        $q.bind($job.id.as_str())
            .bind($job.next_run_time)
            .bind($job.paused)
            .bind($job.state.as_str())
            .bind($job.state_bin.as_deref())
            .bind($job.format_version)
    };
}

#[cfg(feature = "postgres")]
mod postgres;

/// The states of a live run, as the `state` column holds them.
const LIVE: &str = "('claimed', 'waiting', 'started', 'interrupting', 'missing')";

/// What one step locks and loads.
#[derive(Debug)]
pub(crate) struct Step<'a> {
    /// The caller: which of `jobs` it holds the claim of is reported.
    pub(crate) holder: &'a str,
    /// The jobs whose fences are locked and whose live runs are loaded.
    pub(crate) jobs: Vec<Arc<str>>,
    /// Runs to load besides (they may have ended).
    pub(crate) keys: Vec<RunKey>,
}

/// The run rows' operations, the same for every dialect.
#[async_trait]
pub(crate) trait RunOps: Send + Sync + std::fmt::Debug {
    /// One atomic step (see the module documentation).
    async fn step(&self, step: &Step<'_>, decide: &mut Decide<'_, EncodedJob>) -> Result<()>;

    /// Up to `limit` jobs with a live run whose lease expired, earliest expiry first.
    async fn expired_jobs(&self, limit: usize) -> Result<Vec<Arc<str>>>;

    /// A job's runs, by key.
    async fn of_job(&self, job_id: &str) -> Result<Vec<Run>>;

    /// Deletes the runs that ended before `before`; answers how many.
    async fn prune(&self, before: DateTime<Utc>) -> Result<usize>;
}

/// The statements of one job table's run rows.
#[derive(Debug)]
struct Statements {
    now: String,
    pause_job: String,
    delete_job: String,
    expired: String,
    of_job: String,
    prune: String,
}

impl Statements {
    fn new(d: Dialect, n: &Names) -> Statements {
        let p = |i| d.param(i);
        let (runs, jobs) = (&n.run_leases, &n.jobs);
        let row = d.text("row_json");
        let now = match d {
            Dialect::Postgres => {
                "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT".to_owned()
            }
            Dialect::MySql => {
                "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))".to_owned()
            }
            Dialect::Sqlite => p(1),
        };
        Statements {
            now: format!("SELECT {now}"),
            pause_job: format!(
                "UPDATE {jobs} SET next_run_time = NULL, paused = TRUE, lease_holder = NULL, \
                 lease_expires = NULL WHERE id = {}",
                p(1)
            ),
            delete_job: format!("DELETE FROM {jobs} WHERE id = {}", p(1)),
            expired: format!(
                "SELECT {} FROM {runs} WHERE state IN {LIVE} AND lease_until <= {now} \
                 GROUP BY job_id ORDER BY MIN(lease_until) LIMIT {}",
                d.text("job_id"),
                p(if d == Dialect::Sqlite { 2 } else { 1 })
            ),
            of_job: format!(
                "SELECT {row} FROM {runs} WHERE job_id = {} ORDER BY fire_time, attempt, rerun",
                p(1)
            ),
            prune: format!(
                "DELETE FROM {runs} WHERE state NOT IN {LIVE} AND ended_at < {}",
                p(1)
            ),
        }
    }
}

/// How many jobs, keys or rows one batched statement names (at most 10 parameters a
/// row: well under every server's limit on parameters).
const CHUNK: usize = 500;

/// `n` parameters, numbered from `from` where the dialect numbers them: `?, ?` or
/// `$3, $4`.
fn params(d: Dialect, from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| d.param(i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rows` parenthesized groups of `width` parameters, numbered from 1: `(?, ?), (?, ?)`.
fn groups(d: Dialect, rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", params(d, r * width + 1, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The batched statements of a step, for `n` jobs, keys or rows.
impl Statements {
    fn ensure_fences(d: Dialect, n: &Names, rows: usize) -> String {
        let values = (0..rows)
            .map(|r| format!("({}, 0, 0)", d.param(r + 1)))
            .collect::<Vec<_>>()
            .join(", ");
        let fences = &n.run_fences;
        match d {
            Dialect::Sqlite => {
                format!("INSERT OR IGNORE INTO {fences} (job_id, fence, finishing) VALUES {values}")
            }
            Dialect::Postgres => format!(
                "INSERT INTO {fences} (job_id, fence, finishing) VALUES {values} \
                 ON CONFLICT (job_id) DO NOTHING"
            ),
            Dialect::MySql => {
                format!("INSERT IGNORE INTO {fences} (job_id, fence, finishing) VALUES {values}")
            }
        }
    }

    fn lock_fences(d: Dialect, n: &Names, rows: usize) -> String {
        format!(
            "SELECT {}, fence, finishing FROM {} WHERE job_id IN ({}) ORDER BY job_id{}",
            d.text("job_id"),
            n.run_fences,
            params(d, 1, rows),
            lock_clause(d)
        )
    }

    fn lock_jobs(d: Dialect, n: &Names, rows: usize) -> String {
        format!(
            "SELECT {}, {} FROM {} WHERE id IN ({}) ORDER BY id{}",
            d.text("id"),
            d.text("lease_holder"),
            n.jobs,
            params(d, 1, rows),
            lock_clause(d)
        )
    }

    fn live_runs(d: Dialect, n: &Names, rows: usize) -> String {
        format!(
            "SELECT {} FROM {} WHERE job_id IN ({}) AND state IN {LIVE}",
            d.text("row_json"),
            n.run_leases,
            params(d, 1, rows)
        )
    }

    fn runs_by_key(d: Dialect, n: &Names, rows: usize) -> String {
        format!(
            "SELECT {} FROM {} WHERE (job_id, fire_time, attempt, rerun) IN ({})",
            d.text("row_json"),
            n.run_leases,
            groups(d, rows, 4)
        )
    }

    fn upsert_runs(d: Dialect, n: &Names, rows: usize) -> String {
        let columns = "job_id, fire_time, attempt, rerun, state, lease_until, holder, fence, \
                       ended_at, row_json";
        let (runs, values) = (&n.run_leases, groups(d, rows, 10));
        match d {
            Dialect::MySql => format!(
                "INSERT INTO {runs} ({columns}) VALUES {values} ON DUPLICATE KEY UPDATE \
                 state = VALUES(state), lease_until = VALUES(lease_until), \
                 holder = VALUES(holder), fence = VALUES(fence), ended_at = VALUES(ended_at), \
                 row_json = VALUES(row_json)"
            ),
            Dialect::Sqlite | Dialect::Postgres => format!(
                "INSERT INTO {runs} ({columns}) VALUES {values} \
                 ON CONFLICT (job_id, fire_time, attempt, rerun) DO UPDATE SET \
                 state = excluded.state, lease_until = excluded.lease_until, \
                 holder = excluded.holder, fence = excluded.fence, \
                 ended_at = excluded.ended_at, row_json = excluded.row_json"
            ),
        }
    }

    fn write_fences(d: Dialect, n: &Names, rows: usize) -> String {
        let (fences, values) = (&n.run_fences, groups(d, rows, 3));
        match d {
            Dialect::MySql => format!(
                "INSERT INTO {fences} (job_id, fence, finishing) VALUES {values} \
                 ON DUPLICATE KEY UPDATE fence = VALUES(fence), finishing = VALUES(finishing)"
            ),
            Dialect::Sqlite | Dialect::Postgres => format!(
                "INSERT INTO {fences} (job_id, fence, finishing) VALUES {values} \
                 ON CONFLICT (job_id) DO UPDATE SET fence = excluded.fence, \
                 finishing = excluded.finishing"
            ),
        }
    }
}

impl Statements {
    /// A multi-row update of `rows` jobs' new states (id, next run time, paused,
    /// state, binary state, format version per row), dropping their claims.
    fn update_jobs(d: Dialect, n: &Names, rows: usize) -> String {
        let jobs = &n.jobs;
        let set = "next_run_time = v.next_run_time, paused = v.paused, state = v.state, \
                   state_bin = v.state_bin, format_version = v.format_version, \
                   lease_holder = NULL, lease_expires = NULL, corrupt = NULL";
        let names = "v(id, next_run_time, paused, state, state_bin, format_version)";
        match d {
            Dialect::Postgres => {
                let values = (0..rows)
                    .map(|r| {
                        let p = |i: usize| d.param(r * 6 + i);
                        format!(
                            "({}::VARCHAR, {}::BIGINT, {}::BOOLEAN, {}::TEXT, {}::BYTEA, {}::INTEGER)",
                            p(1),
                            p(2),
                            p(3),
                            p(4),
                            p(5),
                            p(6)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("UPDATE {jobs} SET {set} FROM (VALUES {values}) AS {names} WHERE {jobs}.id = v.id")
            }
            Dialect::Sqlite => format!(
                "UPDATE {jobs} SET {} FROM (VALUES {}) AS v WHERE {jobs}.id = v.column1",
                "next_run_time = v.column2, paused = v.column3, state = v.column4, \
                 state_bin = v.column5, format_version = v.column6, lease_holder = NULL, \
                 lease_expires = NULL, corrupt = NULL",
                groups(d, rows, 6)
            ),
            Dialect::MySql => {
                let row = "SELECT CONVERT(? USING utf8mb4) COLLATE utf8mb4_bin AS id, \
                           CAST(? AS SIGNED) AS next_run_time, CAST(? AS SIGNED) AS paused, \
                           CONVERT(? USING utf8mb4) AS state, CAST(? AS BINARY) AS state_bin, \
                           CAST(? AS SIGNED) AS format_version";
                format!(
                    "UPDATE {jobs} AS j JOIN ({}) AS v ON j.id = v.id SET \
                     j.next_run_time = v.next_run_time, j.paused = v.paused, j.state = v.state, \
                     j.state_bin = v.state_bin, j.format_version = v.format_version, \
                     j.lease_holder = NULL, j.lease_expires = NULL, j.corrupt = NULL",
                    vec![row; rows].join(" UNION ALL ")
                )
            }
        }
    }
}

/// Row locks where the dialect has them (SQLite's `BEGIN IMMEDIATE` locks the file).
fn lock_clause(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "",
        Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
    }
}

/// The run rows of one job table, on its pool.
#[derive(Debug)]
pub(crate) struct RunRows<DB: sqlx::Database> {
    pool: Pool<DB>,
    dialect: Dialect,
    table: String,
    names: Names,
    sql: Statements,
}

impl<DB: sqlx::Database> RunRows<DB> {
    pub(crate) fn new(pool: Pool<DB>, dialect: Dialect, names: &Names) -> Self {
        RunRows {
            pool,
            dialect,
            table: names.run_leases_table.clone(),
            names: names.clone(),
            sql: Statements::new(dialect, names),
        }
    }

    fn context(&self, what: &str) -> String {
        format!("{}: {what}", self.dialect.label())
    }

    fn decode(&self, json: &str) -> Result<Run> {
        serde_json::from_str(json).map_err(|e| StoreError::UnreadableRun {
            table: self.table.clone(),
            run: json.chars().take(200).collect(),
            error: e.to_string(),
        })
    }
}

/// The columns of a run's row, as bound in `upsert_run`'s order.
struct RunColumns {
    job_id: String,
    fire_time: i64,
    attempt: i64,
    rerun: i64,
    state: &'static str,
    lease_until: i64,
    holder: String,
    fence: i64,
    ended_at: Option<i64>,
    json: String,
}

fn columns(run: &Run) -> RunColumns {
    use apscheduler_core::RunState;
    let ended_at = match run.state {
        RunState::Ended { at, .. } | RunState::Interrupted { at } => Some(micros_floor(&at)),
        _ => None,
    };
    RunColumns {
        job_id: run.key.job_id.to_string(),
        fire_time: micros_floor(&run.key.fire_time),
        attempt: i64::from(run.key.attempt),
        rerun: i64::from(run.key.rerun),
        state: run.state.name(),
        lease_until: micros_floor(&run.lease_until),
        holder: run.holder.to_string(),
        fence: i64::try_from(run.fence).unwrap_or(i64::MAX),
        ended_at,
        json: serde_json::to_string(run).expect("a run serializes"),
    }
}

/// What a step's decision makes of what the step loaded (`now`: the store's time, in
/// microseconds): the job rows to write and the table's changes.
fn decided(
    decide: &mut Decide<'_, EncodedJob>,
    runs: Vec<Run>,
    fences: Vec<(Arc<str>, u64, bool)>,
    now: i64,
    existing: HashSet<Arc<str>>,
    held: HashSet<Arc<str>>,
) -> (JobWrites<EncodedJob>, Changes) {
    let mut table = RunTable::load(runs, fences);
    let view = StepView {
        part: None,
        now: from_micros(now),
        existing,
        held,
    };
    let writes = decide(&mut table, &view);
    (writes, table.take_changes())
}

/// The step of [`RunOps`] in a statement per kind of read and write, for one database
/// type (the statements differ by dialect only in their text, which [`Statements`]
/// holds). PostgreSQL uses it for steps too large for its compact step.
macro_rules! locked_step {
    ($db:ty) => {
        impl RunRows<$db> {
            /// One atomic step (see the module documentation), a statement per kind.
            pub(super) async fn locked_step(
                &self,
                step: &Step<'_>,
                decide: &mut Decide<'_, EncodedJob>,
            ) -> Result<()> {
                let map = |what: &'static str| {
                    let context = self.context(what);
                    move |e| StoreError::sql(context.clone(), e)
                };
                let mut tx = match self.dialect {
                    Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
                    Dialect::Postgres | Dialect::MySql => self.pool.begin().await,
                }
                .map_err(map("begin a run step"))?;
                let now = match self.dialect {
                    Dialect::Sqlite => micros_floor(&Utc::now()),
                    Dialect::Postgres | Dialect::MySql => {
                        sqlx::query_scalar::<_, i64>(&self.sql.now)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(map("the server's time"))?
                    }
                };
                // Locked in one order everywhere, so two steps never wait on each other.
                let mut jobs = step.jobs.clone();
                jobs.sort();
                jobs.dedup();
                let (d, n) = (self.dialect, &self.names);
                let mut fences = Vec::with_capacity(jobs.len());
                let (mut existing, mut held) = (HashSet::new(), HashSet::new());
                let mut runs = Vec::new();
                // Batched: a statement per kind for all the step's jobs, not per job.
                for part in jobs.chunks(CHUNK) {
                    let sql = Statements::ensure_fences(d, n, part.len());
                    let mut q = sqlx::query(&sql);
                    for job in part {
                        q = q.bind(&**job);
                    }
                    q.execute(&mut *tx).await.map_err(map("run fences"))?;
                    let sql = Statements::lock_fences(d, n, part.len());
                    let mut q = sqlx::query_as::<_, (String, i64, i64)>(&sql);
                    for job in part {
                        q = q.bind(&**job);
                    }
                    for (job, fence, finishing) in q
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map("lock the run fences"))?
                    {
                        fences.push((
                            Arc::<str>::from(job),
                            u64::try_from(fence).unwrap_or(0),
                            finishing != 0,
                        ));
                    }
                    let sql = Statements::lock_jobs(d, n, part.len());
                    let mut q = sqlx::query_as::<_, (String, Option<String>)>(&sql);
                    for job in part {
                        q = q.bind(&**job);
                    }
                    for (id, holder) in q.fetch_all(&mut *tx).await.map_err(map("lock the jobs"))? {
                        let id: Arc<str> = id.into();
                        if holder.as_deref() == Some(step.holder) {
                            held.insert(id.clone());
                        }
                        existing.insert(id);
                    }
                    let sql = Statements::live_runs(d, n, part.len());
                    let mut q = sqlx::query_scalar::<_, String>(&sql);
                    for job in part {
                        q = q.bind(&**job);
                    }
                    for json in q.fetch_all(&mut *tx).await.map_err(map("load live runs"))? {
                        runs.push(self.decode(&json)?);
                    }
                }
                let missing: Vec<&RunKey> = step
                    .keys
                    .iter()
                    .filter(|key| !runs.iter().any(|r| r.key == **key))
                    .collect();
                for part in missing.chunks(CHUNK) {
                    let sql = Statements::runs_by_key(d, n, part.len());
                    let mut q = sqlx::query_scalar::<_, String>(&sql);
                    for key in part {
                        q = q
                            .bind(&*key.job_id)
                            .bind(micros_floor(&key.fire_time))
                            .bind(i64::from(key.attempt))
                            .bind(i64::from(key.rerun));
                    }
                    for json in q.fetch_all(&mut *tx).await.map_err(map("load runs"))? {
                        runs.push(self.decode(&json)?);
                    }
                }
                let (
                    writes,
                    Changes {
                        runs,
                        jobs: job_fences,
                        removable,
                    },
                ) = decided(decide, runs, fences, now, existing, held);
                let rows: Vec<RunColumns> = runs.iter().map(columns).collect();
                for part in rows.chunks(CHUNK) {
                    let sql = Statements::upsert_runs(d, n, part.len());
                    let mut q = sqlx::query(&sql);
                    for c in part {
                        q = bind_run!(q, c);
                    }
                    q.execute(&mut *tx).await.map_err(map("write runs"))?;
                }
                for part in job_fences.chunks(CHUNK) {
                    let sql = Statements::write_fences(d, n, part.len());
                    let mut q = sqlx::query(&sql);
                    for (job, fence, finishing) in part {
                        q = bind_fence!(q, job, fence, finishing);
                    }
                    q.execute(&mut *tx).await.map_err(map("write run fences"))?;
                }
                let stored: Vec<&EncodedJob> = writes.store.iter().map(|(_, job)| job).collect();
                for part in stored.chunks(CHUNK) {
                    let sql = Statements::update_jobs(d, n, part.len());
                    let mut q = sqlx::query(&sql);
                    for job in part {
                        q = bind_job!(q, job);
                    }
                    q.execute(&mut *tx).await.map_err(map("release the jobs"))?;
                }
                self.finish_jobs(
                    &mut tx,
                    &writes.pause,
                    writes.remove.iter().chain(&removable),
                )
                .await?;
                tx.commit().await.map_err(map("commit a run step"))
            }

            /// Keeps the finished jobs `pause` paused and removes those of `remove`.
            pub(super) async fn finish_jobs(
                &self,
                tx: &mut <$db as sqlx::Database>::Connection,
                pause: &[Arc<str>],
                remove: impl Iterator<Item = &Arc<str>> + Send,
            ) -> Result<()> {
                let map = |what: &'static str| {
                    let context = self.context(what);
                    move |e| StoreError::sql(context.clone(), e)
                };
                for id in pause {
                    sqlx::query(&self.sql.pause_job)
                        .bind(&**id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map("keep a finished job"))?;
                }
                for id in remove {
                    sqlx::query(&self.sql.delete_job)
                        .bind(&**id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map("remove a finished job"))?;
                }
                Ok(())
            }
        }
    };
}

/// Implements [`RunOps`] for one database type, with its step method.
macro_rules! run_ops {
    ($db:ty, $step:ident) => {
        #[async_trait]
        impl RunOps for RunRows<$db> {
            async fn step(
                &self,
                step: &Step<'_>,
                decide: &mut Decide<'_, EncodedJob>,
            ) -> Result<()> {
                self.$step(step, decide).await
            }

            async fn expired_jobs(&self, limit: usize) -> Result<Vec<Arc<str>>> {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let mut query = sqlx::query_scalar::<_, String>(&self.sql.expired);
                if self.dialect == Dialect::Sqlite {
                    query = query.bind(micros_floor(&Utc::now()));
                }
                let jobs = query
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| StoreError::sql(self.context("expired runs"), e))?;
                Ok(jobs.into_iter().map(Arc::from).collect())
            }

            async fn of_job(&self, job_id: &str) -> Result<Vec<Run>> {
                let rows: Vec<String> = sqlx::query_scalar(&self.sql.of_job)
                    .bind(job_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| StoreError::sql(self.context("runs_of_job"), e))?;
                rows.iter().map(|json| self.decode(json)).collect()
            }

            async fn prune(&self, before: DateTime<Utc>) -> Result<usize> {
                let done = sqlx::query(&self.sql.prune)
                    .bind(micros_floor(&before))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::sql(self.context("prune_runs"), e))?;
                Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
            }
        }
    };
}

#[cfg(feature = "sqlite")]
locked_step!(sqlx::Sqlite);
#[cfg(feature = "sqlite")]
run_ops!(sqlx::Sqlite, locked_step);
#[cfg(feature = "postgres")]
locked_step!(sqlx::Postgres);
#[cfg(feature = "postgres")]
run_ops!(sqlx::Postgres, compact_step);
#[cfg(feature = "mysql")]
locked_step!(sqlx::MySql);
#[cfg(feature = "mysql")]
run_ops!(sqlx::MySql, locked_step);

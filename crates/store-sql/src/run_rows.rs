//! The run contract's rows (`<table>_run_leases`, with the per-job fences in
//! `<table>_run_fences`): each operation is one transaction that locks the fence rows
//! of the jobs it touches (so that steps on one job's runs follow one another, on
//! every node), loads those jobs' live runs and the runs it names into a
//! [`RunTable`], lets the table decide, and writes back what changed. The decisions
//! are core's, the same as every other store's; this file only keeps the rows.
//!
//! Leases are timed by the server's clock on PostgreSQL and MySQL/MariaDB, by the
//! process's on SQLite (one machine).
//!
//! SQLite takes the step here, a statement per kind ([`statements`]); PostgreSQL and
//! MySQL/MariaDB take compact steps of two round trips (`postgres.rs`, `mysql.rs`),
//! and this one for steps too large for them.

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

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod statements;

use statements::{Statements, CHUNK};

/// The states of a live run, as the `state` column holds them.
const LIVE: &str = "('claimed', 'waiting', 'started', 'ending', 'interrupting', 'missing')";

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

impl Step<'_> {
    /// Whether the step names more jobs or runs than one statement should (or none):
    /// the compact steps leave it to the statement-per-kind step.
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    fn too_large(&self) -> bool {
        self.jobs.is_empty() || self.jobs.len() > CHUNK || self.keys.len() > CHUNK
    }
}

/// A pooled connection that a compact step may leave inside a transaction (its
/// statements are sent as text, `BEGIN` among them): unless the step
/// [`finish`](StepConnection::finish)es, it is closed instead of going back to the pool,
/// and the server rolls the transaction back.
#[cfg(any(feature = "postgres", feature = "mysql"))]
struct StepConnection<DB: sqlx::Database>(Option<sqlx::pool::PoolConnection<DB>>);

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl<DB: sqlx::Database> StepConnection<DB> {
    fn new(conn: sqlx::pool::PoolConnection<DB>) -> Self {
        StepConnection(Some(conn))
    }

    fn get(&mut self) -> &mut DB::Connection {
        self.0.as_mut().expect("the step's connection")
    }

    fn finish(mut self) {
        drop(self.0.take());
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl<DB: sqlx::Database> Drop for StepConnection<DB> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.0.take() {
            conn.close_on_drop();
        }
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl<DB: sqlx::Database> RunRows<DB> {
    /// Maps a driver error to the store's, naming `what` failed.
    fn map(&self, what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
        let context = self.context(what);
        move |e| StoreError::sql(context.clone(), e)
    }

    /// A pooled connection for a compact step.
    async fn step_connection(&self) -> Result<StepConnection<DB>> {
        let conn = self
            .pool
            .acquire()
            .await
            .map_err(self.map("begin a run step"))?;
        Ok(StepConnection::new(conn))
    }
}

/// What a compact step loaded: the store's time (microseconds), the fences, which jobs
/// exist and which the caller holds, the runs.
#[cfg(any(feature = "postgres", feature = "mysql"))]
struct Loaded {
    now: i64,
    fences: Vec<(Arc<str>, u64, bool)>,
    existing: HashSet<Arc<str>>,
    held: HashSet<Arc<str>>,
    runs: Vec<Run>,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl Loaded {
    fn new(jobs: usize) -> Loaded {
        Loaded {
            now: 0,
            fences: Vec::with_capacity(jobs),
            existing: HashSet::new(),
            held: HashSet::new(),
            runs: Vec::new(),
        }
    }

    /// [`decided`] on what was loaded.
    fn decide(self, decide: &mut Decide<'_, EncodedJob>) -> (JobWrites<EncodedJob>, Changes) {
        decided(
            decide,
            self.runs,
            self.fences,
            self.now,
            self.existing,
            self.held,
        )
    }
}

/// The run rows' operations, the same for every dialect.
#[async_trait]
pub(crate) trait RunOps: Send + Sync + std::fmt::Debug {
    /// One atomic step (see the module documentation).
    async fn step(&self, step: &Step<'_>, decide: &mut Decide<'_, EncodedJob>) -> Result<()>;

    /// Two steps on the same jobs and runs, one after the other (see
    /// [`RunSteps::run_steps_chained`](apscheduler_core::RunSteps::run_steps_chained)):
    /// the outer error is the first's, the inner the second's.
    async fn steps(
        &self,
        step: &Step<'_>,
        first: &mut Decide<'_, EncodedJob>,
        second: &mut Decide<'_, EncodedJob>,
    ) -> Result<Result<()>>;

    /// Up to `limit` jobs with a live run whose lease expired, earliest expiry first.
    async fn expired_jobs(&self, limit: usize) -> Result<Vec<Arc<str>>>;

    /// A job's runs, by key.
    async fn of_job(&self, job_id: &str) -> Result<Vec<Run>>;

    /// Deletes the runs that ended before `before`; answers how many.
    async fn prune(&self, before: DateTime<Utc>) -> Result<usize>;
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
                let stored: Vec<&EncodedJob> = writes.store.iter().map(|(_, job)| job).collect();
                self.write_changes(
                    &mut tx,
                    &rows,
                    &job_fences,
                    &stored,
                    &writes.pause,
                    writes.remove.iter().chain(&removable),
                )
                .await?;
                tx.commit().await.map_err(map("commit a run step"))
            }

            /// Writes a step's changes with bound statements, a statement per kind.
            async fn write_changes(
                &self,
                tx: &mut <$db as sqlx::Database>::Connection,
                rows: &[RunColumns],
                job_fences: &[(Arc<str>, u64, bool)],
                stored: &[&EncodedJob],
                pause: &[Arc<str>],
                remove: impl Iterator<Item = &Arc<str>> + Send,
            ) -> Result<()> {
                let map = |what: &'static str| {
                    let context = self.context(what);
                    move |e| StoreError::sql(context.clone(), e)
                };
                let (d, n) = (self.dialect, &self.names);
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
                for part in stored.chunks(CHUNK) {
                    let sql = Statements::update_jobs(d, n, part.len());
                    let mut q = sqlx::query(&sql);
                    for job in part {
                        q = bind_job!(q, job);
                    }
                    q.execute(&mut *tx).await.map_err(map("release the jobs"))?;
                }
                self.finish_jobs(tx, pause, remove).await
            }

            /// Two locked steps, one after the other.
            #[allow(dead_code)]
            pub(super) async fn locked_steps(
                &self,
                step: &Step<'_>,
                first: &mut Decide<'_, EncodedJob>,
                second: &mut Decide<'_, EncodedJob>,
            ) -> Result<Result<()>> {
                self.locked_step(step, first).await?;
                Ok(self.locked_step(step, second).await)
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

/// Implements [`RunOps`] for one database type, with its step method and its method
/// for two steps in a row.
macro_rules! run_ops {
    ($db:ty, $step:ident, $steps:ident) => {
        #[async_trait]
        impl RunOps for RunRows<$db> {
            async fn step(
                &self,
                step: &Step<'_>,
                decide: &mut Decide<'_, EncodedJob>,
            ) -> Result<()> {
                self.$step(step, decide).await
            }

            async fn steps(
                &self,
                step: &Step<'_>,
                first: &mut Decide<'_, EncodedJob>,
                second: &mut Decide<'_, EncodedJob>,
            ) -> Result<Result<()>> {
                self.$steps(step, first, second).await
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
run_ops!(sqlx::Sqlite, locked_step, locked_steps);
#[cfg(feature = "postgres")]
locked_step!(sqlx::Postgres);
#[cfg(feature = "postgres")]
run_ops!(sqlx::Postgres, compact_step, compact_steps);
#[cfg(feature = "mysql")]
locked_step!(sqlx::MySql);
#[cfg(feature = "mysql")]
run_ops!(sqlx::MySql, compact_step, compact_steps);

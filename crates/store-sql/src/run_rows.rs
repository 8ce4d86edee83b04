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

use apscheduler_core::{Changes, Decide, Run, RunKey, RunTable, StepView};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Pool;

use crate::codec::{from_micros, micros_floor, EncodedJob};
use crate::driver::Result;
use crate::error::StoreError;
use crate::schema::{Dialect, Names};

/// The states of a live run, as the `state` column holds them.
const LIVE: &str = "('claimed', 'waiting', 'started')";

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
    ensure_fence: String,
    lock_fence: String,
    lock_job: String,
    live_runs: String,
    run_by_key: String,
    upsert_run: String,
    write_fence: String,
    update_job: String,
    pause_job: String,
    delete_job: String,
    expired: String,
    of_job: String,
    prune: String,
}

impl Statements {
    fn new(d: Dialect, n: &Names) -> Statements {
        let p = |i| d.param(i);
        let (runs, fences, jobs) = (&n.run_leases, &n.run_fences, &n.jobs);
        let lock = match d {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
        };
        let now = match d {
            Dialect::Postgres => {
                "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT".to_owned()
            }
            Dialect::MySql => {
                "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))".to_owned()
            }
            Dialect::Sqlite => p(1),
        };
        let row = d.text("row_json");
        let key = format!(
            "job_id = {} AND fire_time = {} AND attempt = {} AND rerun = {}",
            p(1),
            p(2),
            p(3),
            p(4)
        );
        let columns = "job_id, fire_time, attempt, rerun, state, lease_until, holder, fence, \
                       ended_at, row_json";
        let values: Vec<String> = (1..=10).map(p).collect();
        let upsert_run = match d {
            Dialect::MySql => format!(
                "INSERT INTO {runs} ({columns}) VALUES ({}) ON DUPLICATE KEY UPDATE \
                 state = VALUES(state), lease_until = VALUES(lease_until), \
                 holder = VALUES(holder), fence = VALUES(fence), ended_at = VALUES(ended_at), \
                 row_json = VALUES(row_json)",
                values.join(", ")
            ),
            Dialect::Sqlite | Dialect::Postgres => format!(
                "INSERT INTO {runs} ({columns}) VALUES ({}) \
                 ON CONFLICT (job_id, fire_time, attempt, rerun) DO UPDATE SET \
                 state = excluded.state, lease_until = excluded.lease_until, \
                 holder = excluded.holder, fence = excluded.fence, \
                 ended_at = excluded.ended_at, row_json = excluded.row_json",
                values.join(", ")
            ),
        };
        let ensure_fence = match d {
            Dialect::Sqlite => format!(
                "INSERT OR IGNORE INTO {fences} (job_id, fence, finishing) VALUES ({}, 0, 0)",
                p(1)
            ),
            Dialect::Postgres => format!(
                "INSERT INTO {fences} (job_id, fence, finishing) VALUES ({}, 0, 0) \
                 ON CONFLICT (job_id) DO NOTHING",
                p(1)
            ),
            Dialect::MySql => format!(
                "INSERT IGNORE INTO {fences} (job_id, fence, finishing) VALUES ({}, 0, 0)",
                p(1)
            ),
        };
        Statements {
            now: format!("SELECT {now}"),
            ensure_fence,
            lock_fence: format!(
                "SELECT fence, finishing FROM {fences} WHERE job_id = {}{lock}",
                p(1)
            ),
            lock_job: format!(
                "SELECT {} FROM {jobs} WHERE id = {}{lock}",
                d.text("lease_holder"),
                p(1)
            ),
            live_runs: format!(
                "SELECT {row} FROM {runs} WHERE job_id = {} AND state IN {LIVE}",
                p(1)
            ),
            run_by_key: format!("SELECT {row} FROM {runs} WHERE {key}"),
            upsert_run,
            write_fence: format!(
                "UPDATE {fences} SET fence = {}, finishing = {} WHERE job_id = {}",
                p(1),
                p(2),
                p(3)
            ),
            update_job: format!(
                "UPDATE {jobs} SET next_run_time = {}, paused = {}, state = {}, state_bin = {}, \
                 format_version = {}, corrupt = NULL, lease_holder = NULL, lease_expires = NULL \
                 WHERE id = {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6)
            ),
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

/// The run rows of one job table, on its pool.
#[derive(Debug)]
pub(crate) struct RunRows<DB: sqlx::Database> {
    pool: Pool<DB>,
    dialect: Dialect,
    table: String,
    sql: Statements,
}

impl<DB: sqlx::Database> RunRows<DB> {
    pub(crate) fn new(pool: Pool<DB>, dialect: Dialect, names: &Names) -> Self {
        RunRows {
            pool,
            dialect,
            table: names.run_leases_table.clone(),
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

/// Implements [`RunOps`] for one database type (the statements differ by dialect only
/// in their text, which [`Statements`] holds).
macro_rules! run_ops {
    ($db:ty) => {
        #[async_trait]
        impl RunOps for RunRows<$db> {
            async fn step(
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
                let mut fences = Vec::with_capacity(jobs.len());
                let (mut existing, mut held) = (HashSet::new(), HashSet::new());
                let mut runs = Vec::new();
                for job in &jobs {
                    sqlx::query(&self.sql.ensure_fence)
                        .bind(&**job)
                        .execute(&mut *tx)
                        .await
                        .map_err(map("a run fence"))?;
                    let (fence, finishing): (i64, i64) = sqlx::query_as(&self.sql.lock_fence)
                        .bind(&**job)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map("lock a run fence"))?;
                    fences.push((
                        job.clone(),
                        u64::try_from(fence).unwrap_or(0),
                        finishing != 0,
                    ));
                    let holder: Option<Option<String>> = sqlx::query_scalar(&self.sql.lock_job)
                        .bind(&**job)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map("lock a job"))?;
                    if let Some(holder) = holder {
                        existing.insert(job.clone());
                        if holder.as_deref() == Some(step.holder) {
                            held.insert(job.clone());
                        }
                    }
                    let live: Vec<String> = sqlx::query_scalar(&self.sql.live_runs)
                        .bind(&**job)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map("load live runs"))?;
                    for json in live {
                        runs.push(self.decode(&json)?);
                    }
                }
                for key in &step.keys {
                    if runs.iter().any(|r| r.key == *key) {
                        continue;
                    }
                    let row: Option<String> = sqlx::query_scalar(&self.sql.run_by_key)
                        .bind(&*key.job_id)
                        .bind(micros_floor(&key.fire_time))
                        .bind(i64::from(key.attempt))
                        .bind(i64::from(key.rerun))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map("load a run"))?;
                    if let Some(json) = row {
                        runs.push(self.decode(&json)?);
                    }
                }
                let mut table = RunTable::load(runs, fences);
                let view = StepView {
                    now: from_micros(now),
                    existing,
                    held,
                };
                let writes = decide(&mut table, &view);
                let Changes {
                    runs,
                    jobs: job_fences,
                    removable,
                } = table.take_changes();
                for run in &runs {
                    let c = columns(run);
                    sqlx::query(&self.sql.upsert_run)
                        .bind(c.job_id)
                        .bind(c.fire_time)
                        .bind(c.attempt)
                        .bind(c.rerun)
                        .bind(c.state)
                        .bind(c.lease_until)
                        .bind(c.holder)
                        .bind(c.fence)
                        .bind(c.ended_at)
                        .bind(c.json)
                        .execute(&mut *tx)
                        .await
                        .map_err(map("write a run"))?;
                }
                for (job, fence, finishing) in job_fences {
                    sqlx::query(&self.sql.write_fence)
                        .bind(i64::try_from(fence).unwrap_or(i64::MAX))
                        .bind(i64::from(finishing))
                        .bind(&*job)
                        .execute(&mut *tx)
                        .await
                        .map_err(map("write a run fence"))?;
                }
                for (_, job) in &writes.store {
                    sqlx::query(&self.sql.update_job)
                        .bind(job.next_run_time)
                        .bind(job.paused)
                        .bind(job.state.as_str())
                        .bind(job.state_bin.as_deref())
                        .bind(job.format_version)
                        .bind(job.id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(map("release a job"))?;
                }
                for id in &writes.pause {
                    sqlx::query(&self.sql.pause_job)
                        .bind(&**id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map("keep a finished job"))?;
                }
                for id in writes.remove.iter().chain(&removable) {
                    sqlx::query(&self.sql.delete_job)
                        .bind(&**id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map("remove a finished job"))?;
                }
                tx.commit().await.map_err(map("commit a run step"))
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
run_ops!(sqlx::Sqlite);
#[cfg(feature = "postgres")]
run_ops!(sqlx::Postgres);
#[cfg(feature = "mysql")]
run_ops!(sqlx::MySql);

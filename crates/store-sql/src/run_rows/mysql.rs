//! MySQL/MariaDB's run step in two round trips: one script (several statements sent
//! as one text query, [`Script`]) that begins the transaction, reads the server's time,
//! creates the missing fence rows, locks the fences and the job rows and reads the
//! live runs and the runs named; a second with the writes and `COMMIT`. Two steps in a
//! row take three: the second's reads go with the first's commit. The statement-per-
//! kind step takes a round trip per statement, about eleven a step.
//!
//! The values are written into the scripts as hexadecimal literals (see
//! [`mysql_script`](crate::mysql_script)). A step whose writes carry more than
//! [`SCRIPT_BYTES`] writes them with bound statements instead, in the same transaction.
//! A script stops at its first failing statement, leaving its transaction open: the
//! step's connection is then closed ([`StepConnection`]), which rolls it back.
//!
//! The sessions run READ COMMITTED, so each statement sees what was committed when it
//! began: the runs are read after the fences' lock, and so include what the step that
//! held them before wrote.

use std::sync::Arc;

use apscheduler_core::{Changes, Decide};
use sqlx::mysql::MySqlRow;
use sqlx::{Executor as _, MySql, Row as _};

use super::{columns, Loaded, RunColumns, RunRows, Step, LIVE};
use crate::codec::{micros_floor, EncodedJob};
use crate::driver::Result;
use crate::mysql_script::{jobs_update, opt_int, text, Script, SCRIPT_BYTES};

/// Where a load's answers are in its script.
struct LoadAt {
    now: usize,
    fences: usize,
    jobs: usize,
    runs: Vec<usize>,
}

/// A decision's writes: statements with literal values, or (too large for a script)
/// the values to bind.
enum Writes {
    Script(Vec<String>),
    Bound {
        rows: Vec<RunColumns>,
        fences: Vec<(Arc<str>, u64, bool)>,
        stored: Vec<EncodedJob>,
        pause: Vec<Arc<str>>,
        remove: Vec<Arc<str>>,
    },
}

impl RunRows<MySql> {
    /// One atomic step (see the module documentation) in two round trips; a step
    /// naming more jobs or runs than one statement should takes the locked step.
    pub(super) async fn compact_step(
        &self,
        step: &Step<'_>,
        decide: &mut Decide<'_, EncodedJob>,
    ) -> Result<()> {
        if step.too_large() {
            return self.locked_step(step, decide).await;
        }
        let mut conn = self.step_connection().await?;
        let loaded = self.begin(conn.get(), step).await?;
        self.commit(conn.get(), self.decided(decide, loaded))
            .await?;
        conn.finish();
        Ok(())
    }

    /// Two steps on the same jobs, one after the other, in three round trips: the
    /// second's `BEGIN` and reads go with the first's writes and `COMMIT`. The outer
    /// error is the first's (written or not), the inner the second's (the first was
    /// written).
    pub(super) async fn compact_steps(
        &self,
        step: &Step<'_>,
        first: &mut Decide<'_, EncodedJob>,
        second: &mut Decide<'_, EncodedJob>,
    ) -> Result<Result<()>> {
        if step.too_large() {
            self.locked_step(step, first).await?;
            return Ok(self.locked_step(step, second).await);
        }
        let mut conn = self.step_connection().await?;
        let loaded = self.begin(conn.get(), step).await?;
        let next = match self.decided(first, loaded) {
            Writes::Script(statements) => {
                let mut script = script_of(statements);
                let commit = script.push("COMMIT");
                script.push("BEGIN");
                let at = self.load(step, &mut script);
                let mut ran = script.run(conn.get()).await;
                if let Some(e) = ran.take_error() {
                    let e = self.map("write a step, begin the next")(e);
                    return if ran.completed(commit) {
                        Ok(Err(e))
                    } else {
                        Err(e)
                    };
                }
                self.loaded(step, &at, |i| ran.rows(i))
            }
            bound => {
                self.commit(conn.get(), bound).await?;
                self.begin(conn.get(), step).await
            }
        };
        let second_step = match next {
            Ok(loaded) => self.commit(conn.get(), self.decided(second, loaded)).await,
            Err(e) => Err(e),
        };
        if second_step.is_ok() {
            conn.finish();
        }
        Ok(second_step)
    }

    /// Begins a step's transaction and loads what it locks, in one script.
    async fn begin(&self, conn: &mut sqlx::MySqlConnection, step: &Step<'_>) -> Result<Loaded> {
        let mut script = Script::default();
        script.push("BEGIN");
        let at = self.load(step, &mut script);
        let mut ran = script.run(conn).await;
        if let Some(e) = ran.take_error() {
            return Err(self.map("lock the fences and the jobs, load the runs")(e));
        }
        self.loaded(step, &at, |i| ran.rows(i))
    }

    /// Writes a decision's changes and commits.
    async fn commit(&self, conn: &mut sqlx::MySqlConnection, writes: Writes) -> Result<()> {
        match writes {
            Writes::Script(statements) => {
                let mut script = script_of(statements);
                script.push("COMMIT");
                match script.run(conn).await.take_error() {
                    Some(e) => Err(self.map("write runs, fences and jobs, commit")(e)),
                    None => Ok(()),
                }
            }
            bound => self.write_bound(conn, bound).await,
        }
    }

    /// Appends the statements that read the server's time, create the missing fence
    /// rows, lock the fences and the jobs (in one order everywhere, so two steps never
    /// wait on each other) and read the live runs and the runs named.
    fn load(&self, step: &Step<'_>, script: &mut Script) -> LoadAt {
        let mut jobs = step.jobs.clone();
        jobs.sort();
        jobs.dedup();
        let n = &self.names;
        let ids = list(&jobs);
        let now = script
            .push("SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))");
        let values = jobs
            .iter()
            .map(|job| format!("({}, 0, 0)", text(job)))
            .collect::<Vec<_>>()
            .join(", ");
        script.push(format!(
            "INSERT IGNORE INTO {} (job_id, fence, finishing) VALUES {values}",
            n.run_fences
        ));
        let fences = script.push(format!(
            "SELECT CONVERT(job_id USING utf8mb4), fence, finishing FROM {} \
             WHERE job_id IN ({ids}) ORDER BY job_id FOR UPDATE",
            n.run_fences
        ));
        let jobs = script.push(format!(
            "SELECT CONVERT(id USING utf8mb4), CONVERT(lease_holder USING utf8mb4) FROM {} \
             WHERE id IN ({ids}) ORDER BY id FOR UPDATE",
            n.jobs
        ));
        let mut runs = vec![script.push(format!(
            "SELECT CONVERT(row_json USING utf8mb4) FROM {} \
             WHERE job_id IN ({ids}) AND state IN {LIVE}",
            n.run_leases
        ))];
        if !step.keys.is_empty() {
            let keys = step
                .keys
                .iter()
                .map(|key| {
                    format!(
                        "({}, {}, {}, {})",
                        text(&key.job_id),
                        micros_floor(&key.fire_time),
                        key.attempt,
                        key.rerun
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            runs.push(script.push(format!(
                "SELECT CONVERT(row_json USING utf8mb4) FROM {} \
                 WHERE (job_id, fire_time, attempt, rerun) IN ({keys}) \
                 AND state NOT IN {LIVE}",
                n.run_leases
            )));
        }
        LoadAt {
            now,
            fences,
            jobs,
            runs,
        }
    }

    /// What [`load`](Self::load)'s statements answered (`rows`: statement `i`'s rows).
    fn loaded<'r>(
        &self,
        step: &Step<'_>,
        at: &LoadAt,
        rows: impl Fn(usize) -> &'r [MySqlRow],
    ) -> Result<Loaded> {
        let get = self.map("read a run step's rows");
        let mut loaded = Loaded::new(step.jobs.len());
        for row in rows(at.now) {
            loaded.now = row.try_get::<i64, _>(0).map_err(&get)?;
        }
        for row in rows(at.fences) {
            let (job, fence, finishing): (String, i64, i64) = (
                row.try_get(0).map_err(&get)?,
                row.try_get(1).map_err(&get)?,
                row.try_get(2).map_err(&get)?,
            );
            loaded.fences.push((
                Arc::<str>::from(job),
                u64::try_from(fence).unwrap_or(0),
                finishing != 0,
            ));
        }
        for row in rows(at.jobs) {
            let id: Arc<str> = row.try_get::<String, _>(0).map_err(&get)?.into();
            if row
                .try_get::<Option<String>, _>(1)
                .map_err(&get)?
                .as_deref()
                == Some(step.holder)
            {
                loaded.held.insert(id.clone());
            }
            loaded.existing.insert(id);
        }
        for &i in &at.runs {
            for row in rows(i) {
                let json = row.try_get::<String, _>(0).map_err(&get)?;
                loaded.runs.push(self.decode(&json)?);
            }
        }
        Ok(loaded)
    }

    /// Lets `decide` decide on what was loaded; answers the writes of what it changed.
    fn decided(&self, decide: &mut Decide<'_, EncodedJob>, loaded: Loaded) -> Writes {
        let (
            writes,
            Changes {
                runs,
                jobs: fences,
                removable,
            },
        ) = loaded.decide(decide);
        let rows: Vec<RunColumns> = runs.iter().map(columns).collect();
        let stored: Vec<EncodedJob> = writes.store.into_iter().map(|(_, job)| job).collect();
        let remove: Vec<Arc<str>> = writes.remove.into_iter().chain(removable).collect();
        let size: usize = rows
            .iter()
            .map(|c| c.json.len() + c.job_id.len() + c.holder.len())
            .chain(
                stored
                    .iter()
                    .map(|j| j.id.len() + j.state.len() + j.state_bin.as_ref().map_or(0, Vec::len)),
            )
            .sum();
        if size > SCRIPT_BYTES {
            return Writes::Bound {
                rows,
                fences,
                stored,
                pause: writes.pause,
                remove,
            };
        }
        let n = &self.names;
        let mut sql = Vec::new();
        if !rows.is_empty() {
            let values = rows
                .iter()
                .map(|c| {
                    format!(
                        "({}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                        text(&c.job_id),
                        c.fire_time,
                        c.attempt,
                        c.rerun,
                        text(c.state),
                        c.lease_until,
                        text(&c.holder),
                        c.fence,
                        opt_int(c.ended_at),
                        text(&c.json)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            sql.push(format!(
                "INSERT INTO {} (job_id, fire_time, attempt, rerun, state, lease_until, \
                 holder, fence, ended_at, row_json) VALUES {values} ON DUPLICATE KEY UPDATE \
                 state = VALUES(state), lease_until = VALUES(lease_until), \
                 holder = VALUES(holder), fence = VALUES(fence), ended_at = VALUES(ended_at), \
                 row_json = VALUES(row_json)",
                n.run_leases
            ));
        }
        if !fences.is_empty() {
            let values = fences
                .iter()
                .map(|(job, fence, finishing)| {
                    format!(
                        "({}, {}, {})",
                        text(job),
                        i64::try_from(*fence).unwrap_or(i64::MAX),
                        i64::from(*finishing)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            sql.push(format!(
                "INSERT INTO {} (job_id, fence, finishing) VALUES {values} \
                 ON DUPLICATE KEY UPDATE fence = VALUES(fence), finishing = VALUES(finishing)",
                n.run_fences
            ));
        }
        if !stored.is_empty() {
            // The step holds the rows locked: no condition beyond the join.
            sql.push(jobs_update(&n.jobs, &stored, "TRUE"));
        }
        if !writes.pause.is_empty() {
            sql.push(format!(
                "UPDATE {} SET next_run_time = NULL, paused = TRUE, lease_holder = NULL, \
                 lease_expires = NULL WHERE id IN ({})",
                n.jobs,
                list(&writes.pause)
            ));
        }
        if !remove.is_empty() {
            sql.push(format!(
                "DELETE FROM {} WHERE id IN ({})",
                n.jobs,
                list(&remove)
            ));
        }
        Writes::Script(sql)
    }

    /// Writes [`Writes::Bound`] with bound statements, then commits.
    async fn write_bound(&self, conn: &mut sqlx::MySqlConnection, writes: Writes) -> Result<()> {
        let Writes::Bound {
            rows,
            fences,
            stored,
            pause,
            remove,
        } = writes
        else {
            return Ok(());
        };
        let stored: Vec<&EncodedJob> = stored.iter().collect();
        self.write_changes(conn, &rows, &fences, &stored, &pause, remove.iter())
            .await?;
        conn.execute(sqlx::raw_sql("COMMIT"))
            .await
            .map_err(self.map("commit a run step"))?;
        Ok(())
    }
}

/// A script of `statements`.
fn script_of(statements: Vec<String>) -> Script {
    let mut script = Script::default();
    for statement in statements {
        script.push(statement);
    }
    script
}

/// `ids` as a list of text literals.
fn list(ids: &[Arc<str>]) -> String {
    ids.iter().map(|id| text(id)).collect::<Vec<_>>().join(", ")
}

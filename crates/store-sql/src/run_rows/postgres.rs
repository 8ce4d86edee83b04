//! PostgreSQL's run step in two round trips whatever it touches. The first sends, as
//! one simple query, `BEGIN`, a statement that locks (creating where missing) the jobs'
//! fence rows and reads the server's time, and one that locks the job rows and reads
//! the live runs and the runs named; the second sends one statement that writes the
//! runs, the fences and the jobs' new states together (data-modifying `WITH` queries),
//! the finished jobs' pauses and removals, and `COMMIT`. The step the other dialects
//! take needs a statement per kind and a round trip per statement, about five times as
//! many.
//!
//! The simple query protocol takes no parameters, so the values are written into the
//! statements as literals ([`Literal`]): text dollar-quoted with a tag it does not
//! contain, bytes hex-decoded on the server, numbers as digits. A step that fails or is
//! dropped mid-way closes its connection ([`StepConnection`]): the server
//! rolls its transaction back, and no connection goes back to the pool inside one.
//!
//! The runs are read in a statement after the one that locks the fences: under READ
//! COMMITTED each statement sees what was committed when it began, so the runs a step
//! that held the fences wrote before this one got them are seen. (Read in the locking
//! statement itself, they would be read as of before its wait.)

use std::fmt::Write as _;
use std::sync::Arc;

use apscheduler_core::{Changes, Decide};
use sqlx::postgres::PgRow;
use sqlx::{Executor as _, Postgres, Row as _};

use super::{columns, Loaded, RunColumns, RunRows, Step, LIVE};
use crate::codec::{micros_floor, EncodedJob};
use crate::driver::Result;

/// Values written as SQL literals.
struct Literal;

impl Literal {
    /// `s` dollar-quoted with a tag that neither occurs in it nor forms where it ends.
    fn text(s: &str) -> String {
        let mut tag = "$a$".to_owned();
        let mut n = 0u32;
        while format!("{s}{tag}").find(&tag) != Some(s.len()) {
            n += 1;
            tag = format!("$a{n}$");
        }
        format!("{tag}{s}{tag}")
    }

    fn int(i: i64) -> String {
        i.to_string()
    }

    fn opt_int(i: Option<i64>) -> String {
        i.map_or_else(|| "NULL".to_owned(), Literal::int)
    }

    /// Bytes as `decode('<hex>', 'hex')` (no escapes, whatever the server's settings).
    fn bytes(b: Option<&[u8]>) -> String {
        b.map_or_else(
            || "NULL".to_owned(),
            |b| format!("decode('{}', 'hex')", hex::encode(b)),
        )
    }

    /// Each item's literals, comma-separated and parenthesized: `(a, b), (c, d)`.
    fn rows<T>(items: &[T], row: impl Fn(&T) -> Vec<String>) -> String {
        items
            .iter()
            .map(|item| format!("({})", row(item).join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn texts(items: &[Arc<str>]) -> String {
        items
            .iter()
            .map(|s| Literal::text(s))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl RunRows<Postgres> {
    /// One atomic step (see the module documentation) in two round trips; a step
    /// naming more jobs or runs than [`CHUNK`] takes the locked step.
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
        use futures_util::TryStreamExt as _;
        if step.too_large() {
            self.locked_step(step, first).await?;
            return Ok(self.locked_step(step, second).await);
        }
        let mut conn = self.step_connection().await?;
        let loaded = self.begin(conn.get(), step).await?;
        let mut statements = self.decided(first, loaded);
        // Statements end in order: the first step is written once its `COMMIT`
        // (statement `commit`) has ended; the rows after it are the second's.
        let commit = statements.len();
        statements.push("COMMIT".to_owned());
        statements.push(format!("BEGIN; {}", self.load(step)));
        let sql = statements.join("; ");
        let (mut ended, mut rows) = (0, Vec::new());
        let mut results = conn.get().fetch_many(sqlx::raw_sql(&sql));
        loop {
            match results.try_next().await {
                Ok(Some(sqlx::Either::Left(_))) => ended += 1,
                Ok(Some(sqlx::Either::Right(row))) if ended > commit => rows.push(row),
                Ok(Some(sqlx::Either::Right(_))) => {}
                Ok(None) => break,
                Err(e) => {
                    let e = self.map("write a step, begin the next")(e);
                    return if ended > commit { Ok(Err(e)) } else { Err(e) };
                }
            }
        }
        drop(results);
        let second_step = match self.loaded(step, &rows) {
            Ok(loaded) => self.commit(conn.get(), self.decided(second, loaded)).await,
            Err(e) => Err(e),
        };
        if second_step.is_ok() {
            conn.finish();
        }
        Ok(second_step)
    }

    /// Begins a step's transaction and loads what it locks, in one query.
    async fn begin(&self, conn: &mut sqlx::PgConnection, step: &Step<'_>) -> Result<Loaded> {
        let rows = conn
            .fetch_all(sqlx::raw_sql(&format!("BEGIN; {}", self.load(step))))
            .await
            .map_err(self.map("lock the fences and the jobs, load the runs"))?;
        self.loaded(step, &rows)
    }

    /// Writes a decision's changes (`statements`) and commits, in one query.
    async fn commit(
        &self,
        conn: &mut sqlx::PgConnection,
        mut statements: Vec<String>,
    ) -> Result<()> {
        statements.push("COMMIT".to_owned());
        conn.execute(sqlx::raw_sql(&statements.join("; ")))
            .await
            .map_err(self.map("write runs, fences and jobs, commit"))?;
        Ok(())
    }

    /// The statements that lock the step's fences (creating the missing ones; a no-op
    /// update locks an existing row as an insert does a new one) and read the store's
    /// time, then lock its jobs and read the live runs and the runs named. Locked in
    /// one order everywhere, so two steps never wait on each other.
    fn load(&self, step: &Step<'_>) -> String {
        let mut jobs = step.jobs.clone();
        jobs.sort();
        jobs.dedup();
        let n = &self.names;
        let ids = Literal::texts(&jobs);
        let mut sql = format!(
            "INSERT INTO {f} (job_id, fence, finishing) VALUES {values} \
             ON CONFLICT (job_id) DO UPDATE SET fence = {f}.fence \
             RETURNING job_id::TEXT, fence, finishing, \
             (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT; \
             WITH j AS (SELECT id, lease_holder FROM {jobs} WHERE id IN ({ids}) \
             ORDER BY id FOR UPDATE) \
             SELECT 0, id::TEXT, lease_holder::TEXT FROM j \
             UNION ALL SELECT 1, NULL, row_json::TEXT FROM {runs} \
             WHERE job_id IN ({ids}) AND state IN {LIVE}",
            f = n.run_fences,
            values = Literal::rows(&jobs, |job| vec![
                Literal::text(job),
                "0".into(),
                "0".into()
            ]),
            jobs = n.jobs,
            runs = n.run_leases,
        );
        if !step.keys.is_empty() {
            let keys = Literal::rows(&step.keys, |key| {
                vec![
                    Literal::text(&key.job_id),
                    Literal::int(micros_floor(&key.fire_time)),
                    Literal::int(i64::from(key.attempt)),
                    Literal::int(i64::from(key.rerun)),
                ]
            });
            let _ = write!(
                sql,
                " UNION ALL SELECT 1, NULL, row_json::TEXT FROM {} \
                 WHERE (job_id, fire_time, attempt, rerun) IN ({keys}) AND state NOT IN {LIVE}",
                n.run_leases,
            );
        }
        sql
    }

    /// What [`load`](Self::load)'s statements answered: the fences' rows have four
    /// columns, the jobs' and the runs' three.
    fn loaded(&self, step: &Step<'_>, rows: &[PgRow]) -> Result<Loaded> {
        let get = self.map("read a run step's rows");
        let mut loaded = Loaded::new(step.jobs.len());
        for row in rows {
            if row.len() == 4 {
                let (job, fence, finishing, at): (String, i64, i64, i64) = (
                    row.try_get(0).map_err(&get)?,
                    row.try_get(1).map_err(&get)?,
                    row.try_get(2).map_err(&get)?,
                    row.try_get(3).map_err(&get)?,
                );
                loaded.now = loaded.now.max(at);
                loaded.fences.push((
                    Arc::<str>::from(job),
                    u64::try_from(fence).unwrap_or(0),
                    finishing != 0,
                ));
            } else if row.try_get::<i32, _>(0).map_err(&get)? == 0 {
                let id: Arc<str> = row.try_get::<String, _>(1).map_err(&get)?.into();
                if row
                    .try_get::<Option<String>, _>(2)
                    .map_err(&get)?
                    .as_deref()
                    == Some(step.holder)
                {
                    loaded.held.insert(id.clone());
                }
                loaded.existing.insert(id);
            } else {
                let json = row.try_get::<String, _>(2).map_err(&get)?;
                loaded.runs.push(self.decode(&json)?);
            }
        }
        Ok(loaded)
    }

    /// Lets `decide` decide on what was loaded; answers the statements that write what
    /// it changed (none when nothing changed).
    fn decided(&self, decide: &mut Decide<'_, EncodedJob>, loaded: Loaded) -> Vec<String> {
        let (
            writes,
            Changes {
                runs,
                jobs: job_fences,
                removable,
            },
        ) = loaded.decide(decide);
        let rows: Vec<RunColumns> = runs.iter().map(columns).collect();
        let stored: Vec<&EncodedJob> = writes.store.iter().map(|(_, job)| job).collect();
        let n = &self.names;
        let mut sql = Vec::new();
        sql.extend(self.writes(&rows, &job_fences, &stored));
        if !writes.pause.is_empty() {
            sql.push(format!(
                "UPDATE {} SET next_run_time = NULL, paused = TRUE, lease_holder = NULL, \
                 lease_expires = NULL WHERE id IN ({})",
                n.jobs,
                Literal::texts(&writes.pause)
            ));
        }
        let remove: Vec<Arc<str>> = writes.remove.iter().chain(&removable).cloned().collect();
        if !remove.is_empty() {
            sql.push(format!(
                "DELETE FROM {} WHERE id IN ({})",
                n.jobs,
                Literal::texts(&remove)
            ));
        }
        sql
    }

    /// The statement that writes runs, fences and jobs' new states, if any.
    fn writes(
        &self,
        rows: &[RunColumns],
        fences: &[(Arc<str>, u64, bool)],
        stored: &[&EncodedJob],
    ) -> Option<String> {
        let n = &self.names;
        let mut parts = Vec::new();
        if !rows.is_empty() {
            parts.push(format!(
                "r AS (INSERT INTO {runs} (job_id, fire_time, attempt, rerun, state, \
                 lease_until, holder, fence, ended_at, row_json) VALUES {} \
                 ON CONFLICT (job_id, fire_time, attempt, rerun) DO UPDATE SET \
                 state = excluded.state, lease_until = excluded.lease_until, \
                 holder = excluded.holder, fence = excluded.fence, \
                 ended_at = excluded.ended_at, row_json = excluded.row_json)",
                Literal::rows(rows, |c| vec![
                    Literal::text(&c.job_id),
                    Literal::int(c.fire_time),
                    Literal::int(c.attempt),
                    Literal::int(c.rerun),
                    Literal::text(c.state),
                    Literal::int(c.lease_until),
                    Literal::text(&c.holder),
                    Literal::int(c.fence),
                    Literal::opt_int(c.ended_at),
                    Literal::text(&c.json),
                ]),
                runs = n.run_leases,
            ));
        }
        if !fences.is_empty() {
            parts.push(format!(
                "f AS (INSERT INTO {f} (job_id, fence, finishing) VALUES {} \
                 ON CONFLICT (job_id) DO UPDATE SET fence = excluded.fence, \
                 finishing = excluded.finishing)",
                Literal::rows(fences, |(job, fence, finishing)| vec![
                    Literal::text(job),
                    Literal::int(i64::try_from(*fence).unwrap_or(i64::MAX)),
                    Literal::int(i64::from(*finishing)),
                ]),
                f = n.run_fences,
            ));
        }
        if !stored.is_empty() {
            let values = Literal::rows(stored, |job| {
                vec![
                    format!("{}::VARCHAR", Literal::text(&job.id)),
                    format!("{}::BIGINT", Literal::opt_int(job.next_run_time)),
                    format!("{}::BOOLEAN", if job.paused { "TRUE" } else { "FALSE" }),
                    format!("{}::TEXT", Literal::text(&job.state)),
                    format!("{}::BYTEA", Literal::bytes(job.state_bin.as_deref())),
                    format!("{}::INTEGER", job.format_version),
                ]
            });
            parts.push(format!(
                "u AS (UPDATE {jobs} SET next_run_time = v.next_run_time, paused = v.paused, \
                 state = v.state, state_bin = v.state_bin, format_version = v.format_version, \
                 lease_holder = NULL, lease_expires = NULL, corrupt = NULL \
                 FROM (VALUES {values}) AS v(id, next_run_time, paused, state, state_bin, \
                 format_version) WHERE {jobs}.id = v.id)",
                jobs = n.jobs,
            ));
        }
        // Every `WITH` query runs to completion whether or not the query reads it.
        (!parts.is_empty()).then(|| format!("WITH {} SELECT 1", parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::Literal;

    #[test]
    fn a_text_literal_never_ends_inside_its_text() {
        assert_eq!(Literal::text("job"), "$a$job$a$");
        assert_eq!(Literal::text("x$a$y"), "$a1$x$a$y$a1$");
        // Text ending in the tag's beginning would close early with `$a$`.
        assert_eq!(Literal::text("x$a"), "$a1$x$a$a1$");
        assert_eq!(Literal::text("$a1$$a$"), "$a2$$a1$$a$$a2$");
        assert_eq!(Literal::text(""), "$a$$a$");
    }

    #[test]
    fn bytes_are_hex_decoded_on_the_server() {
        assert_eq!(
            Literal::bytes(Some(&[0, 15, 255])),
            "decode('000fff', 'hex')"
        );
        assert_eq!(Literal::bytes(None), "NULL");
    }
}

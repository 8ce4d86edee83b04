//! PostgreSQL's run step in five round trips whatever it touches: `BEGIN`; one
//! statement that locks (creating where missing) the jobs' fence rows and reads the
//! server's time; one that locks the job rows and reads the live runs and the runs
//! named; one that writes the runs, the fences and the jobs' new states together
//! (data-modifying `WITH` queries); `COMMIT`. The step the other dialects take needs a
//! statement per kind, about twice as many round trips.
//!
//! The runs are read in a statement after the one that locks the fences: under READ
//! COMMITTED each statement sees what was committed when it began, so the runs a step
//! that held the fences wrote before this one got them are seen. (Read in the locking
//! statement itself, they would be read as of before its wait.)

use std::collections::HashSet;
use std::sync::Arc;

use apscheduler_core::{Changes, Decide};
use sqlx::Postgres;

use super::{columns, RunColumns, RunRows, Step, CHUNK, LIVE};
use crate::codec::{micros_floor, EncodedJob};
use crate::driver::Result;
use crate::error::StoreError;

/// `$from, $from+1, …` for `n` parameters.
fn params(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rows` groups of `width` parameters numbered from `from`, each wrapped by `row`.
fn groups(from: usize, rows: usize, width: usize, row: impl Fn(&[String]) -> String) -> String {
    (0..rows)
        .map(|r| {
            let p: Vec<String> = (0..width)
                .map(|i| format!("${}", from + r * width + i))
                .collect();
            row(&p)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl RunRows<Postgres> {
    /// One atomic step (see the module documentation) in five round trips; a step
    /// naming more jobs or runs than one statement binds takes the locked step.
    pub(super) async fn compact_step(
        &self,
        step: &Step<'_>,
        decide: &mut Decide<'_, EncodedJob>,
    ) -> Result<()> {
        if step.jobs.is_empty() || step.jobs.len() > CHUNK || step.keys.len() > CHUNK {
            return self.locked_step(step, decide).await;
        }
        let map = |what: &'static str| {
            let context = self.context(what);
            move |e| StoreError::sql(context.clone(), e)
        };
        // Locked in one order everywhere, so two steps never wait on each other.
        let mut jobs = step.jobs.clone();
        jobs.sort();
        jobs.dedup();
        let n = &self.names;
        let mut tx = self.pool.begin().await.map_err(map("begin a run step"))?;

        // The fences: a no-op update locks an existing row as an insert does a new one.
        let sql = format!(
            "INSERT INTO {f} (job_id, fence, finishing) VALUES {} \
             ON CONFLICT (job_id) DO UPDATE SET fence = {f}.fence \
             RETURNING job_id::TEXT, fence, finishing, \
             (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT",
            groups(1, jobs.len(), 1, |p| format!("({}, 0, 0)", p[0])),
            f = n.run_fences,
        );
        let mut q = sqlx::query_as::<_, (String, i64, i64, i64)>(&sql);
        for job in &jobs {
            q = q.bind(&**job);
        }
        let mut now = 0;
        let mut fences = Vec::with_capacity(jobs.len());
        for (job, fence, finishing, at) in q
            .fetch_all(&mut *tx)
            .await
            .map_err(map("lock the run fences"))?
        {
            now = now.max(at);
            fences.push((
                Arc::<str>::from(job),
                u64::try_from(fence).unwrap_or(0),
                finishing != 0,
            ));
        }

        // The jobs (locked) and the runs, in one statement after the fences' lock.
        let keys = step.keys.len();
        let mut sql = format!(
            "WITH j AS (SELECT id, lease_holder FROM {jobs} WHERE id IN ({ids}) \
             ORDER BY id FOR UPDATE) \
             SELECT 0, id::TEXT, lease_holder::TEXT FROM j \
             UNION ALL SELECT 1, NULL, row_json::TEXT FROM {runs} \
             WHERE job_id IN ({ids}) AND state IN {LIVE}",
            ids = params(1, jobs.len()),
            jobs = n.jobs,
            runs = n.run_leases,
        );
        if keys > 0 {
            sql.push_str(&format!(
                " UNION ALL SELECT 1, NULL, row_json::TEXT FROM {} \
                 WHERE (job_id, fire_time, attempt, rerun) IN ({}) AND state NOT IN {LIVE}",
                n.run_leases,
                groups(jobs.len() + 1, keys, 4, |p| format!("({})", p.join(", "))),
            ));
        }
        let mut q = sqlx::query_as::<_, (i32, Option<String>, Option<String>)>(&sql);
        for job in &jobs {
            q = q.bind(&**job);
        }
        for key in &step.keys {
            q = q
                .bind(&*key.job_id)
                .bind(micros_floor(&key.fire_time))
                .bind(i64::from(key.attempt))
                .bind(i64::from(key.rerun));
        }
        let (mut existing, mut held) = (HashSet::new(), HashSet::new());
        let mut runs = Vec::new();
        for (kind, id, text) in q
            .fetch_all(&mut *tx)
            .await
            .map_err(map("lock the jobs, load the runs"))?
        {
            if kind == 0 {
                let id: Arc<str> = id.unwrap_or_default().into();
                if text.as_deref() == Some(step.holder) {
                    held.insert(id.clone());
                }
                existing.insert(id);
            } else {
                runs.push(self.decode(&text.unwrap_or_default())?);
            }
        }

        let (
            writes,
            Changes {
                runs,
                jobs: job_fences,
                removable,
            },
        ) = super::decided(decide, runs, fences, now, existing, held);
        let rows: Vec<RunColumns> = runs.iter().map(columns).collect();
        let stored: Vec<&EncodedJob> = writes.store.iter().map(|(_, job)| job).collect();
        let (mut rows, mut job_fences, mut stored) = (&rows[..], &job_fences[..], &stored[..]);
        // One statement for all the writes, unless they are more than one binds.
        while !(rows.is_empty() && job_fences.is_empty() && stored.is_empty()) {
            let (r, f, s) = (
                rows.len().min(CHUNK),
                job_fences.len().min(CHUNK),
                stored.len().min(CHUNK),
            );
            self.write(&mut tx, &rows[..r], &job_fences[..f], &stored[..s])
                .await
                .map_err(map("write runs, fences and jobs"))?;
            (rows, job_fences, stored) = (&rows[r..], &job_fences[f..], &stored[s..]);
        }
        self.finish_jobs(
            &mut tx,
            &writes.pause,
            writes.remove.iter().chain(&removable),
        )
        .await?;
        tx.commit().await.map_err(map("commit a run step"))
    }

    /// Writes runs, fences and jobs' new states in one statement.
    async fn write(
        &self,
        tx: &mut sqlx::PgConnection,
        rows: &[RunColumns],
        fences: &[(Arc<str>, u64, bool)],
        stored: &[&EncodedJob],
    ) -> std::result::Result<(), sqlx::Error> {
        let n = &self.names;
        let mut parts = Vec::new();
        let mut next = 1;
        if !rows.is_empty() {
            parts.push(format!(
                "r AS (INSERT INTO {runs} (job_id, fire_time, attempt, rerun, state, \
                 lease_until, holder, fence, ended_at, row_json) VALUES {} \
                 ON CONFLICT (job_id, fire_time, attempt, rerun) DO UPDATE SET \
                 state = excluded.state, lease_until = excluded.lease_until, \
                 holder = excluded.holder, fence = excluded.fence, \
                 ended_at = excluded.ended_at, row_json = excluded.row_json)",
                groups(next, rows.len(), 10, |p| format!("({})", p.join(", "))),
                runs = n.run_leases,
            ));
            next += rows.len() * 10;
        }
        if !fences.is_empty() {
            parts.push(format!(
                "f AS (INSERT INTO {f} (job_id, fence, finishing) VALUES {} \
                 ON CONFLICT (job_id) DO UPDATE SET fence = excluded.fence, \
                 finishing = excluded.finishing)",
                groups(next, fences.len(), 3, |p| format!("({})", p.join(", "))),
                f = n.run_fences,
            ));
            next += fences.len() * 3;
        }
        if !stored.is_empty() {
            let values = groups(next, stored.len(), 6, |p| {
                format!(
                    "({}::VARCHAR, {}::BIGINT, {}::BOOLEAN, {}::TEXT, {}::BYTEA, {}::INTEGER)",
                    p[0], p[1], p[2], p[3], p[4], p[5]
                )
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
        let sql = format!("WITH {} SELECT 1", parts.join(", "));
        let mut q = sqlx::query(&sql);
        for c in rows {
            q = bind_run!(q, c);
        }
        for (job, fence, finishing) in fences {
            q = bind_fence!(q, job, fence, finishing);
        }
        for job in stored {
            q = bind_job!(q, job);
        }
        q.execute(tx).await.map(drop)
    }
}

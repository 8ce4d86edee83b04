//! PostgreSQL: claims with `FOR UPDATE SKIP LOCKED` and `UPDATE ... RETURNING` in one
//! statement; batches as arrays (`UNNEST`), so every operation is one round trip.

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgRow};

use crate::codec::{EncodedJob, FetchedRow};
use crate::driver::{ClaimRequest, Driver, Result};
use crate::error::StoreError;
use crate::schema::{self, Dialect, Names};

/// The statements of one job table, built once.
#[derive(Debug)]
struct Statements {
    insert: String,
    upsert: String,
    update: String,
    delete: String,
    delete_all: String,
    fetch: String,
    fetch_all: String,
    fetch_corrupt: String,
    next_run_time: String,
    claim: String,
    mark_corrupt: String,
    extend: String,
    release: String,
}

impl Statements {
    fn new(n: &Names) -> Self {
        let jobs = &n.jobs;
        let columns = "id, next_run_time, CASE WHEN octet_length(state) <= $1 THEN state END, \
                       octet_length(state)::BIGINT, format_version, corrupt";
        let insert = format!(
            "INSERT INTO {jobs} (id, next_run_time, paused, state, format_version) \
             SELECT * FROM UNNEST($1::VARCHAR[], $2::BIGINT[], $3::BOOLEAN[], $4::TEXT[], $5::INTEGER[])"
        );
        Statements {
            upsert: format!(
                "{insert} ON CONFLICT (id) DO UPDATE SET next_run_time = EXCLUDED.next_run_time, \
                 paused = EXCLUDED.paused, state = EXCLUDED.state, \
                 format_version = EXCLUDED.format_version, corrupt = NULL"
            ),
            insert,
            update: format!(
                "UPDATE {jobs} SET next_run_time = $2, paused = $3, state = $4, format_version = $5, \
                 corrupt = NULL WHERE id = $1"
            ),
            delete: format!("DELETE FROM {jobs} WHERE id = $1"),
            delete_all: format!("DELETE FROM {jobs}"),
            fetch: format!("SELECT {columns} FROM {jobs} WHERE id = $2"),
            fetch_all: format!(
                "SELECT {columns} FROM {jobs} ORDER BY (next_run_time IS NULL), next_run_time, id"
            ),
            fetch_corrupt: format!(
                "SELECT id, corrupt FROM {jobs} WHERE corrupt IS NOT NULL ORDER BY id"
            ),
            next_run_time: format!(
                "SELECT \
                 (SELECT next_run_time FROM {jobs} WHERE next_run_time IS NOT NULL AND corrupt IS NULL \
                  AND (lease_expires IS NULL OR lease_expires <= next_run_time) \
                  ORDER BY next_run_time LIMIT 1), \
                 (SELECT lease_expires FROM {jobs} WHERE lease_expires IS NOT NULL \
                  AND next_run_time IS NOT NULL AND corrupt IS NULL AND lease_expires > next_run_time \
                  ORDER BY lease_expires LIMIT 1)"
            ),
            claim: format!(
                "WITH due AS (\
                 SELECT id FROM {jobs} \
                 WHERE next_run_time <= $2 AND corrupt IS NULL \
                 AND (lease_expires IS NULL OR lease_expires <= $2 OR lease_holder = $4) \
                 ORDER BY next_run_time, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE {jobs} AS j SET lease_holder = $4, lease_expires = $5 FROM due \
                 WHERE j.id = due.id \
                 RETURNING j.id, j.next_run_time, \
                 CASE WHEN octet_length(j.state) <= $1 THEN j.state END, \
                 octet_length(j.state)::BIGINT, j.format_version, j.corrupt"
            ),
            mark_corrupt: format!(
                "UPDATE {jobs} AS j SET corrupt = v.reason, lease_holder = NULL, lease_expires = NULL \
                 FROM UNNEST($1::VARCHAR[], $2::TEXT[]) AS v(id, reason) WHERE j.id = v.id"
            ),
            extend: format!(
                "UPDATE {jobs} SET lease_expires = $4 \
                 WHERE id = ANY($1::VARCHAR[]) AND lease_holder = $2 AND lease_expires > $3 \
                 RETURNING id"
            ),
            release: format!(
                "WITH updated AS (\
                 UPDATE {jobs} AS j SET next_run_time = v.next_run_time, paused = v.paused, \
                 state = v.state, format_version = v.format_version, \
                 lease_holder = NULL, lease_expires = NULL, corrupt = NULL \
                 FROM UNNEST($1::VARCHAR[], $2::BIGINT[], $3::BOOLEAN[], $4::TEXT[], $5::INTEGER[]) \
                 AS v(id, next_run_time, paused, state, format_version) \
                 WHERE j.id = v.id AND j.lease_holder = $6 RETURNING 1), \
                 removed AS (\
                 DELETE FROM {jobs} WHERE id = ANY($7::VARCHAR[]) \
                 AND lease_holder = $6 RETURNING 1) \
                 SELECT (SELECT count(*) FROM updated), (SELECT count(*) FROM removed)"
            ),
        }
    }
}

/// The PostgreSQL backend.
#[derive(Debug)]
pub(crate) struct PgDriver {
    pool: PgPool,
    names: Names,
    sql: Statements,
}

impl PgDriver {
    pub(crate) fn new(pool: PgPool, names: Names) -> Self {
        let sql = Statements::new(&names);
        PgDriver { pool, names, sql }
    }
}

fn read_row(r: &PgRow) -> std::result::Result<FetchedRow, sqlx::Error> {
    crate::driver::read_row(r)
}

/// The columns of a batch, as arrays.
struct Columns {
    ids: Vec<String>,
    next_run_times: Vec<Option<i64>>,
    paused: Vec<bool>,
    states: Vec<String>,
    versions: Vec<i32>,
}

impl Columns {
    fn of(rows: &[EncodedJob]) -> Self {
        Columns {
            ids: rows.iter().map(|r| r.id.clone()).collect(),
            next_run_times: rows.iter().map(|r| r.next_run_time).collect(),
            paused: rows.iter().map(|r| r.paused).collect(),
            states: rows.iter().map(|r| r.state.clone()).collect(),
            versions: rows.iter().map(|r| r.format_version).collect(),
        }
    }
}

#[async_trait]
impl Driver for PgDriver {
    async fn migrate(&self) -> Result<()> {
        let n = &self.names;
        let ctx = |what: &str| format!("PostgreSQL: migrating table {}: {what}", n.table);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| StoreError::sql(ctx("begin"), e))?;
        // Serializes schedulers starting together; released at commit or rollback.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(n.lock_key)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::sql(ctx("lock"), e))?;
        sqlx::query(&schema::schema_table_ddl(n))
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::sql(ctx("create the schema table"), e))?;
        sqlx::query(&format!(
            "INSERT INTO {} (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
            n.schema
        ))
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::sql(ctx("initialize the schema table"), e))?;
        let current: i32 = sqlx::query_scalar(&format!(
            "SELECT version FROM {} WHERE id = 1 FOR UPDATE",
            n.schema
        ))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::sql(ctx("read the schema version"), e))?;
        crate::driver::check_not_too_new(n, i64::from(current))?;
        if current == 0 {
            let existing: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::TEXT FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(&n.table)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| StoreError::sql(ctx("inspect an existing table"), e))?;
            crate::driver::check_existing_table(n, &existing)?;
        }
        for m in schema::pending(i64::from(current)) {
            tracing::info!(target: "apscheduler", table = %n.table, "PostgreSQL: applying schema migration {}: {}", m.version, m.description);
            for stmt in (m.statements)(Dialect::Postgres, n) {
                sqlx::query(&stmt)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::sql(ctx(&format!("migration {}", m.version)), e))?;
            }
            sqlx::query(&format!(
                "UPDATE {} SET version = $1 WHERE id = 1",
                n.schema
            ))
            .bind(i32::try_from(m.version).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::sql(ctx("record the schema version"), e))?;
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::sql(ctx("commit"), e))
    }

    async fn schema_version(&self) -> Result<Option<i64>> {
        let v: Option<i32> = sqlx::query_scalar(&format!(
            "SELECT version FROM {} WHERE id = 1",
            self.names.schema
        ))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::sql("PostgreSQL: reading the schema version", e))?;
        Ok(v.map(i64::from))
    }

    async fn insert(&self, rows: &[EncodedJob], replace: bool) -> Result<()> {
        let c = Columns::of(rows);
        let sql = if replace {
            &self.sql.upsert
        } else {
            &self.sql.insert
        };
        sqlx::query(sql)
            .bind(&c.ids)
            .bind(&c.next_run_times)
            .bind(&c.paused)
            .bind(&c.states)
            .bind(&c.versions)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                StoreError::insert(
                    "PostgreSQL: add_jobs",
                    crate::driver::conflict_message(rows),
                    e,
                )
            })?;
        Ok(())
    }

    async fn update(&self, row: &EncodedJob) -> Result<bool> {
        let done = sqlx::query(&self.sql.update)
            .bind(&row.id)
            .bind(row.next_run_time)
            .bind(row.paused)
            .bind(&row.state)
            .bind(row.format_version)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: update_job", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(&self.sql.delete)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: remove_job", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_all(&self) -> Result<()> {
        sqlx::query(&self.sql.delete_all)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: remove_all_jobs", e))?;
        Ok(())
    }

    async fn fetch(&self, id: &str, max_bytes: i64) -> Result<Option<FetchedRow>> {
        let row = sqlx::query(&self.sql.fetch)
            .bind(max_bytes)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: lookup_job", e))?;
        row.as_ref()
            .map(read_row)
            .transpose()
            .map_err(|e| StoreError::sql("PostgreSQL: lookup_job", e))
    }

    async fn fetch_all(&self, max_bytes: i64) -> Result<Vec<FetchedRow>> {
        let rows = sqlx::query(&self.sql.fetch_all)
            .bind(max_bytes)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: get_all_jobs", e))?;
        rows.iter()
            .map(read_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| StoreError::sql("PostgreSQL: get_all_jobs", e))
    }

    async fn fetch_corrupt(&self) -> Result<Vec<(String, String)>> {
        sqlx::query_as(&self.sql.fetch_corrupt)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: corrupt_jobs", e))
    }

    async fn next_run_time(&self) -> Result<(Option<i64>, Option<i64>)> {
        sqlx::query_as(&self.sql.next_run_time)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: get_next_run_time", e))
    }

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<FetchedRow>> {
        let rows = sqlx::query(&self.sql.claim)
            .bind(req.max_bytes)
            .bind(req.now)
            .bind(req.limit)
            .bind(req.holder)
            .bind(req.expires)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: acquire_due_jobs", e))?;
        rows.iter()
            .map(read_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| StoreError::sql("PostgreSQL: acquire_due_jobs", e))
    }

    async fn mark_corrupt(&self, marks: &[(String, String)]) -> Result<()> {
        let ids: Vec<&str> = marks.iter().map(|(id, _)| id.as_str()).collect();
        let reasons: Vec<&str> = marks.iter().map(|(_, r)| r.as_str()).collect();
        sqlx::query(&self.sql.mark_corrupt)
            .bind(&ids)
            .bind(&reasons)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: marking corrupt jobs", e))?;
        Ok(())
    }

    async fn extend(
        &self,
        holder: &str,
        ids: &[String],
        now: i64,
        expires: i64,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar(&self.sql.extend)
            .bind(ids)
            .bind(holder)
            .bind(now)
            .bind(expires)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: extend_leases", e))
    }

    async fn release(
        &self,
        holder: &str,
        updates: &[EncodedJob],
        removes: &[String],
    ) -> Result<()> {
        let c = Columns::of(updates);
        sqlx::query(&self.sql.release)
            .bind(&c.ids)
            .bind(&c.next_run_times)
            .bind(&c.paused)
            .bind(&c.states)
            .bind(&c.versions)
            .bind(holder)
            .bind(removes)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: release_jobs", e))?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

//! [`SqlRunHistory`]: run records in a table beside the job table, on the store's pool.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use apscheduler_core::{
    async_trait, Error, ErrorKind, NodeInfo, NodeRegistry, RunHistory, RunProtocol, RunQuery,
    RunRecord,
};
use chrono::{DateTime, Utc};

use crate::codec::{check_id, from_micros, micros_ceil, micros_floor};
use crate::driver::Driver;
use crate::runs::{NodeRow, RunFilter, RunRow, RunWrite};
use crate::store::Link;

/// The run history of a [`SqlJobStore`](crate::SqlJobStore): one row per run in the
/// table `<table_name>_runs` beside the job table, on the store's connection pool.
/// What [`JobStore::run_history`](apscheduler_core::JobStore::run_history) returns;
/// [`SqlJobStore::history`](crate::SqlJobStore::history) gives it with its type.
///
/// It connects (and migrates the job table) when first used, as the store does, and
/// creates its table and indexes in [`prepare`](RunHistory::prepare), or at its first
/// use on a connection pool that has not seen it (after the store was shut down and
/// started again, say). Shutting the store down closes the pool it shares; the next
/// call opens another.
///
/// Run ids, job ids and node names are at most 191 characters without NUL (as job
/// ids are): a record with a longer one is refused with `InvalidInput`, and a query,
/// prune or interruption for one finds nothing. Output and messages may hold anything,
/// NUL included. Times are kept to the microsecond (rounded down). See the crate
/// documentation, "Run history", for the table, its indexes and its statements.
///
/// ```
/// use apscheduler_core::chrono::{TimeZone, Utc};
/// use apscheduler_core::{JobStore, RunHistory, RunOutcome, RunQuery, RunRecord};
/// use apscheduler_store_sql::SqlJobStore;
///
/// let store = SqlJobStore::connect("sqlite::memory:").unwrap();
/// let history = store.run_history().expect("the SQL store keeps history");
/// let at = Utc.with_ymd_and_hms(2026, 1, 1, 3, 0, 0).unwrap();
/// let record = RunRecord {
///     run_id: "0190a8e0-7c1e-7000-8000-000000000001".into(),
///     job_id: "backup".into(),
///     scheduled_at: at,
///     started_at: Some(at),
///     finished_at: Some(at + apscheduler_core::chrono::Duration::seconds(42)),
///     outcome: RunOutcome::Success,
///     exit_code: Some(0),
///     http_status: None,
///     output: "backed up 3 files\n".into(),
///     message: None,
///     node: "host-1".into(),
///     attempt: 1,
///     backfill: false,
///     due_at: None,
/// };
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// runtime.block_on(async {
///     history.prepare().await.unwrap();
///     history.record_runs(&[record.clone()]).await.unwrap();
///     let query = RunQuery { job_id: Some("backup".into()), ..RunQuery::default() };
///     assert_eq!(history.query_runs(&query).await.unwrap(), vec![record]);
///     store.shutdown().await.unwrap();
/// });
/// ```
#[derive(Clone)]
pub struct SqlRunHistory {
    link: Arc<Link>,
}

impl fmt::Debug for SqlRunHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlRunHistory")
            .field("backend", &self.link.backend())
            .field("url", &self.link.url)
            .field("table_name", &self.link.names.runs_table)
            .finish_non_exhaustive()
    }
}

impl SqlRunHistory {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        SqlRunHistory { link }
    }

    /// The run history table's name (`<job table>_runs`, shortened with a hash when
    /// that would exceed 63 characters).
    pub fn table_name(&self) -> &str {
        &self.link.names.runs_table
    }

    /// The node registry table's name (`<job table>_nodes`, shortened like the run
    /// history table's), created with the run history table.
    pub fn nodes_table_name(&self) -> &str {
        &self.link.names.nodes_table
    }

    /// The connected backend, its run history table created on its pool.
    async fn driver(&self) -> Result<Arc<dyn Driver>, Error> {
        let driver = self.link.driver().await?;
        if !driver.history().is_ready() {
            retry!(driver.history().create())?;
        }
        Ok(driver)
    }

    /// Turns a row back into a record.
    ///
    /// # Errors
    /// `Serialization`, naming the run and the value, for a row this build cannot read
    /// (an unknown outcome, an HTTP status out of range, output that is not UTF-8).
    fn record(&self, row: RunRow) -> Result<RunRecord, Error> {
        let RunRow {
            run_id,
            job_id,
            scheduled_at,
            started_at,
            finished_at,
            outcome,
            exit_code,
            http_status,
            output,
            message,
            node,
            attempt,
            backfill,
            due_at,
        } = row;
        let unreadable = |what: String| {
            Error::new(
                ErrorKind::Serialization,
                format!(
                    "run history table {}: stored run '{run_id}' cannot be read: {what}",
                    self.link.names.runs_table
                ),
            )
        };
        let outcome = outcome.parse().map_err(|_| {
            let shown: String = outcome.chars().take(64).collect();
            unreadable(format!("unknown outcome '{shown}'"))
        })?;
        let http_status = http_status
            .map(|s| u16::try_from(s).map_err(|_| unreadable(format!("http_status {s}"))))
            .transpose()?;
        let output = String::from_utf8(output)
            .map_err(|e| unreadable(format!("output is not UTF-8 ({e})")))?;
        let message = message
            .map(|m| {
                String::from_utf8(m).map_err(|e| unreadable(format!("message is not UTF-8 ({e})")))
            })
            .transpose()?;
        let attempt =
            u32::try_from(attempt).map_err(|_| unreadable(format!("attempt {attempt}")))?;
        let backfill = match backfill {
            0 => false,
            1 => true,
            other => return Err(unreadable(format!("backfill {other}"))),
        };
        Ok(RunRecord {
            job_id,
            scheduled_at: from_micros(scheduled_at),
            started_at: started_at.map(from_micros),
            finished_at: finished_at.map(from_micros),
            outcome,
            exit_code,
            http_status,
            output,
            message,
            node,
            run_id,
            attempt,
            backfill,
            due_at: due_at.map(from_micros),
        })
    }

    fn records(&self, rows: Vec<RunRow>) -> Result<Vec<RunRecord>, Error> {
        rows.into_iter().map(|r| self.record(r)).collect()
    }
}

/// The records as written; when a run id appears twice, the later record wins.
///
/// # Errors
/// A record whose ids do not fit the table.
pub(crate) fn writes(records: &[RunRecord]) -> Result<Vec<RunWrite<'_>>, Error> {
    let mut rows = records
        .iter()
        .map(to_write)
        .collect::<Result<Vec<_>, _>>()?;
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        last.insert(r.run_id, i);
    }
    if last.len() < rows.len() {
        let mut i = 0;
        rows.retain(|r| {
            i += 1;
            last.get(r.run_id) == Some(&(i - 1))
        });
    }
    Ok(rows)
}

/// A record as written, once its ids are known to fit the table.
fn to_write(r: &RunRecord) -> Result<RunWrite<'_>, Error> {
    check_id("run_id", &r.run_id)?;
    check_id("job_id", &r.job_id)?;
    check_id("node", &r.node)?;
    Ok(RunWrite {
        run_id: &r.run_id,
        job_id: &r.job_id,
        scheduled_at: micros_floor(&r.scheduled_at),
        started_at: r.started_at.as_ref().map(micros_floor),
        finished_at: r.finished_at.as_ref().map(micros_floor),
        outcome: r.outcome.as_str(),
        exit_code: r.exit_code,
        http_status: r.http_status.map(i32::from),
        output: r.output.as_bytes(),
        message: r.message.as_deref().map(str::as_bytes),
        node: &r.node,
        attempt: i64::from(r.attempt),
        backfill: i32::from(r.backfill),
        due_at: r.due_at.as_ref().map(micros_floor),
    })
}

/// Whether `id` could be stored (a filter on any other value matches nothing).
fn storable(id: &str) -> bool {
    check_id("id", id).is_ok()
}

/// The node registry: the table `<table>_nodes` (created with the run history table),
/// one row per node, rewritten by each heartbeat.
#[async_trait]
impl NodeRegistry for SqlRunHistory {
    async fn heartbeat(&self, node: &NodeInfo) -> Result<(), Error> {
        check_id("node", &node.node)?;
        let host: String = node.host.chars().take(255).collect();
        let protocol = node.protocol.as_str();
        if protocol.is_empty() || protocol.len() > crate::schema::NODE_PROTOCOL_MAX {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "node {:?}: protocol name {protocol:?} must be 1 to {} bytes",
                    node.node,
                    crate::schema::NODE_PROTOCOL_MAX
                ),
            ));
        }
        let row = NodeRow {
            node: node.node.clone(),
            host,
            pid: i64::from(node.pid),
            started_at: micros_floor(&node.started_at),
            heartbeat_at: micros_floor(&node.heartbeat_at),
            running: i64::from(node.running),
            protocol: protocol.to_owned(),
        };
        let driver = self.driver().await?;
        Ok(retry!(driver.history().heartbeat(&row))?)
    }

    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let driver = self.driver().await?;
        let rows = retry!(driver.history().nodes())?;
        Ok(rows
            .into_iter()
            .map(|r| NodeInfo {
                node: r.node,
                host: r.host,
                pid: u32::try_from(r.pid).unwrap_or(0),
                started_at: from_micros(r.started_at),
                heartbeat_at: from_micros(r.heartbeat_at),
                running: u32::try_from(r.running).unwrap_or(u32::MAX),
                protocol: RunProtocol::from(r.protocol),
            })
            .collect())
    }

    async fn remove_node(&self, node: &str) -> Result<bool, Error> {
        if !storable(node) {
            return Ok(false);
        }
        let driver = self.driver().await?;
        Ok(retry!(driver.history().remove_node(node))?)
    }
}

#[async_trait]
impl RunHistory for SqlRunHistory {
    fn nodes(&self) -> Option<&dyn NodeRegistry> {
        Some(self)
    }

    /// Connects if needed, and creates the table and its indexes unless they exist
    /// (under the migration lock on PostgreSQL, in a write transaction on SQLite; one
    /// `CREATE TABLE IF NOT EXISTS` with its indexes on MySQL/MariaDB). A table of
    /// that name without the history's columns is refused with `InvalidState`.
    async fn prepare(&self) -> Result<(), Error> {
        let driver = self.link.driver().await?;
        retry!(driver.history().create())?;
        Ok(())
    }

    /// One upsert statement per 1,000 records (and 4 MiB of output), several in one
    /// transaction: all or nothing. When a run id appears twice, the later record wins.
    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let rows = writes(records)?;
        let driver = self.driver().await?;
        retry!(driver.history().upsert(&rows))?;
        Ok(())
    }

    /// One statement on PostgreSQL (an update and an insert in one `WITH`); on SQLite
    /// and MySQL/MariaDB two: an upsert whose update sets `started_at` only on a row
    /// `running` without one (`CASE WHEN outcome = 'running' AND started_at IS NULL`),
    /// then a `SELECT` of the rows' outcomes and starts.
    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let rows = writes(records)?;
        let driver = self.driver().await?;
        Ok(retry!(driver.history().start(&rows))?)
    }

    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        let filters_fit = query.job_id.as_deref().is_none_or(storable)
            && query.node.as_deref().is_none_or(storable);
        if query.limit == 0 || !filters_fit {
            return Ok(Vec::new());
        }
        let filter = RunFilter {
            job_id: query.job_id.as_deref(),
            outcome: query.outcome.map(|o| o.as_str()),
            since: query.since.as_ref().map(micros_ceil),
            until: query.until.as_ref().map(micros_ceil),
            node: query.node.as_deref(),
            limit: i64::try_from(query.limit).unwrap_or(i64::MAX),
        };
        let driver = self.driver().await?;
        let rows = driver.history().query(&filter).await?;
        self.records(rows)
    }

    async fn latest_runs(&self, job_ids: &[String]) -> Result<Vec<RunRecord>, Error> {
        let ids: Vec<&str> = job_ids
            .iter()
            .map(String::as_str)
            .filter(|id| storable(id))
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let driver = self.driver().await?;
        let rows = driver.history().latest(&ids).await?;
        self.records(rows)
    }

    async fn prune_job_runs(&self, job_id: &str, keep: usize) -> Result<u64, Error> {
        if !storable(job_id) {
            return Ok(0);
        }
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let driver = self.driver().await?;
        Ok(retry!(driver.history().prune_job(job_id, keep))?)
    }

    async fn prune_runs_before(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        let driver = self.driver().await?;
        Ok(retry!(driver.history().prune_before(micros_ceil(&before)))?)
    }

    /// One statement (`UPDATE ... RETURNING`) on SQLite and PostgreSQL; on
    /// MySQL/MariaDB a transaction that locks the node's running rows
    /// (`SELECT ... FOR UPDATE`), then updates them.
    async fn interrupt_running(
        &self,
        node: &str,
        now: DateTime<Utc>,
        message: &str,
    ) -> Result<Vec<RunRecord>, Error> {
        if !storable(node) {
            return Ok(Vec::new());
        }
        let driver = self.driver().await?;
        let now = micros_floor(&now);
        let rows = retry!(driver.history().interrupt(node, now, message))?;
        self.records(rows)
    }
}

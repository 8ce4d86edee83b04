//! MySQL/MariaDB scripts: several statements sent as one text query, which the server
//! runs in order and answers in one go (the driver connects with multi-statement
//! support), so a claim or a release is one round trip instead of one per statement.
//!
//! Values are written into the script as literals, never quoted or escaped by hand:
//! text and bytes as hexadecimal literals (`_utf8mb4 X'…'`, `X'…'`), numbers formatted
//! by Rust. A text literal with an introducer compares with a column's own collation
//! (a literal is the most coercible), as a bound parameter does.
//!
//! A script stops at its first failing statement: one that began a transaction leaves
//! it open. [`HeldConn::done_closing`](crate::held::HeldConn::done_closing) closes the
//! connection then, and the server rolls the transaction back.

use futures_util::StreamExt as _;
use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::Either;

use crate::backend::CHUNK;
use crate::codec::EncodedJob;
use crate::driver::Release;
use crate::runs::RunWrite;
use crate::runs_sql::RunStatements;

/// Most bytes of values (before their hexadecimal encoding doubles them) a pass's
/// script carries: far below MariaDB's default `max_allowed_packet` (16 MiB) once
/// encoded. Larger releases and history writes take the prepared statements instead.
pub(crate) const SCRIPT_BYTES: usize = 1 << 20;

/// `s` as a `utf8mb4` text literal.
pub(crate) fn text(s: &str) -> String {
    format!("_utf8mb4 X'{}'", hex::encode(s))
}

/// `bytes` as a binary string literal.
pub(crate) fn bytes(bytes: &[u8]) -> String {
    format!("X'{}'", hex::encode(bytes))
}

/// `bytes` as a binary string literal, or `NULL`.
pub(crate) fn opt_bytes(value: Option<&[u8]>) -> String {
    value.map_or_else(|| "NULL".to_owned(), bytes)
}

/// A number, or `NULL`.
pub(crate) fn opt_int<T: Into<i64>>(value: Option<T>) -> String {
    value.map_or_else(|| "NULL".to_owned(), |v| v.into().to_string())
}

/// The bytes of values `records` put in a script.
pub(crate) fn record_bytes(records: &[RunWrite<'_>]) -> usize {
    records
        .iter()
        .map(|r| r.run_id.len() + r.job_id.len() + r.node.len() + r.bytes())
        .sum()
}

/// The run history's upsert of `records` (at most
/// [`CHUNK_ROWS`](crate::runs::CHUNK_ROWS)) as one statement with literal values, in
/// [`RUN_COLUMNS`](crate::schema::RUN_COLUMNS) order.
pub(crate) fn records_upsert(sql: &RunStatements, records: &[RunWrite<'_>]) -> String {
    records_insert(sql, records, &sql.upsert_tail)
}

/// `records` (at most [`CHUNK_ROWS`](crate::runs::CHUNK_ROWS)) inserted as one
/// statement with literal values, `tail` saying what a row already there becomes.
pub(crate) fn records_insert(sql: &RunStatements, records: &[RunWrite<'_>], tail: &str) -> String {
    let rows: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                text(r.run_id),
                text(r.job_id),
                r.scheduled_at,
                opt_int(r.started_at),
                opt_int(r.finished_at),
                text(r.outcome),
                opt_int(r.exit_code),
                opt_int(r.http_status),
                bytes(r.output),
                opt_bytes(r.message),
                text(r.node),
                r.attempt,
                r.backfill,
                opt_int(r.due_at),
            )
        })
        .collect();
    format!("{} VALUES {}{tail}", sql.insert_head, rows.join(", "))
}

/// The start write of `records` (at most [`CHUNK_ROWS`](crate::runs::CHUNK_ROWS), run
/// ids unique) on the run history table `runs`, then the read of their rows (`run_id`,
/// `outcome`, `started_at`, statement 1), as one script; `None` when its values exceed
/// [`SCRIPT_BYTES`]. No transaction: each row's update is atomic, as the contract needs.
pub(crate) fn starts(sql: &RunStatements, runs: &str, records: &[RunWrite<'_>]) -> Option<Script> {
    if records.len() > crate::runs::CHUNK_ROWS || record_bytes(records) > SCRIPT_BYTES {
        return None;
    }
    let ids: Vec<&str> = records.iter().map(|r| r.run_id).collect();
    let mut s = Script::default();
    s.push(records_insert(
        sql,
        records,
        &crate::run_starts::start_tail(crate::schema::Dialect::MySql),
    ));
    s.push(format!(
        "SELECT CONVERT(run_id USING utf8mb4), CONVERT(outcome USING utf8mb4), started_at \
         FROM {runs} WHERE run_id IN ({})",
        list(&ids)
    ));
    Some(s)
}

/// Where a release script's answers are (statement indexes).
#[derive(Debug)]
pub(crate) struct ReleaseAt {
    /// The selects of the held rows' ids.
    pub(crate) held: Vec<usize>,
    /// The transaction's commit.
    pub(crate) commit: usize,
    /// The read of the next run time.
    pub(crate) next: usize,
}

/// `req` on the job table `jobs`, with `records` written first in its transaction
/// (`runs`: the run history's statements), then the next run time read
/// (`next_run_time`), as one script; `None` when its values exceed [`SCRIPT_BYTES`].
///
/// The held rows are selected and locked (`FOR UPDATE`, so a claimer skips them until
/// the commit), then updated and deleted where `holder` still holds them: the same
/// rows, as they are locked and no other row becomes the holder's meanwhile (its
/// claims run on the connection this script runs on).
pub(crate) fn release(
    jobs: &str,
    runs: &RunStatements,
    next_run_time: &str,
    req: &Release<'_>,
    records: &[RunWrite<'_>],
) -> Option<(Script, ReleaseAt)> {
    let size: usize = req
        .updates
        .iter()
        .map(|u| u.id.len() + u.state.len() + u.state_bin.as_ref().map_or(0, Vec::len))
        .chain(req.removes.iter().map(String::len))
        .sum::<usize>()
        + record_bytes(records);
    if size > SCRIPT_BYTES {
        return None;
    }
    let holder = text(req.holder);
    let mut s = Script::default();
    s.push("BEGIN");
    for part in crate::runs::chunks(records) {
        s.push(records_upsert(runs, part));
    }
    let ids: Vec<&str> = req
        .updates
        .iter()
        .map(|u| u.id.as_str())
        .chain(req.removes.iter().map(String::as_str))
        .collect();
    let held = ids
        .chunks(CHUNK)
        .map(|part| {
            s.push(format!(
                "SELECT CONVERT(id USING utf8mb4) FROM {jobs} WHERE id IN ({}) \
                 AND lease_holder = {holder} FOR UPDATE",
                list(part)
            ))
        })
        .collect();
    for part in req.updates.chunks(CHUNK) {
        s.push(jobs_update(
            jobs,
            part,
            &format!("j.lease_holder = {holder}"),
        ));
    }
    for part in req.removes.chunks(CHUNK) {
        s.push(format!(
            "DELETE FROM {jobs} WHERE id IN ({}) AND lease_holder = {holder}",
            list(part)
        ));
    }
    let commit = s.push("COMMIT");
    let next = s.push(next_run_time);
    Some((s, ReleaseAt { held, commit, next }))
}

/// One multi-row UPDATE writing `updated` (their new schedule and state, their claim
/// dropped, their corrupt mark cleared) where `condition` holds on the row `j`: a join
/// with the new values as a derived table (`SELECT ... UNION ALL SELECT ...`) read
/// first, on the primary key (never a scan, which would wait for the rows other
/// claimers lock).
pub(crate) fn jobs_update(jobs: &str, updated: &[EncodedJob], condition: &str) -> String {
    let values = updated
        .iter()
        .map(|u| {
            format!(
                "SELECT {} COLLATE utf8mb4_bin AS id, CAST({} AS SIGNED) AS next_run_time, \
                 CAST({} AS SIGNED) AS paused, {} AS state, \
                 CAST({} AS BINARY) AS state_bin, CAST({} AS SIGNED) AS format_version",
                text(&u.id),
                opt_int(u.next_run_time),
                i64::from(u.paused),
                text(&u.state),
                opt_bytes(u.state_bin.as_deref()),
                u.format_version
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    format!(
        "UPDATE ({values}) AS v STRAIGHT_JOIN {jobs} AS j FORCE INDEX (PRIMARY) \
         ON j.id = v.id SET j.next_run_time = v.next_run_time, j.paused = v.paused, \
         j.state = v.state, j.state_bin = v.state_bin, j.format_version = v.format_version, \
         j.lease_holder = NULL, j.lease_expires = NULL, j.corrupt = NULL WHERE {condition}"
    )
}

/// `ids` as a list of text literals.
fn list<S: AsRef<str>>(ids: &[S]) -> String {
    ids.iter()
        .map(|id| text(id.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Statements to send as one text query.
#[derive(Debug, Default)]
pub(crate) struct Script {
    sql: String,
    statements: usize,
}

impl Script {
    /// Appends `statement` (without its `;`); returns its index.
    pub(crate) fn push(&mut self, statement: impl AsRef<str>) -> usize {
        if self.statements > 0 {
            self.sql.push_str(";\n");
        }
        self.sql.push_str(statement.as_ref());
        self.statements += 1;
        self.statements - 1
    }

    /// Sends the script on `conn` and reads every statement's answer.
    pub(crate) async fn run(&self, conn: &mut MySqlConnection) -> Ran {
        let mut results = Vec::with_capacity(self.statements);
        let mut rows = Vec::new();
        let mut answers = sqlx::raw_sql(&self.sql).fetch_many(conn);
        // Each statement's answer ends with a result (an OK packet, or the end of its
        // rows), after the rows it returned.
        while let Some(answer) = answers.next().await {
            match answer {
                Ok(Either::Right(row)) => rows.push(row),
                Ok(Either::Left(_)) => results.push(std::mem::take(&mut rows)),
                Err(e) => {
                    return Ran {
                        results,
                        error: Some(e),
                    }
                }
            }
        }
        let error = (results.len() < self.statements).then(|| {
            sqlx::Error::Protocol(format!(
                "the server answered {} of the script's {} statements",
                results.len(),
                self.statements
            ))
        });
        Ran { results, error }
    }
}

/// A script's answers.
#[derive(Debug)]
pub(crate) struct Ran {
    /// The rows of each statement that completed, in order.
    results: Vec<Vec<MySqlRow>>,
    /// What stopped the script before its end.
    error: Option<sqlx::Error>,
}

impl Ran {
    /// Whether statement `i` completed.
    pub(crate) fn completed(&self, i: usize) -> bool {
        i < self.results.len()
    }

    /// The rows statement `i` returned (none when it did not complete).
    pub(crate) fn rows(&self, i: usize) -> &[MySqlRow] {
        self.results.get(i).map_or(&[], Vec::as_slice)
    }

    /// The error that stopped the script, if one did.
    pub(crate) fn take_error(&mut self) -> Option<sqlx::Error> {
        self.error.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_hexadecimal() {
        assert_eq!(text("a'b"), "_utf8mb4 X'612762'");
        assert_eq!(text(""), "_utf8mb4 X''");
        assert_eq!(text("é"), "_utf8mb4 X'c3a9'");
        assert_eq!(bytes(&[0, 0xff, b'\\']), "X'00ff5c'");
        assert_eq!(opt_bytes(None), "NULL");
        assert_eq!(opt_int(Some(-3i32)), "-3");
        assert_eq!(opt_int::<i64>(None), "NULL");
    }

    #[test]
    fn statements_are_numbered() {
        let mut s = Script::default();
        assert_eq!(s.push("BEGIN"), 0);
        assert_eq!(s.push("COMMIT"), 1);
        assert_eq!(s.sql, "BEGIN;\nCOMMIT");
    }
}

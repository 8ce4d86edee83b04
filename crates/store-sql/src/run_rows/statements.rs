//! The statements of a job table's run rows: those of every operation
//! ([`Statements::new`]) and the batched ones of the statement-per-kind step, by
//! dialect.

use super::LIVE;
use crate::schema::{Dialect, Names};

/// The statements of one job table's run rows.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) now: String,
    pub(super) pause_job: String,
    pub(super) delete_job: String,
    pub(super) expired: String,
    pub(super) of_job: String,
    pub(super) prune: String,
}

impl Statements {
    pub(super) fn new(d: Dialect, n: &Names) -> Statements {
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
pub(super) const CHUNK: usize = 500;

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
    pub(super) fn ensure_fences(d: Dialect, n: &Names, rows: usize) -> String {
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

    pub(super) fn lock_fences(d: Dialect, n: &Names, rows: usize) -> String {
        format!(
            "SELECT {}, fence, finishing FROM {} WHERE job_id IN ({}) ORDER BY job_id{}",
            d.text("job_id"),
            n.run_fences,
            params(d, 1, rows),
            lock_clause(d)
        )
    }

    pub(super) fn lock_jobs(d: Dialect, n: &Names, rows: usize) -> String {
        format!(
            "SELECT {}, {} FROM {} WHERE id IN ({}) ORDER BY id{}",
            d.text("id"),
            d.text("lease_holder"),
            n.jobs,
            params(d, 1, rows),
            lock_clause(d)
        )
    }

    pub(super) fn live_runs(d: Dialect, n: &Names, rows: usize) -> String {
        format!(
            "SELECT {} FROM {} WHERE job_id IN ({}) AND state IN {LIVE}",
            d.text("row_json"),
            n.run_leases,
            params(d, 1, rows)
        )
    }

    pub(super) fn runs_by_key(d: Dialect, n: &Names, rows: usize) -> String {
        format!(
            "SELECT {} FROM {} WHERE (job_id, fire_time, attempt, rerun) IN ({})",
            d.text("row_json"),
            n.run_leases,
            groups(d, rows, 4)
        )
    }

    pub(super) fn upsert_runs(d: Dialect, n: &Names, rows: usize) -> String {
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

    pub(super) fn write_fences(d: Dialect, n: &Names, rows: usize) -> String {
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
    pub(super) fn update_jobs(d: Dialect, n: &Names, rows: usize) -> String {
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

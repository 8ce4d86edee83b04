//! Table names, the schema of each backend, and the numbered migrations that create
//! and upgrade it.
//!
//! See [`SCHEMA_VERSION`](crate::SCHEMA_VERSION) for how migrations run and how to
//! add one.

use std::fmt;

use crate::error::invalid_input;
use apscheduler_core::Error;

/// The SQL dialect of a backend ([`SqlJobStore::backend`](crate::SqlJobStore::backend)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// SQLite 3.35 or later (the bundled library is).
    Sqlite,
    /// PostgreSQL 9.5 or later (`SKIP LOCKED`).
    Postgres,
    /// MySQL 8.0 or later, MariaDB 10.6 or later (`SKIP LOCKED`).
    MySql,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "PostgreSQL",
            Dialect::MySql => "MySQL/MariaDB",
        })
    }
}

/// The default job table (APScheduler's `tablename` default).
pub const DEFAULT_TABLE_NAME: &str = "apscheduler_jobs";

/// The longest name the backends take for a table or index (PostgreSQL: 63 bytes).
const MAX_IDENTIFIER: usize = 63;

/// Checks a table name against `^[A-Za-z_][A-Za-z0-9_]{0,62}$`.
///
/// # Errors
/// `InvalidInput` naming the field `table_name` and the value.
pub(crate) fn validate_table_name(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let valid = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            name.len() <= MAX_IDENTIFIER && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        let shown: String = name.chars().take(80).collect();
        Err(invalid_input(
            "table_name",
            &shown,
            "a table name is 1 to 63 ASCII letters, digits and underscores, not starting with a digit",
        ))
    }
}

/// 32-bit FNV-1a: a stable hash for derived names.
fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// `table` + `suffix`, shortened with a hash of the table name when it would be longer
/// than an identifier may be (so two long table names never share an index name).
fn derived(table: &str, suffix: &str) -> String {
    if table.len() + suffix.len() <= MAX_IDENTIFIER {
        format!("{table}{suffix}")
    } else {
        let keep = MAX_IDENTIFIER - suffix.len() - 9;
        format!("{}_{:08x}{suffix}", &table[..keep], fnv1a(table))
    }
}

/// The names of one store's tables and indexes, quoted for its dialect. Built from a
/// validated table name only, so they are safe to splice into SQL.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// The job table, unquoted.
    pub(crate) table: String,
    /// The schema version table, unquoted.
    pub(crate) schema_table: String,
    /// The job table, quoted.
    pub(crate) jobs: String,
    /// The schema version table, quoted.
    pub(crate) schema: String,
    /// The index on `(next_run_time, id)`, quoted.
    pub(crate) idx_next: String,
    /// The index on `lease_expires`, quoted.
    pub(crate) idx_lease: String,
    /// The index on `(claim_partition, next_run_time, id)`, quoted.
    pub(crate) idx_partition: String,
    /// The run history table (`<table>_runs`), unquoted.
    pub(crate) runs_table: String,
    /// The run history table, quoted.
    pub(crate) runs: String,
    /// The run history index on `(scheduled_at, run_id)`, quoted.
    pub(crate) idx_runs_time: String,
    /// The run history index on `(job_id, scheduled_at, run_id)`, quoted.
    pub(crate) idx_runs_job: String,
    /// The run history index on `(outcome, scheduled_at, run_id)`, quoted.
    pub(crate) idx_runs_outcome: String,
    /// The release waiters table (`<table>_waiters`, PostgreSQL), quoted.
    pub(crate) waiters: String,
    /// The run contract's rows (`<table>_run_leases`), unquoted.
    pub(crate) run_leases_table: String,
    /// The run contract's rows, quoted.
    pub(crate) run_leases: String,
    /// Their index on `(state, lease_until)`, quoted.
    pub(crate) idx_run_leases: String,
    /// The per-job run fences (`<table>_run_fences`), quoted.
    pub(crate) run_fences: String,
    /// The node registry table (`<table>_nodes`), unquoted.
    pub(crate) nodes_table: String,
    /// The node registry table, quoted.
    pub(crate) nodes: String,
    /// The key of this table's migration lock on PostgreSQL (an advisory lock).
    #[cfg(feature = "postgres")]
    pub(crate) lock_key: i64,
    /// The PostgreSQL notification channel of this table's changes (`LISTEN`/`NOTIFY`).
    #[cfg(feature = "postgres")]
    pub(crate) channel: String,
    /// The name of this table's migration lock on MySQL/MariaDB (`GET_LOCK`, at most
    /// 64 characters).
    #[cfg(feature = "mysql")]
    pub(crate) lock_name: String,
}

impl Names {
    pub(crate) fn new(table: &str, dialect: Dialect) -> Self {
        let quote = |s: &str| match dialect {
            Dialect::MySql => format!("`{s}`"),
            Dialect::Sqlite | Dialect::Postgres => format!("\"{s}\""),
        };
        let schema_table = derived(table, "_schema");
        let runs_table = derived(table, "_runs");
        let nodes_table = derived(table, "_nodes");
        let run_leases_table = derived(table, "_run_leases");
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        let hash = fnv1a(&format!("apscheduler-store-sql:{table}"));
        Names {
            table: table.to_owned(),
            jobs: quote(table),
            schema: quote(&schema_table),
            schema_table,
            idx_next: quote(&derived(table, "_next_run_time_idx")),
            idx_lease: quote(&derived(table, "_lease_expires_idx")),
            idx_partition: quote(&derived(table, "_partition_idx")),
            runs: quote(&runs_table),
            runs_table,
            idx_runs_time: quote(&derived(table, "_runs_time_idx")),
            idx_runs_job: quote(&derived(table, "_runs_job_idx")),
            idx_runs_outcome: quote(&derived(table, "_runs_outcome_idx")),
            nodes: quote(&nodes_table),
            nodes_table,
            waiters: quote(&derived(table, "_waiters")),
            run_leases: quote(&run_leases_table),
            run_leases_table,
            idx_run_leases: quote(&derived(table, "_run_leases_idx")),
            run_fences: quote(&derived(table, "_run_fences")),
            #[cfg(feature = "postgres")]
            lock_key: 0x4150_5300_0000_0000 | i64::from(hash),
            #[cfg(feature = "postgres")]
            channel: format!("apscheduler_jobs_{hash:08x}"),
            #[cfg(feature = "mysql")]
            lock_name: format!("apscheduler_migrate_{hash:08x}"),
        }
    }
}

/// One numbered step of the schema's history.
pub(crate) struct Migration {
    /// The schema version the table has after this migration.
    pub(crate) version: u32,
    /// What it does (logged when it runs).
    pub(crate) description: &'static str,
    /// Its statements for a dialect, in order.
    pub(crate) statements: fn(Dialect, &Names) -> Vec<String>,
}

impl fmt::Debug for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migration")
            .field("version", &self.version)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// Every migration, oldest first. See the module documentation to add one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "job table: id, next_run_time, paused, state, format_version, lease, corrupt",
        statements: v1_job_table,
    },
    Migration {
        version: 2,
        description: "state_bin: job states in the bincode format",
        statements: v2_binary_state,
    },
    Migration {
        version: 3,
        description: "claim_partition: each job's claim partition, indexed with next_run_time",
        statements: v3_claim_partition,
    },
    Migration {
        version: 4,
        description: "waiters: the schedulers waiting for a release (PostgreSQL)",
        statements: v4_release_waiters,
    },
    Migration {
        version: 5,
        description: "run_leases and run_fences: runs as leased rows (the run contract)",
        statements: v5_run_leases,
    },
];

/// The run contract's tables: one row per run (its key, the columns steps select by,
/// and the whole run as JSON), and one per job with its last fence and whether it
/// waits for its last live run to be removed.
pub(crate) fn v5_run_leases(dialect: Dialect, n: &Names) -> Vec<String> {
    let (runs, fences, idx) = (&n.run_leases, &n.run_fences, &n.idx_run_leases);
    let columns = |id: &str, text: &str| {
        format!(
            "job_id {id} NOT NULL, fire_time BIGINT NOT NULL, attempt BIGINT NOT NULL, \
             rerun BIGINT NOT NULL, state VARCHAR(16) NOT NULL, lease_until BIGINT NOT NULL, \
             holder {id} NOT NULL, fence BIGINT NOT NULL, ended_at BIGINT, \
             row_json {text} NOT NULL, PRIMARY KEY (job_id, fire_time, attempt, rerun)"
        )
    };
    match dialect {
        Dialect::MySql => {
            let id = "VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin";
            vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {runs} ({}, KEY {idx} (state, lease_until)) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                    columns(id, "MEDIUMTEXT")
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {fences} (job_id {id} NOT NULL PRIMARY KEY, \
                     fence BIGINT NOT NULL, finishing BIGINT NOT NULL) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
                ),
            ]
        }
        Dialect::Sqlite | Dialect::Postgres => {
            let id = if dialect == Dialect::Postgres {
                "VARCHAR(191) COLLATE \"C\""
            } else {
                "VARCHAR(191)"
            };
            vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {runs} ({})",
                    columns(id, "TEXT")
                ),
                format!("CREATE INDEX IF NOT EXISTS {idx} ON {runs} (state, lease_until)"),
                format!(
                    "CREATE TABLE IF NOT EXISTS {fences} (job_id {id} NOT NULL PRIMARY KEY, \
                     fence BIGINT NOT NULL, finishing BIGINT NOT NULL)"
                ),
            ]
        }
    }
}

/// The schedulers waiting for another's release, on PostgreSQL (the one SQL backend
/// that notifies): one row per waiting store (its notification token) with the end
/// (microseconds, the server's clock) of the lease it waits for. A release notifies
/// only while a row's end is ahead (see `SqlJobStore::get_next_run_time`).
pub(crate) fn v4_release_waiters(dialect: Dialect, n: &Names) -> Vec<String> {
    match dialect {
        Dialect::Postgres => vec![format!(
            "CREATE TABLE IF NOT EXISTS {} (token VARCHAR(191) COLLATE \"C\" NOT NULL PRIMARY KEY, \
             until BIGINT NOT NULL)",
            n.waiters
        )],
        Dialect::Sqlite | Dialect::MySql => Vec::new(),
    }
}

/// How many claim partitions a PostgreSQL or MySQL/MariaDB job table divides its jobs
/// into ([`Capabilities::partitions`](apscheduler_core::Capabilities::partitions)).
pub(crate) const CLAIM_PARTITIONS: u32 = 1024;

/// A job's claim partition, from its id: the first 32 bits of the id's MD5 (UTF-8
/// bytes), modulo [`CLAIM_PARTITIONS`]; the same on both servers. `id` is the SQL
/// expression of the id.
pub(crate) fn partition_of(dialect: Dialect, id: &str) -> String {
    let mask = CLAIM_PARTITIONS - 1;
    match dialect {
        Dialect::Postgres => {
            format!("(('x' || substr(md5({id}), 1, 8))::bit(32)::INTEGER & {mask})")
        }
        Dialect::MySql => {
            format!("(CAST(CONV(SUBSTRING(MD5({id}), 1, 8), 16, 10) AS UNSIGNED) & {mask})")
        }
        // Single-node: one claimer, nothing to partition.
        Dialect::Sqlite => "0".to_owned(),
    }
}

/// The claim partition column and its index with `next_run_time`: a claim that prefers
/// some partitions reads their due jobs through it. On MySQL/MariaDB a stored
/// generated column; on PostgreSQL a column the inserts fill
/// and this migration computes for the rows already there (in its transaction); a
/// table of 10 million rows is rewritten once, under the migration lock. SQLite
/// is single-node and gets nothing.
pub(crate) fn v3_claim_partition(dialect: Dialect, n: &Names) -> Vec<String> {
    const _: () = assert!(CLAIM_PARTITIONS.is_power_of_two());
    let (jobs, idx) = (&n.jobs, &n.idx_partition);
    match dialect {
        Dialect::Sqlite => Vec::new(),
        // Two statements, each re-run alone after an interruption (1060, 1061).
        Dialect::MySql => vec![
            format!(
                "ALTER TABLE {jobs} ADD COLUMN claim_partition INTEGER AS {} STORED",
                partition_of(dialect, "id")
            ),
            format!("ALTER TABLE {jobs} ADD KEY {idx} (claim_partition, next_run_time, id)"),
        ],
        Dialect::Postgres => vec![
            format!("ALTER TABLE {jobs} ADD COLUMN claim_partition INTEGER NOT NULL DEFAULT 0"),
            format!(
                "UPDATE {jobs} SET claim_partition = {}",
                partition_of(dialect, "id")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {idx} ON {jobs} (claim_partition, next_run_time, id)"
            ),
        ],
    }
}

/// The schema version table: one row (`id = 1`) holding the version.
pub(crate) fn schema_table_ddl(names: &Names) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (id SMALLINT NOT NULL PRIMARY KEY, version INTEGER NOT NULL)",
        names.schema
    )
}

/// The DDL of the job table, per dialect (see the crate documentation for what each
/// column holds).
pub(crate) fn v1_job_table(dialect: Dialect, n: &Names) -> Vec<String> {
    match dialect {
        Dialect::MySql => vec![format!(
            "CREATE TABLE IF NOT EXISTS {jobs} (\n\
             \x20   id VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n\
             \x20   next_run_time BIGINT NULL,\n\
             \x20   paused BOOLEAN NOT NULL DEFAULT FALSE,\n\
             \x20   state MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n\
             \x20   format_version INTEGER NOT NULL,\n\
             \x20   lease_holder VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,\n\
             \x20   lease_expires BIGINT NULL,\n\
             \x20   corrupt TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,\n\
             \x20   PRIMARY KEY (id),\n\
             \x20   KEY {idx_next} (next_run_time, id),\n\
             \x20   KEY {idx_lease} (lease_expires)\n\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            jobs = n.jobs,
            idx_next = n.idx_next,
            idx_lease = n.idx_lease,
        )],
        Dialect::Sqlite | Dialect::Postgres => {
            // Ids compare byte for byte, as on MySQL (`utf8mb4_bin`).
            let collate = if dialect == Dialect::Postgres {
                " COLLATE \"C\""
            } else {
                ""
            };
            vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {jobs} (\n\
                     \x20   id VARCHAR(191){collate} NOT NULL PRIMARY KEY,\n\
                     \x20   next_run_time BIGINT,\n\
                     \x20   paused BOOLEAN NOT NULL DEFAULT FALSE,\n\
                     \x20   state TEXT NOT NULL,\n\
                     \x20   format_version INTEGER NOT NULL,\n\
                     \x20   lease_holder VARCHAR(191),\n\
                     \x20   lease_expires BIGINT,\n\
                     \x20   corrupt TEXT\n\
                     )",
                    jobs = n.jobs
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} (next_run_time, id)",
                    n.idx_next, n.jobs
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} (lease_expires) WHERE lease_expires IS NOT NULL",
                    n.idx_lease, n.jobs
                ),
            ]
        }
    }
}

/// A nullable binary column for states in the bincode format (JSON states stay in the
/// `state` text column, readable in the database; a bincode row's `state` is empty).
pub(crate) fn v2_binary_state(dialect: Dialect, n: &Names) -> Vec<String> {
    let kind = match dialect {
        Dialect::Sqlite => "BLOB",
        Dialect::Postgres => "BYTEA",
        Dialect::MySql => "MEDIUMBLOB NULL",
    };
    vec![format!(
        "ALTER TABLE {} ADD COLUMN state_bin {kind}",
        n.jobs
    )]
}

/// The columns of the run history table, in the order every statement writes and reads
/// them. The last [`ADDED_RUN_COLUMNS`]`.len()` were added later: a table without them
/// gets them at prepare time.
pub(crate) const RUN_COLUMNS: [&str; 14] = [
    "run_id",
    "job_id",
    "scheduled_at",
    "started_at",
    "finished_at",
    "outcome",
    "exit_code",
    "http_status",
    "output",
    "message",
    "node",
    "attempt",
    "backfill",
    "due_at",
];

/// The run history columns added after the table's first release, with their type per
/// dialect: [`prepare`](apscheduler_core::RunHistory::prepare) adds the missing ones to
/// an existing table (`ALTER TABLE ... ADD COLUMN`), and the rows already there read as
/// a first attempt, not a backfill, with no due time.
pub(crate) const ADDED_RUN_COLUMNS: [(&str, &str); 3] = [
    ("attempt", "BIGINT NOT NULL DEFAULT 1"),
    ("backfill", "INTEGER NOT NULL DEFAULT 0"),
    ("due_at", "BIGINT NULL"),
];

/// `ALTER TABLE` adding one of [`ADDED_RUN_COLUMNS`] to the run history table.
pub(crate) fn add_run_column(n: &Names, column: &str, kind: &str) -> String {
    format!("ALTER TABLE {} ADD COLUMN {column} {kind}", n.runs)
}

/// The DDL of the run history table (first) and its indexes, per dialect; every
/// statement tolerates what already exists. Not a numbered migration: the table is created by
/// [`RunHistory::prepare`](apscheduler_core::RunHistory::prepare) (and on first use),
/// so stores that never keep history never have it, and the job table's schema version
/// is not raised by it.
///
/// Times are microseconds since the Unix epoch (UTC); `output` and `message` are
/// binary columns holding UTF-8 (PostgreSQL's text types cannot hold a NUL character);
/// `backfill` is 0 or 1 (an integer reads alike on every driver, a boolean does not).
pub(crate) fn runs_table_ddl(dialect: Dialect, n: &Names) -> Vec<String> {
    match dialect {
        // MySQL has no `CREATE INDEX IF NOT EXISTS` (MariaDB has): the indexes are part
        // of the one `CREATE TABLE IF NOT EXISTS`, as for the job table.
        Dialect::MySql => vec![format!(
            "CREATE TABLE IF NOT EXISTS {runs} (\n\
             \x20   run_id VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n\
             \x20   job_id VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n\
             \x20   scheduled_at BIGINT NOT NULL,\n\
             \x20   started_at BIGINT NULL,\n\
             \x20   finished_at BIGINT NULL,\n\
             \x20   outcome VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n\
             \x20   exit_code INTEGER NULL,\n\
             \x20   http_status INTEGER NULL,\n\
             \x20   output LONGBLOB NOT NULL,\n\
             \x20   message LONGBLOB NULL,\n\
             \x20   node VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n\
             \x20   attempt BIGINT NOT NULL DEFAULT 1,\n\
             \x20   backfill INTEGER NOT NULL DEFAULT 0,\n\
             \x20   due_at BIGINT NULL,\n\
             \x20   PRIMARY KEY (run_id),\n\
             \x20   KEY {time} (scheduled_at, run_id),\n\
             \x20   KEY {job} (job_id, scheduled_at, run_id),\n\
             \x20   KEY {outcome} (outcome, scheduled_at, run_id)\n\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            runs = n.runs,
            time = n.idx_runs_time,
            job = n.idx_runs_job,
            outcome = n.idx_runs_outcome,
        )],
        Dialect::Sqlite | Dialect::Postgres => {
            // Ids compare byte for byte, as on MySQL (`utf8mb4_bin`).
            let (collate, bytes) = if dialect == Dialect::Postgres {
                (" COLLATE \"C\"", "BYTEA")
            } else {
                ("", "BLOB")
            };
            vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {runs} (\n\
                     \x20   run_id VARCHAR(191){collate} NOT NULL PRIMARY KEY,\n\
                     \x20   job_id VARCHAR(191){collate} NOT NULL,\n\
                     \x20   scheduled_at BIGINT NOT NULL,\n\
                     \x20   started_at BIGINT,\n\
                     \x20   finished_at BIGINT,\n\
                     \x20   outcome VARCHAR(16) NOT NULL,\n\
                     \x20   exit_code INTEGER,\n\
                     \x20   http_status INTEGER,\n\
                     \x20   output {bytes} NOT NULL,\n\
                     \x20   message {bytes},\n\
                     \x20   node VARCHAR(191){collate} NOT NULL,\n\
                     \x20   attempt BIGINT NOT NULL DEFAULT 1,\n\
                     \x20   backfill INTEGER NOT NULL DEFAULT 0,\n\
                     \x20   due_at BIGINT\n\
                     )",
                    runs = n.runs
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} (scheduled_at, run_id)",
                    n.idx_runs_time, n.runs
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} (job_id, scheduled_at, run_id)",
                    n.idx_runs_job, n.runs
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} (outcome, scheduled_at, run_id)",
                    n.idx_runs_outcome, n.runs
                ),
            ]
        }
    }
}

/// The node registry table: one row per scheduler (node) recording into the run
/// history, rewritten at each heartbeat. Times are microseconds since the Unix epoch.
pub(crate) fn nodes_table_ddl(dialect: Dialect, n: &Names) -> String {
    let (text, tail) = match dialect {
        Dialect::MySql => (
            " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ),
        Dialect::Postgres => (" COLLATE \"C\"", ""),
        Dialect::Sqlite => ("", ""),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {nodes} (\n\
         \x20   node VARCHAR(191){text} NOT NULL PRIMARY KEY,\n\
         \x20   host VARCHAR(255){text} NOT NULL,\n\
         \x20   pid BIGINT NOT NULL,\n\
         \x20   started_at BIGINT NOT NULL,\n\
         \x20   heartbeat_at BIGINT NOT NULL,\n\
         \x20   running BIGINT NOT NULL,\n\
         \x20   protocol {}\n\
         ){tail}",
        node_protocol_column(dialect),
        nodes = n.nodes
    )
}

/// The node registry's `protocol` column (the name of
/// [`RunProtocol`](apscheduler_core::RunProtocol)); a row written before it existed
/// reads as `history_records`.
pub(crate) fn node_protocol_column(dialect: Dialect) -> String {
    let text = match dialect {
        Dialect::MySql => " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        Dialect::Postgres => " COLLATE \"C\"",
        Dialect::Sqlite => "",
    };
    format!("VARCHAR({NODE_PROTOCOL_MAX}){text} NOT NULL DEFAULT 'history_records'")
}

/// The longest protocol name the node registry holds.
pub(crate) const NODE_PROTOCOL_MAX: usize = 64;

/// `ALTER TABLE` adding the `protocol` column to a node registry created without it.
pub(crate) fn add_node_protocol_column(dialect: Dialect, n: &Names) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN protocol {}",
        n.nodes,
        node_protocol_column(dialect)
    )
}

/// The migrations a table at `current` still needs.
pub(crate) fn pending(current: i64) -> impl Iterator<Item = &'static Migration> {
    MIGRATIONS
        .iter()
        .filter(move |m| i64::from(m.version) > current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        for ok in ["apscheduler_jobs", "_x", "A", &"a".repeat(63), "Jobs_2024"] {
            assert!(validate_table_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "jobs;drop table x",
            "a-b",
            "sch.jobs",
            "\"q\"",
            "jöbs",
            &"a".repeat(64),
        ] {
            let err = validate_table_name(bad).unwrap_err();
            assert_eq!(err.kind(), apscheduler_core::ErrorKind::InvalidInput);
            assert!(err.message().contains("'table_name'"), "{err}");
        }
    }

    #[test]
    fn derived_names_fit() {
        let long = "a".repeat(63);
        let n = Names::new(&long, Dialect::Postgres);
        assert!(n.schema_table.len() <= 63);
        assert_ne!(n.schema_table, long);
        let other = Names::new(&format!("{}b", "a".repeat(62)), Dialect::Postgres);
        assert_ne!(n.schema_table, other.schema_table);
        let short = Names::new("jobs", Dialect::MySql);
        assert_eq!(short.schema, "`jobs_schema`");
        assert_eq!(short.runs, "`jobs_runs`");
        assert!(n.runs_table.len() <= 63 && n.idx_runs_outcome.len() <= 65);
        assert_ne!(n.idx_runs_outcome, other.idx_runs_outcome);
        #[cfg(feature = "mysql")]
        assert!(short.lock_name.len() <= 64);
    }

    #[test]
    fn versions_are_consecutive() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
        }
        assert_eq!(
            MIGRATIONS.last().map(|m| m.version),
            Some(crate::SCHEMA_VERSION)
        );
    }
}

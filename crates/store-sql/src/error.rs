//! The store's own errors, and how they map onto the core [`Error`] and its kinds.

use apscheduler_core::{Error, ErrorKind};

/// What can go wrong inside the store. Private: callers see the core [`Error`], whose
/// [`ErrorKind`] they match on, with the database driver's error as its `source`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// A database error, classified by [`classify`].
    #[error("{context}: {source}")]
    Sql {
        /// What the store was doing (`add_jobs`, `acquire_due_jobs`, ...).
        context: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A unique key was violated: the job id exists.
    #[error("{message}")]
    Conflict {
        /// The message shown to the caller.
        message: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The table exists but is not a job table of this crate (another program's table,
    /// or Python APScheduler's `SQLAlchemyJobStore` table under the same name).
    #[error(
        "table {table} exists but is not an apscheduler-store-sql job table (it lacks the \
         column(s) {missing}; is it another program's table, or Python APScheduler's?): \
         choose another table_name"
    )]
    ForeignTable {
        /// The job table.
        table: String,
        /// The columns it lacks.
        missing: String,
    },
    /// The run history table's name is taken by a table without its columns.
    #[error(
        "table {table} exists but is not an apscheduler-store-sql run history table (it \
         lacks the column(s) {missing}): choose another table_name for the store"
    )]
    ForeignRunsTable {
        /// The run history table.
        table: String,
        /// The columns it lacks.
        missing: String,
    },
    /// A row of the run table that cannot be read (edited by hand, or damaged).
    #[error("run table {table}: the row of run {run} cannot be read: {error}")]
    UnreadableRun {
        /// The run table.
        table: String,
        /// The run's key, as far as the row's columns say.
        run: String,
        /// Why.
        error: String,
    },
    /// Another scheduler held the migration lock for too long.
    #[error("table {table}: timed out waiting for another scheduler's schema migration")]
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    MigrationLockTimeout {
        /// The job table.
        table: String,
    },
    /// The table was written by a newer release of this crate.
    #[error(
        "table {table} has schema version {found}, but this build of apscheduler-store-sql \
         only knows versions up to {known}: upgrade apscheduler-store-sql"
    )]
    SchemaTooNew {
        /// The job table.
        table: String,
        /// The version found in the schema table.
        found: i64,
        /// The newest version this build knows.
        known: u32,
    },
}

impl StoreError {
    /// Wraps a driver error with what the store was doing.
    pub(crate) fn sql(context: impl Into<String>, source: sqlx::Error) -> Self {
        StoreError::Sql {
            context: context.into(),
            source,
        }
    }

    /// A driver error that is a unique violation becomes [`StoreError::Conflict`] with
    /// `message`; anything else is [`StoreError::Sql`] with `context`.
    pub(crate) fn insert(context: &str, message: impl Into<String>, source: sqlx::Error) -> Self {
        if is_unique_violation(&source) {
            StoreError::Conflict {
                message: message.into(),
                source,
            }
        } else {
            StoreError::sql(context, source)
        }
    }

    /// The core error kind for this error.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Sql { source, .. } => classify(source),
            StoreError::Conflict { .. } => ErrorKind::Conflict,
            StoreError::MigrationLockTimeout { .. } => ErrorKind::Unavailable,
            StoreError::UnreadableRun { .. } => ErrorKind::Serialization,
            StoreError::ForeignTable { .. }
            | StoreError::ForeignRunsTable { .. }
            | StoreError::SchemaTooNew { .. } => ErrorKind::InvalidState,
        }
    }

    /// Whether the operation may succeed when simply run again at once (a deadlock or
    /// serialization failure chosen as victim by the database).
    pub(crate) fn is_transient_conflict(&self) -> bool {
        match self {
            StoreError::Sql { source, .. } => is_transaction_rollback(source),
            _ => false,
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        let kind = err.kind();
        let message = err.to_string();
        match err {
            StoreError::Sql { source, .. } | StoreError::Conflict { source, .. } => {
                Error::new(kind, message).with_source(source)
            }
            // The store's own findings: the message says it all.
            _ => Error::new(kind, message),
        }
    }
}

/// Whether a driver error is a violation of a unique or primary key.
fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// Deadlocks and serialization failures: the database rolled the transaction back and
/// running it again is expected to succeed.
fn is_transaction_rollback(err: &sqlx::Error) -> bool {
    let Some(db) = err.as_database_error() else {
        return false;
    };
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT.
        return matches!(my.number(), 1213 | 1205);
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLITE_BUSY_SNAPSHOT: a read transaction could not be upgraded; SQLite does
        // not wait on it (plain SQLITE_BUSY comes after the busy timeout: not retried).
        return code == "517";
    }
    code.starts_with("40")
}

/// Maps a driver error onto the core error kinds:
/// - connection, pool and I/O failures, the server shutting down, too many
///   connections, lock timeouts, deadlocks and serialization failures, a busy SQLite
///   database: [`ErrorKind::Unavailable`] (retryable);
/// - unique violations: [`ErrorKind::Conflict`];
/// - a row that was expected and is missing: [`ErrorKind::NotFound`];
/// - values that cannot be decoded or encoded: [`ErrorKind::Serialization`];
/// - a bad connection URL or option, a database that does not exist, a user or password
///   the server refuses: [`ErrorKind::InvalidInput`] (a retry cannot fix them);
/// - anything else (a syntax error, a missing privilege, a full disk): [`ErrorKind::Other`].
pub(crate) fn classify(err: &sqlx::Error) -> ErrorKind {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::BeginFailed => ErrorKind::Unavailable,
        sqlx::Error::RowNotFound => ErrorKind::NotFound,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::Encode(_)
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => ErrorKind::Serialization,
        sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_) => ErrorKind::InvalidInput,
        sqlx::Error::Database(db) => classify_database(&**db),
        _ => ErrorKind::Other,
    }
}

fn classify_database(db: &dyn sqlx::error::DatabaseError) -> ErrorKind {
    if db.is_unique_violation() {
        return ErrorKind::Conflict;
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let primary = db
            .code()
            .and_then(|c| c.parse::<u32>().ok())
            .map_or(0, |c| c & 0xff);
        // BUSY, LOCKED, IOERR, FULL, CANTOPEN, PROTOCOL.
        return if matches!(primary, 5 | 6 | 10 | 13 | 14 | 15) {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Other
        };
    }
    #[cfg(feature = "mysql")]
    if let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // Too many connections, server shutdown, connection killed, lock wait timeout,
        // deadlock, query interrupted, read-only server.
        if matches!(
            e.number(),
            1040 | 1053 | 1205 | 1213 | 1317 | 1290 | 1927 | 2006 | 2013
        ) {
            if e.number() == 1290 {
                crate::read_only::seen(e.message());
            }
            return ErrorKind::Unavailable;
        }
    }
    #[cfg(feature = "mysql")]
    if let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // Access denied (for the user, or to the database), unknown database: no retry
        // can fix the configuration.
        if matches!(e.number(), 1044 | 1045 | 1049) {
            return ErrorKind::InvalidInput;
        }
    }
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    // A database that does not exist, a role or password the server refuses
    // (SQLSTATE 3D000, 28000, 28P01): a configuration error, not an outage.
    if matches!(code.as_str(), "3D000" | "28000" | "28P01") {
        return ErrorKind::InvalidInput;
    }
    // SQLSTATE classes: 08 connection exception, 40 transaction rollback (deadlock,
    // serialization failure), 53 insufficient resources, 57P0x operator intervention
    // (admin/crash shutdown, cannot connect now), 55P03 lock not available, 25006
    // read-only transaction (a standby).
    if code.starts_with("08")
        || code.starts_with("40")
        || code.starts_with("53")
        || code.starts_with("57P")
        || code == "55P03"
        || code == "25006"
    {
        if code == "25006" {
            crate::read_only::seen(db.message());
        }
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    }
}

/// An [`ErrorKind::InvalidInput`] error naming the option and the value.
pub(crate) fn invalid_input(field: &str, value: &str, reason: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("invalid value for field '{field}': '{value}': {reason}"),
    )
}

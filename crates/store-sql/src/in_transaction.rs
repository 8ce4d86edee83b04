//! Adding a job inside the caller's own transaction: the job exists if and only if that
//! transaction commits (the order and its receipt job, written together).

use apscheduler_core::{Error, ErrorKind, Job};
use async_trait::async_trait;

use crate::codec::EncodedJob;
use crate::error::StoreError;
use crate::schema::Dialect;
use crate::store::SqlJobStore;

/// The payload of the change notification a job added in a transaction sends
/// (PostgreSQL): not any scheduler's own token, so that every scheduler on the table,
/// the adding process's included, looks at the table once the transaction commits.
#[cfg(feature = "postgres")]
const IN_TRANSACTION: &str = "in-transaction";

mod sealed {
    pub trait Sealed {}
}

/// A connection of a backend [`SqlJobStore`] keeps jobs in, for
/// [`SqlJobStore::add_job_in`]: `&mut *tx` of the caller's `sqlx::Transaction`, or a
/// `&mut` connection in a transaction the caller began. Implemented for
/// `sqlx::PgConnection`, `sqlx::MySqlConnection` and `sqlx::SqliteConnection`, as the
/// crate's features enable them (the caller's sqlx must be this crate's: 0.8).
#[async_trait]
pub trait TransactionConnection: sealed::Sealed + Send {
    /// The backend this connection talks to.
    fn dialect(&self) -> Dialect;

    /// Writes `row` into `store`'s table on this connection.
    #[doc(hidden)]
    async fn insert_row(&mut self, store: &SqlJobStore, row: &EncodedJob) -> Result<(), Error>;
}

impl SqlJobStore {
    /// Adds `job` through `conn`, a connection inside the caller's transaction on this
    /// store's database: the job is stored if and only if that transaction commits, and
    /// no scheduler sees it before. Build the job with the scheduler's
    /// `Engine::build_job` (the job `add_job` would store, first run time included).
    ///
    /// ```no_run
    /// # async fn f(store: &apscheduler_store_sql::SqlJobStore, pool: sqlx::SqlitePool,
    /// #     job: apscheduler_core::Job) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("INSERT INTO orders (id) VALUES (42)").execute(&mut *tx).await?;
    /// store.add_job_in(&mut *tx, &job).await?;
    /// tx.commit().await?; // both, or neither
    /// # Ok(()) }
    /// ```
    ///
    /// Once the transaction commits, PostgreSQL wakes every scheduler on the table (the
    /// notification is part of the transaction); on MySQL/MariaDB they see it at their
    /// next look at the table, and on SQLite at the scheduler's next pass: call its
    /// `wakeup()` after the commit for a job due sooner. No event is sent for it, as
    /// for a job another process added.
    ///
    /// # Errors
    /// `InvalidInput` when `conn` talks to another backend than this store's;
    /// `Conflict` when a job with this id exists (the caller's transaction is then
    /// aborted on PostgreSQL, as after any failed statement); `Serialization` when the
    /// job cannot be stored; `Unavailable` when this store cannot reach its database to
    /// create its tables first.
    pub async fn add_job_in<C>(&self, conn: &mut C, job: &Job) -> Result<(), Error>
    where
        C: TransactionConnection + ?Sized,
    {
        if conn.dialect() != self.backend() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "add_job_in: this store keeps its jobs in {}, the connection is to {}",
                    self.backend(),
                    conn.dialect()
                ),
            ));
        }
        let row = self.encode(job)?;
        // The tables exist before the caller's transaction writes to them.
        self.driver().await?;
        conn.insert_row(self, &row).await
    }
}

#[cfg(feature = "postgres")]
impl sealed::Sealed for sqlx::PgConnection {}

#[cfg(feature = "postgres")]
#[async_trait]
impl TransactionConnection for sqlx::PgConnection {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn insert_row(&mut self, store: &SqlJobStore, row: &EncodedJob) -> Result<(), Error> {
        let rows = std::slice::from_ref(row);
        let names = &store.link.names;
        let sql = crate::postgres::insert_sql(&names.jobs);
        crate::postgres::bind_insert(sqlx::query(&sql), rows)
            .execute(&mut *self)
            .await
            .map_err(|e| {
                Error::from(StoreError::insert(
                    "PostgreSQL: add_job_in",
                    crate::driver::conflict_message(rows),
                    e,
                ))
            })?;
        // Delivered when the transaction commits, never when it rolls back.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(names.channel.as_str())
            .bind(IN_TRANSACTION)
            .execute(&mut *self)
            .await
            .map_err(|e| Error::from(StoreError::sql("PostgreSQL: add_job_in", e)))?;
        Ok(())
    }
}

/// `INSERT INTO <jobs> (...) VALUES (...)` of one row (MySQL/MariaDB and SQLite; the
/// claim partition is a generated column or unused there).
#[cfg(any(feature = "sqlite", feature = "mysql"))]
fn insert_one(store: &SqlJobStore) -> String {
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        store.link.names.jobs,
        crate::shared::WRITTEN_COLUMNS,
        crate::shared::row_values(1)
    )
}

/// The connection of a backend whose rows are bound one value at a time
/// ([`crate::shared::bind_rows`]): MySQL/MariaDB and SQLite.
macro_rules! bound_row_connection {
    ($feature:literal, $conn:ty, $dialect:expr, $context:literal) => {
        #[cfg(feature = $feature)]
        impl sealed::Sealed for $conn {}

        #[cfg(feature = $feature)]
        #[async_trait]
        impl TransactionConnection for $conn {
            fn dialect(&self) -> Dialect {
                $dialect
            }

            async fn insert_row(
                &mut self,
                store: &SqlJobStore,
                row: &EncodedJob,
            ) -> Result<(), Error> {
                let rows = std::slice::from_ref(row);
                let sql = insert_one(store);
                crate::shared::bind_rows(sqlx::query(&sql), rows)
                    .execute(&mut *self)
                    .await
                    .map_err(|e| {
                        Error::from(StoreError::insert(
                            $context,
                            crate::driver::conflict_message(rows),
                            e,
                        ))
                    })?;
                Ok(())
            }
        }
    };
}

bound_row_connection!(
    "mysql",
    sqlx::MySqlConnection,
    Dialect::MySql,
    "MySQL: add_job_in"
);
bound_row_connection!(
    "sqlite",
    sqlx::SqliteConnection,
    Dialect::Sqlite,
    "SQLite: add_job_in"
);

//! Shared by the integration tests: server URLs from the environment, a test per
//! backend (`on_every_backend!`), random table names, sample jobs, temporary SQLite
//! files, raw SQL access and cleanup.
#![allow(dead_code, unreachable_pub)] // Each test file uses part of it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use apscheduler_core::Job;
use apscheduler_store_sql::SqlJobStore;
use apscheduler_testkit::store::{at, interval_trigger, sample_job};
use sqlx::mysql::MySqlPool;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

/// The PostgreSQL server the tests use (`postgres://root@127.0.0.1:5432/test`).
pub const POSTGRES_ENV: &str = "APS_TEST_POSTGRES_URL";
/// The MySQL/MariaDB server the tests use (`mysql://root@127.0.0.1:3306/test`).
pub const MYSQL_ENV: &str = "APS_TEST_MYSQL_URL";

/// The server URL in `var`, by the testkit's one rule
/// ([`apscheduler_testkit::server`]): `None` (after a visible notice) when it is unset
/// outside CI; a failure under CI.
pub fn server_url(var: &str, test: &str) -> Option<String> {
    let example = if var == MYSQL_ENV {
        "mysql://root@127.0.0.1:3306/test"
    } else {
        "postgres://root@127.0.0.1:5432/test"
    };
    apscheduler_testkit::server::server_url(var, example, test)
}

/// Runs each `check(&Tables)` named against SQLite (a temporary file), PostgreSQL and
/// MySQL/MariaDB: a test per backend, in the modules `sqlite`, `postgres` and `mysql`.
/// A server's tests return early, after a notice, when its URL is not set ([`server_url`]).
#[allow(unused_macros)] // Not every test file runs checks on every backend.
macro_rules! on_every_backend {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let dir = $crate::support::TempDir::new();
                let tables = $crate::support::Tables::new(&dir.sqlite_url("jobs.sqlite"));
                super::$check(&tables).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(url) = $crate::support::server_url($crate::support::POSTGRES_ENV, concat!("postgres::", stringify!($check))) else {
                    return;
                };
                super::$check(&$crate::support::Tables::new(&url)).await;
            })*
        }
        mod mysql {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(url) = $crate::support::server_url($crate::support::MYSQL_ENV, concat!("mysql::", stringify!($check))) else {
                    return;
                };
                super::$check(&$crate::support::Tables::new(&url)).await;
            })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_every_backend;

/// A table name of this test's own.
pub fn random_table() -> String {
    apscheduler_testkit::server::random_namespace()
}

/// A job `id` due at `at(t)`, every minute (the testkit's sample job).
pub fn job(id: &str, t: i64) -> Job {
    sample_job(id, Some(at(t)), interval_trigger(60))
}

/// The ids of `jobs`, in their order.
pub fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| &*j.id).collect()
}

/// A temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("aps-store-sql-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir { path }
    }

    /// A `sqlite:` URL for the file `name` in this directory.
    pub fn sqlite_url(&self, name: &str) -> String {
        format!("sqlite:{}", self.path.join(name).display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Raw SQL on the test database, to look at and tamper with rows.
#[derive(Debug, Clone)]
pub enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        if url.starts_with("sqlite:") {
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
                .expect("sqlite URL")
                .create_if_missing(true);
            Raw::Sqlite(
                SqlitePool::connect_with(options)
                    .await
                    .expect("connect (sqlite)"),
            )
        } else if url.starts_with("postgres") {
            Raw::Postgres(PgPool::connect(url).await.expect("connect (postgres)"))
        } else {
            Raw::MySql(MySqlPool::connect(url).await.expect("connect (mysql)"))
        }
    }

    /// `name` quoted for this database.
    pub fn quote(&self, name: &str) -> String {
        match self {
            Raw::MySql(_) => format!("`{name}`"),
            _ => format!("\"{name}\""),
        }
    }

    pub async fn exec(&self, sql: &str) {
        let result = match self {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Raw::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Raw::MySql(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A statement that may fail.
    pub async fn try_exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Raw::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Raw::MySql(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
    }

    /// The first column of the first row, as text (NULL and no row: `None`).
    pub async fn text(&self, sql: &str) -> Option<String> {
        let result: Result<Option<Option<String>>, _> = match self {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_optional(p).await,
            Raw::Postgres(p) => sqlx::query_scalar(sql).fetch_optional(p).await,
            Raw::MySql(p) => sqlx::query_scalar(sql).fetch_optional(p).await,
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}")).flatten()
    }

    /// The first column of the first row, as an integer (NULL and no row: `None`).
    pub async fn int(&self, sql: &str) -> Option<i64> {
        use sqlx::Row;
        fn get<R: Row>(row: &R) -> Option<i64>
        where
            usize: sqlx::ColumnIndex<R>,
            i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            row.try_get::<Option<i64>, _>(0)
                .or_else(|_| row.try_get::<Option<i32>, _>(0).map(|v| v.map(i64::from)))
                .expect("an integer column")
        }
        let fail = |e: sqlx::Error| -> ! { panic!("{sql}: {e}") };
        match self {
            Raw::Sqlite(p) => match sqlx::query(sql).fetch_optional(p).await {
                Ok(row) => row.and_then(|r| get(&r)),
                Err(e) => fail(e),
            },
            Raw::Postgres(p) => match sqlx::query(sql).fetch_optional(p).await {
                Ok(row) => row.and_then(|r| get(&r)),
                Err(e) => fail(e),
            },
            Raw::MySql(p) => match sqlx::query(sql).fetch_optional(p).await {
                Ok(row) => row.and_then(|r| get(&r)),
                Err(e) => fail(e),
            },
        }
    }

    /// Inserts a job row as is, bypassing the store (to plant damaged rows).
    pub async fn insert_row(
        &self,
        table: &str,
        id: &str,
        next_run_time: Option<i64>,
        state: &str,
        format_version: i32,
    ) {
        let t = self.quote(table);
        let result = match self {
            Raw::Postgres(p) => {
                sqlx::query(&format!(
                    "INSERT INTO {t} (id, next_run_time, paused, state, format_version) VALUES ($1, $2, $3, $4, $5)"
                ))
                .bind(id)
                .bind(next_run_time)
                .bind(next_run_time.is_none())
                .bind(state)
                .bind(format_version)
                .execute(p)
                .await
                .map(|_| ())
            }
            Raw::Sqlite(p) => {
                sqlx::query(&format!(
                    "INSERT INTO {t} (id, next_run_time, paused, state, format_version) VALUES (?, ?, ?, ?, ?)"
                ))
                .bind(id)
                .bind(next_run_time)
                .bind(next_run_time.is_none())
                .bind(state)
                .bind(format_version)
                .execute(p)
                .await
                .map(|_| ())
            }
            Raw::MySql(p) => {
                sqlx::query(&format!(
                    "INSERT INTO {t} (id, next_run_time, paused, state, format_version) VALUES (?, ?, ?, ?, ?)"
                ))
                .bind(id)
                .bind(next_run_time)
                .bind(next_run_time.is_none())
                .bind(state)
                .bind(format_version)
                .execute(p)
                .await
                .map(|_| ())
            }
        };
        result.unwrap_or_else(|e| panic!("insert row {id}: {e}"));
    }

    pub async fn close(&self) {
        match self {
            Raw::Sqlite(p) => p.close().await,
            Raw::Postgres(p) => p.close().await,
            Raw::MySql(p) => p.close().await,
        }
    }
}

/// Hands out random table names on one database and drops those tables (and their
/// schema, run history and node tables) when dropped, also when a test fails.
#[derive(Debug)]
pub struct Tables {
    url: String,
    names: Arc<Mutex<Vec<String>>>,
}

impl Tables {
    pub fn new(url: &str) -> Self {
        Tables {
            url: url.to_owned(),
            names: Arc::default(),
        }
    }

    /// A new random table name, dropped at the end.
    pub fn table(&self) -> String {
        let name = random_table();
        self.names.lock().unwrap().push(name.clone());
        name
    }

    /// A store on `table` (two of them share its jobs).
    pub fn store_on(&self, table: &str) -> SqlJobStore {
        SqlJobStore::builder(self.url.clone())
            .table_name(table)
            .build()
            .expect("build the store")
    }

    /// A store on a new random table.
    pub fn store(&self) -> SqlJobStore {
        SqlJobStore::builder(self.url.clone())
            .table_name(self.table())
            .build()
            .expect("build the store")
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() || self.url.starts_with("sqlite:") {
            return;
        }
        let url = self.url.clone();
        // Drop may run inside a runtime (or while unwinding): use a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let raw = Raw::connect(&url).await;
                for table in names {
                    let store = SqlJobStore::builder(url.clone())
                        .table_name(table.clone())
                        .build()
                        .expect("store");
                    let schema = store.schema_table_name().to_owned();
                    let runs = store.runs_table_name().to_owned();
                    let nodes = store.history().nodes_table_name().to_owned();
                    let waiters = format!("{table}_waiters");
                    let leases = format!("{table}_run_leases");
                    let fences = format!("{table}_run_fences");
                    for t in [table, schema, runs, nodes, waiters, leases, fences] {
                        let sql = format!("DROP TABLE IF EXISTS {}", raw.quote(&t));
                        if let Err(e) = raw.try_exec(&sql).await {
                            eprintln!("cleanup: {sql}: {e}");
                        }
                    }
                }
                raw.close().await;
            });
        });
        let _ = cleanup.join();
    }
}

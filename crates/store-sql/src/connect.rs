//! Connection URLs: which backend, and its connect options; and the pools built from
//! them (only once a store is started, inside the caller's tokio runtime).

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::Error;

use crate::driver::Driver;
use crate::error::invalid_input;
use crate::schema::{Dialect, Names};

/// Pool settings (see [`SqlJobStoreBuilder`](crate::SqlJobStoreBuilder)).
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    pub(crate) max_connections: u32,
    pub(crate) min_connections: u32,
    pub(crate) acquire_timeout: Duration,
    /// How long the first connection to a server may take (`None`: the URL's
    /// `connect_timeout` parameter for PostgreSQL, else 5 s).
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) test_before_acquire: bool,
    pub(crate) sqlite_busy_timeout: Duration,
    /// SQLite's `synchronous` pragma: `true` = FULL (every commit synced to disk),
    /// `false` = NORMAL (WAL synced at checkpoints).
    pub(crate) sqlite_sync_full: bool,
    /// SQLite's page cache per connection, in KiB (`cache_size = -N`); `None` keeps
    /// SQLite's default (2,000 KiB).
    pub(crate) sqlite_cache_kib: Option<u32>,
    /// SQLite's `mmap_size` pragma, in bytes (`None`: SQLite's default, no mapping).
    pub(crate) sqlite_mmap_bytes: Option<u64>,
    /// Checkpoint the WAL from a task of its own at this interval instead of in the
    /// commit that fills it (`None`: SQLite's automatic checkpoints).
    pub(crate) sqlite_checkpoint_every: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: None,
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            test_before_acquire: true,
            sqlite_busy_timeout: Duration::from_secs(5),
            sqlite_sync_full: false,
            sqlite_cache_kib: None,
            sqlite_mmap_bytes: None,
            sqlite_checkpoint_every: None,
        }
    }
}

/// A parsed connection URL.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    #[cfg(feature = "sqlite")]
    Sqlite {
        options: sqlx::sqlite::SqliteConnectOptions,
        /// `sqlite::memory:`: one connection, kept open, or the database is lost.
        in_memory: bool,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        options: sqlx::postgres::PgConnectOptions,
        /// The URL's `connect_timeout` parameter (seconds, as libpq reads it; 0 or
        /// absent: none).
        url_connect_timeout: Option<Duration>,
    },
    #[cfg(feature = "mysql")]
    MySql(sqlx::mysql::MySqlConnectOptions),
}

impl Target {
    /// The database file of a file-backed SQLite target.
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite_file(&self) -> Option<&std::path::Path> {
        match self {
            Target::Sqlite {
                options,
                in_memory: false,
            } => Some(options.get_filename()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            Target::Sqlite { .. } => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Target::Postgres { .. } => Dialect::Postgres,
            #[cfg(feature = "mysql")]
            Target::MySql(_) => Dialect::MySql,
        }
    }
}

/// The URL with its password replaced by `***`, for messages and `Debug`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}://{}:***{}",
            &url[..scheme_end],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(not(all(feature = "sqlite", feature = "postgres", feature = "mysql")))]
fn not_built(url: &str, backend: &str, feature: &str) -> Error {
    invalid_input(
        "url",
        &redact(url),
        &format!(
            "this build of apscheduler-store-sql has no {backend} support (enable its `{feature}` feature)"
        ),
    )
}

/// Reads a connection URL.
///
/// Schemes: `sqlite:`, `postgres:`/`postgresql:`, `mysql:`/`mariadb:`, each optionally
/// with SQLAlchemy's `+driver` suffix (`postgresql+psycopg2://`), which is ignored.
///
/// # Errors
/// `InvalidInput` naming the field `url` (with the password masked) for an unknown
/// scheme, a backend this build lacks, or a URL the driver refuses.
pub(crate) fn parse_url(url: &str) -> Result<Target, Error> {
    let Some(colon) = url.find(':') else {
        return Err(invalid_input(
            "url",
            &redact(url),
            "not a database URL (expected sqlite:, postgres:, postgresql:, mysql: or mariadb:)",
        ));
    };
    let scheme = url[..colon].to_ascii_lowercase();
    let base = scheme.split('+').next().unwrap_or_default().to_owned();
    let rest = &url[colon..];
    match base.as_str() {
        "sqlite" => parse_sqlite(url, &rest[1..]),
        "postgres" | "postgresql" => parse_postgres(url, rest),
        "mysql" | "mariadb" => parse_mysql(url, rest),
        _ => Err(invalid_input(
            "url",
            &redact(url),
            &format!(
                "unknown database scheme '{scheme}' (expected sqlite:, postgres:, postgresql:, mysql: or mariadb:)"
            ),
        )),
    }
}

#[cfg(feature = "postgres")]
fn parse_postgres(url: &str, rest: &str) -> Result<Target, Error> {
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(&format!("postgres{rest}"))
        .map_err(|e| invalid_input("url", &redact(url), &e.to_string()))?;
    let url_connect_timeout = url
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "connect_timeout")
        .map(|(_, value)| {
            value.parse::<u64>().map_err(|_| {
                invalid_input(
                    "url",
                    &redact(url),
                    &format!("connect_timeout={value}: expected whole seconds"),
                )
            })
        })
        .transpose()?
        .filter(|secs| *secs > 0)
        .map(Duration::from_secs);
    Ok(Target::Postgres {
        options,
        url_connect_timeout,
    })
}

#[cfg(not(feature = "postgres"))]
fn parse_postgres(url: &str, _rest: &str) -> Result<Target, Error> {
    Err(not_built(url, "PostgreSQL", "postgres"))
}

#[cfg(feature = "mysql")]
fn parse_mysql(url: &str, rest: &str) -> Result<Target, Error> {
    use std::str::FromStr;
    let options = sqlx::mysql::MySqlConnectOptions::from_str(&format!("mysql{rest}"))
        .map_err(|e| invalid_input("url", &redact(url), &e.to_string()))?;
    Ok(Target::MySql(options))
}

#[cfg(not(feature = "mysql"))]
fn parse_mysql(url: &str, _rest: &str) -> Result<Target, Error> {
    Err(not_built(url, "MySQL/MariaDB", "mysql"))
}

/// SQLite URLs, after `sqlite:`:
/// - `:memory:`, empty, `//`, `//:memory:`, `///:memory:`: a private in-memory database;
/// - `///path`: SQLAlchemy's form, `path` relative to the working directory
///   (`sqlite:///jobs.sqlite`); `////abs/path` is absolute;
/// - `//path`: sqlx's form, as `path`;
/// - anything else: a path (`sqlite:jobs.db`, `sqlite:/var/lib/aps/jobs.db`).
///
/// A query may set `mode=ro` (read only), `mode=rw` (must exist) or `mode=rwc` (create
/// if missing, the default).
#[cfg(feature = "sqlite")]
fn parse_sqlite(url: &str, rest: &str) -> Result<Target, Error> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    let (location, query) = match rest.split_once('?') {
        Some((l, q)) => (l, Some(q)),
        None => (rest, None),
    };
    let path = if let Some(p) = location.strip_prefix("///") {
        p
    } else if let Some(p) = location.strip_prefix("//") {
        p
    } else {
        location
    };
    let mut options = SqliteConnectOptions::new();
    let mut create = true;
    let mut read_only = false;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("mode", "rwc")) => {}
            Some(("mode", "rw")) => create = false,
            Some(("mode", "ro")) => {
                create = false;
                read_only = true;
            }
            _ => {
                return Err(invalid_input(
                    "url",
                    url,
                    &format!("unsupported SQLite URL parameter '{pair}' (supported: mode=ro, mode=rw, mode=rwc)"),
                ))
            }
        }
    }
    if path.is_empty() || path == ":memory:" {
        return Ok(Target::Sqlite {
            options: options.in_memory(true),
            in_memory: true,
        });
    }
    // Resolved now, against the working directory of the process building the store,
    // so connections opened later (after a `chdir`) reach the same file.
    let path = std::path::absolute(path)
        .map_err(|e| invalid_input("url", url, &format!("cannot resolve the path: {e}")))?;
    options = options
        .filename(path)
        .create_if_missing(create)
        .read_only(read_only)
        .journal_mode(SqliteJournalMode::Wal);
    Ok(Target::Sqlite {
        options,
        in_memory: false,
    })
}

#[cfg(not(feature = "sqlite"))]
fn parse_sqlite(url: &str, _rest: &str) -> Result<Target, Error> {
    Err(not_built(url, "SQLite", "sqlite"))
}

/// Builds the pool (lazily: no connection is made here) and the backend over it.
/// Must run inside a tokio runtime: the pool's maintenance task is spawned on it.
/// Refuses, before connecting, what no retry can fix: an SQLite file whose folder does
/// not exist (`InvalidInput` naming `url`).
///
/// # Errors
/// `InvalidInput`.
pub(crate) fn check_reachable_config(target: &Target, url: &str) -> Result<(), Error> {
    #[cfg(feature = "sqlite")]
    if let Target::Sqlite {
        options,
        in_memory: false,
    } = target
    {
        let file = options.get_filename();
        if let Some(folder) = file.parent().filter(|f| !f.as_os_str().is_empty()) {
            if !folder.is_dir() {
                return Err(crate::error::invalid_input(
                    "url",
                    &redact(url),
                    &format!("the folder {} does not exist", folder.display()),
                ));
            }
        }
    }
    let _ = (target, url);
    Ok(())
}

/// With background checkpoints, the WAL size (in pages) at which a commit checkpoints
/// all the same (SQLite's default is 1,000).
#[cfg(feature = "sqlite")]
pub(crate) const WAL_SAFETY_PAGES: u32 = 20_000;

/// Rows buffered between a SQLite connection's thread and its reader.
#[cfg(feature = "sqlite")]
const SQLITE_ROW_CHANNEL: usize = 1024;

pub(crate) fn open(target: &Target, config: &PoolConfig, names: Names) -> Arc<dyn Driver> {
    match target {
        #[cfg(feature = "sqlite")]
        Target::Sqlite { options, in_memory } => {
            let synchronous = if config.sqlite_sync_full {
                sqlx::sqlite::SqliteSynchronous::Full
            } else {
                sqlx::sqlite::SqliteSynchronous::Normal
            };
            let mut options = options.clone();
            if let Some(kib) = config.sqlite_cache_kib {
                options = options.pragma("cache_size", format!("-{kib}"));
            }
            if let Some(bytes) = config.sqlite_mmap_bytes {
                options = options.pragma("mmap_size", bytes.to_string());
            }
            // An in-memory database has no WAL to checkpoint.
            let checkpoint_every = config.sqlite_checkpoint_every.filter(|_| !*in_memory);
            if checkpoint_every.is_some() {
                // Commits do not checkpoint (and sync the file) at SQLite's default of
                // 1,000 pages of WAL; a background task does. The bound left is a safety net, should
                // the task fall behind.
                options = options.pragma("wal_autocheckpoint", WAL_SAFETY_PAGES.to_string());
            }
            let options = options
                .busy_timeout(config.sqlite_busy_timeout)
                .synchronous(synchronous)
                // Rows cross from the connection's thread in this many at a time (sqlx's
                // default, 50, puts a thread hand-off on every 50 rows: listing 10,000
                // jobs spent more time switching threads than reading).
                .row_buffer_size(SQLITE_ROW_CHANNEL);
            let checkpoints = checkpoint_every
                .map(|every| crate::sqlite::Checkpoints::start(options.clone(), every));
            let pool = if *in_memory {
                // Every connection would open its own empty database: keep exactly one.
                sqlx::pool::PoolOptions::new()
                    .max_connections(1)
                    .min_connections(0)
                    .acquire_timeout(config.acquire_timeout)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .test_before_acquire(false)
                    .connect_lazy_with(options)
            } else {
                pool_options(config).connect_lazy_with(options)
            };
            Arc::new(crate::sqlite::SqliteDriver::new(pool, names).with_checkpoints(checkpoints))
        }
        #[cfg(feature = "postgres")]
        Target::Postgres { options, .. } => {
            let pool = crate::read_only::fenced(pool_options(config), config.test_before_acquire)
                .connect_lazy_with(options.clone());
            Arc::new(crate::postgres::PgDriver::new(
                pool,
                names,
                config.max_connections,
                config.test_before_acquire,
            ))
        }
        #[cfg(feature = "mysql")]
        Target::MySql(options) => {
            let pool = crate::read_only::fenced(
                pool_options::<sqlx::MySql>(config),
                config.test_before_acquire,
            )
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Claims lock only the rows they return: no gap locks.
                    sqlx::Executor::execute(
                        &mut *conn,
                        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options.clone());
            Arc::new(crate::mysql::MySqlDriver::new(
                pool,
                names,
                config.max_connections,
                config.test_before_acquire,
            ))
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
fn pool_options<DB: sqlx::Database>(config: &PoolConfig) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(config.min_connections)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(config.idle_timeout)
        .max_lifetime(config.max_lifetime)
        .test_before_acquire(config.test_before_acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://user:secret@host:5432/db"),
            "postgres://user:***@host:5432/db"
        );
        assert_eq!(
            redact("mysql://root@127.0.0.1/test"),
            "mysql://root@127.0.0.1/test"
        );
        assert_eq!(redact("sqlite:jobs.db"), "sqlite:jobs.db");
        assert_eq!(
            redact("postgres://u:p@ss@h/db?x=@"),
            "postgres://u:***@h/db?x=@"
        );
    }

    #[test]
    fn unknown_schemes() {
        for url in ["", "jobs.db", "oracle://x", "redis://localhost"] {
            let err = parse_url(url).unwrap_err();
            assert_eq!(err.kind(), apscheduler_core::ErrorKind::InvalidInput);
            assert!(err.message().contains("'url'"), "{err}");
        }
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_urls() {
        fn path(url: &str) -> Option<String> {
            match parse_url(url).unwrap() {
                Target::Sqlite {
                    in_memory: true, ..
                } => None,
                Target::Sqlite { options, .. } => {
                    Some(options.get_filename().to_string_lossy().into_owned())
                }
                #[allow(unreachable_patterns)]
                _ => panic!("not sqlite"),
            }
        }
        let cwd = std::env::current_dir().unwrap();
        let rel = |p: &str| Some(cwd.join(p).to_string_lossy().into_owned());
        assert_eq!(path("sqlite:///jobs.sqlite"), rel("jobs.sqlite"));
        assert_eq!(
            path("sqlite:////tmp/jobs.sqlite").as_deref(),
            Some("/tmp/jobs.sqlite")
        );
        assert_eq!(path("sqlite://jobs.db"), rel("jobs.db"));
        assert_eq!(path("sqlite:jobs.db"), rel("jobs.db"));
        assert_eq!(
            path("sqlite:/var/x.db?mode=rw").as_deref(),
            Some("/var/x.db")
        );
        assert_eq!(path("sqlite+pysqlite:///a.db"), rel("a.db"));
        for memory in [
            "sqlite::memory:",
            "sqlite://",
            "sqlite:",
            "sqlite:///:memory:",
        ] {
            assert_eq!(path(memory), None, "{memory}");
        }
        assert!(parse_url("sqlite:x.db?cache=shared").is_err());
    }

    #[cfg(all(feature = "postgres", feature = "mysql"))]
    #[test]
    fn server_urls() {
        assert!(matches!(
            parse_url("postgresql+psycopg2://u:p@localhost/db").unwrap(),
            Target::Postgres { .. }
        ));
        assert!(matches!(
            parse_url("postgres://localhost/db").unwrap(),
            Target::Postgres {
                url_connect_timeout: None,
                ..
            }
        ));
        assert!(matches!(
            parse_url("postgres://localhost/db?connect_timeout=7").unwrap(),
            Target::Postgres {
                url_connect_timeout: Some(t),
                ..
            } if t == Duration::from_secs(7)
        ));
        assert!(parse_url("postgres://localhost/db?connect_timeout=soon").is_err());
        assert!(matches!(
            parse_url("mariadb://root@localhost/test").unwrap(),
            Target::MySql(_)
        ));
        assert!(matches!(
            parse_url("mysql+pymysql://root@localhost/test").unwrap(),
            Target::MySql(_)
        ));
    }
}

//! The first connection to the database, made directly rather than through the pool
//! and bounded by the connect time-out: a server that cannot be reached fails with
//! the cause (refused, unknown host, no answer) instead of the pool's "pool timed out".

use std::time::{Duration, Instant};

use apscheduler_core::reach::{self, Cause, DEFAULT_CONNECT_TIMEOUT};
use apscheduler_core::{Error, ErrorKind};
use sqlx::Connection as _;

use crate::connect::Target;
use crate::error::classify;

/// The connect time-out in force: the builder's, else a PostgreSQL URL's
/// `connect_timeout` parameter, else [`DEFAULT_CONNECT_TIMEOUT`].
pub(crate) fn connect_timeout(target: &Target, configured: Option<Duration>) -> Duration {
    if let Some(t) = configured {
        return t;
    }
    match target {
        #[cfg(feature = "postgres")]
        Target::Postgres {
            url_connect_timeout: Some(t),
            ..
        } => *t,
        _ => DEFAULT_CONNECT_TIMEOUT,
    }
}

/// The store's name and the address it reaches, for messages.
fn describe(target: &Target) -> (&'static str, String, String) {
    match target {
        #[cfg(feature = "sqlite")]
        Target::Sqlite { options, .. } => {
            let file = options.get_filename().display().to_string();
            ("SQLite", file.clone(), file)
        }
        #[cfg(feature = "postgres")]
        Target::Postgres { options, .. } => (
            "PostgreSQL",
            match options.get_socket() {
                Some(socket) => socket.display().to_string(),
                None => format!("{}:{}", options.get_host(), options.get_port()),
            },
            options.get_host().to_owned(),
        ),
        #[cfg(feature = "mysql")]
        Target::MySql(options) => (
            "MySQL/MariaDB",
            match options.get_socket() {
                Some(socket) => socket.display().to_string(),
                None => format!("{}:{}", options.get_host(), options.get_port()),
            },
            options.get_host().to_owned(),
        ),
    }
}

/// Opens one connection to the database and closes it, within `timeout`. An
/// in-memory SQLite database has nothing to reach.
///
/// # Errors
/// `Unavailable` naming the backend, the address and the cause (see
/// [`apscheduler_core::reach`]); a refusal no retry fixes (unknown database, a user or
/// password the server refuses) keeps its kind, `InvalidInput`.
pub(crate) async fn check(target: &Target, timeout: Duration) -> Result<(), Error> {
    let started = Instant::now();
    let attempt = async {
        match target {
            #[cfg(feature = "sqlite")]
            Target::Sqlite {
                in_memory: true, ..
            } => Ok(()),
            #[cfg(feature = "sqlite")]
            Target::Sqlite { options, .. } => {
                // A busy file is a reachable one: schedulers opening a new database
                // together get BUSY at once (not after the busy timeout) while one of
                // them switches it to WAL. Tried again until the time-out.
                loop {
                    match sqlx::sqlite::SqliteConnection::connect_with(options).await {
                        Err(e) if crate::sqlite::is_busy(&e) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        connected => break connected?.close().await,
                    }
                }
            }
            #[cfg(feature = "postgres")]
            Target::Postgres { options, .. } => {
                sqlx::postgres::PgConnection::connect_with(options)
                    .await?
                    .close()
                    .await
            }
            #[cfg(feature = "mysql")]
            Target::MySql(options) => {
                sqlx::mysql::MySqlConnection::connect_with(options)
                    .await?
                    .close()
                    .await
            }
        }
    };
    let (store, address, host) = describe(target);
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if classify(&e) == ErrorKind::Unavailable => {
            let cause = Cause::of_error(&e, &host);
            Err(
                reach::unreachable(store, &address, &cause, started.elapsed(), timeout)
                    .with_source(e),
            )
        }
        Ok(Err(e)) => Err(Error::new(
            classify(&e),
            format!("the {store} store at {address} refused the connection: {e}"),
        )
        .with_source(e)),
        Err(_) => Err(reach::unreachable(
            store,
            &address,
            &Cause::TimedOut(timeout),
            started.elapsed(),
            timeout,
        )),
    }
}

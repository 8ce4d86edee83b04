//! `type = "sqlalchemy"`: the SQL store's configuration and registration.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::codec::StateFormat;
use apscheduler_core::component::{
    seconds, ComponentRegistry, ConfigTable, Registration, UrlOptions,
};
use apscheduler_core::{Error, JobStore};
use serde::{Deserialize, Serialize};

use crate::{SqlJobStore, SqlJobStoreBuilder};

/// The SQL store's options, one per builder method
/// (`type = "sqlalchemy"  url = "postgres://..."  tablename = "jobs"  max_connections = 4`).
/// Durations are seconds; `idle_timeout` and `max_lifetime` also take `"none"` (keep
/// connections).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlStoreConfig {
    /// The database URL (required): `sqlite:///path`, `postgres://...`, `mysql://...`.
    pub url: String,
    /// The job table ([`SqlJobStoreBuilder::table_name`]; APScheduler's `tablename`,
    /// `table_name` is accepted too).
    pub tablename: Option<String>,
    /// [`SqlJobStoreBuilder::max_connections`].
    pub max_connections: Option<u32>,
    /// [`SqlJobStoreBuilder::min_connections`].
    pub min_connections: Option<u32>,
    /// [`SqlJobStoreBuilder::acquire_timeout`].
    #[serde(default, with = "seconds")]
    pub acquire_timeout: Option<Duration>,
    /// [`SqlJobStoreBuilder::connect_timeout`].
    #[serde(default, with = "seconds")]
    pub connect_timeout: Option<Duration>,
    /// [`SqlJobStoreBuilder::idle_timeout`]; `Some(None)` keeps idle connections.
    pub idle_timeout: Option<Option<f64>>,
    /// [`SqlJobStoreBuilder::max_lifetime`]; `Some(None)` keeps connections.
    pub max_lifetime: Option<Option<f64>>,
    /// [`SqlJobStoreBuilder::test_before_acquire`].
    pub test_before_acquire: Option<bool>,
    /// [`SqlJobStoreBuilder::sqlite_busy_timeout`].
    #[serde(default, with = "seconds")]
    pub sqlite_busy_timeout: Option<Duration>,
    /// [`SqlJobStoreBuilder::sqlite_sync_full`].
    pub sqlite_sync_full: Option<bool>,
    /// [`SqlJobStoreBuilder::max_state_bytes`].
    pub max_state_bytes: Option<usize>,
    /// [`SqlJobStoreBuilder::state_format`] (`json` or `bincode`).
    pub state_format: Option<StateFormat>,
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

impl SqlStoreConfig {
    /// Reads the options of a configured component.
    ///
    /// # Errors
    /// `InvalidInput` naming the option and the value; a missing `url`.
    pub fn from_table(table: &ConfigTable) -> Result<Self, Error> {
        let count = |key: &str| -> Result<Option<u32>, Error> {
            match (table.get(key).cloned(), table.get_u64(key)?) {
                (Some(raw), Some(n)) => u32::try_from(n)
                    .map(Some)
                    .map_err(|_| table.invalid(key, &raw, "expected a whole number below 2^32")),
                _ => Ok(None),
            }
        };
        Ok(SqlStoreConfig {
            url: table.require_str("url")?.to_owned(),
            tablename: table
                .get_str("tablename")?
                .or(table.get_str("table_name")?)
                .map(str::to_owned),
            max_connections: count("max_connections")?,
            min_connections: count("min_connections")?,
            acquire_timeout: table.get_seconds("acquire_timeout")?,
            connect_timeout: table.get_seconds("connect_timeout")?,
            idle_timeout: table.get_optional_seconds("idle_timeout")?.map(secs),
            max_lifetime: table.get_optional_seconds("max_lifetime")?.map(secs),
            test_before_acquire: table.get_bool("test_before_acquire")?,
            sqlite_busy_timeout: table.get_seconds("sqlite_busy_timeout")?,
            sqlite_sync_full: table.get_bool("sqlite_sync_full")?,
            max_state_bytes: table.get_positive("max_state_bytes")?,
            state_format: table.get_str("state_format")?.map(str::parse).transpose()?,
        })
    }

    /// The builder these options describe.
    pub fn builder(&self) -> SqlJobStoreBuilder {
        let mut b = SqlJobStore::builder(self.url.clone());
        if let Some(name) = &self.tablename {
            b = b.table_name(name.clone());
        }
        if let Some(n) = self.max_connections {
            b = b.max_connections(n);
        }
        if let Some(n) = self.min_connections {
            b = b.min_connections(n);
        }
        if let Some(t) = self.acquire_timeout {
            b = b.acquire_timeout(t);
        }
        if let Some(t) = self.connect_timeout {
            b = b.connect_timeout(t);
        }
        if let Some(t) = self.idle_timeout {
            b = b.idle_timeout(t.map(Duration::from_secs_f64));
        }
        if let Some(t) = self.max_lifetime {
            b = b.max_lifetime(t.map(Duration::from_secs_f64));
        }
        if let Some(test) = self.test_before_acquire {
            b = b.test_before_acquire(test);
        }
        if let Some(t) = self.sqlite_busy_timeout {
            b = b.sqlite_busy_timeout(t);
        }
        if let Some(full) = self.sqlite_sync_full {
            b = b.sqlite_sync_full(full);
        }
        if let Some(n) = self.max_state_bytes {
            b = b.max_state_bytes(n);
        }
        if let Some(f) = self.state_format {
            b = b.state_format(f);
        }
        b
    }
}

fn factory(table: &ConfigTable) -> Result<Arc<dyn JobStore>, Error> {
    Ok(Arc::new(
        SqlStoreConfig::from_table(table)?.builder().build()?,
    ))
}

/// The store a `sqlite:`, `postgres://` or `mysql://` URL names.
fn open_url(url: &str, options: &UrlOptions) -> Result<Arc<dyn JobStore>, Error> {
    let mut builder = SqlJobStore::builder(url);
    if let Some(timeout) = options.connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    Ok(Arc::new(builder.build()?))
}

/// The URL schemes of the databases this build has (its Cargo features).
const URL_SCHEMES: &[&str] = &[
    #[cfg(feature = "sqlite")]
    "sqlite",
    #[cfg(feature = "postgres")]
    "postgres",
    #[cfg(feature = "postgres")]
    "postgresql",
    #[cfg(feature = "mysql")]
    "mysql",
    #[cfg(feature = "mysql")]
    "mariadb",
];

/// Registers `sqlalchemy` (also `sql` and APScheduler's class string), and the URL
/// schemes of the databases this build has: `sqlite`, `postgres`/`postgresql`,
/// `mysql`/`mariadb`.
pub fn register(registry: &mut ComponentRegistry) {
    registry.register_store(
        &[
            "sql",
            "sqlalchemy",
            "apscheduler.jobstores.sqlalchemy:SQLAlchemyJobStore",
        ],
        factory,
    );
    registry.register_url_schemes(URL_SCHEMES, open_url);
}

apscheduler_core::inventory::submit! { Registration::new(env!("CARGO_PKG_NAME"), register) }

//! `type = "redis"`: the Redis store's configuration and registration.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::codec::StateFormat;
use apscheduler_core::component::{
    seconds, ComponentRegistry, ConfigTable, Registration, UrlOptions,
};
use apscheduler_core::{Error, JobStore};
use serde::{Deserialize, Serialize};

use crate::{RedisJobStore, RedisJobStoreBuilder};

/// The Redis store's options, one per builder method
/// (`type = "redis"  url = "redis://127.0.0.1:6379/"  prefix = "apscheduler."`).
/// Durations are seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStoreConfig {
    /// The server URL (default `redis://127.0.0.1:6379/`).
    pub url: Option<String>,
    /// [`RedisJobStoreBuilder::prefix`].
    pub prefix: Option<String>,
    /// [`RedisJobStoreBuilder::max_state_bytes`].
    pub max_state_bytes: Option<usize>,
    /// [`RedisJobStoreBuilder::state_format`] (`json` or `bincode`).
    pub state_format: Option<StateFormat>,
    /// [`RedisJobStoreBuilder::connect_timeout`].
    #[serde(default, with = "seconds")]
    pub connect_timeout: Option<Duration>,
    /// [`RedisJobStoreBuilder::connection_timeout`], the same setting under its
    /// earlier name (set one or the other).
    #[serde(default, with = "seconds")]
    pub connection_timeout: Option<Duration>,
    /// [`RedisJobStoreBuilder::response_timeout`].
    #[serde(default, with = "seconds")]
    pub response_timeout: Option<Duration>,
    /// [`RedisJobStoreBuilder::reconnect_retries`].
    pub reconnect_retries: Option<usize>,
    /// [`RedisJobStoreBuilder::wait_replicas`]: how many replicas.
    pub wait_replicas: Option<u32>,
    /// [`RedisJobStoreBuilder::wait_replicas`]: at most how long (default 0.1 s).
    #[serde(default, with = "seconds")]
    pub wait_timeout: Option<Duration>,
    /// [`RedisJobStoreBuilder::partitions`] (a `redis+cluster://` URL only).
    pub partitions: Option<usize>,
}

impl RedisStoreConfig {
    /// Reads the options of a configured component.
    ///
    /// # Errors
    /// `InvalidInput` naming the option and the value.
    pub fn from_table(table: &ConfigTable) -> Result<Self, Error> {
        Ok(RedisStoreConfig {
            url: table.get_str("url")?.map(str::to_owned),
            prefix: table.get_str("prefix")?.map(str::to_owned),
            max_state_bytes: table.get_positive("max_state_bytes")?,
            state_format: table.get_str("state_format")?.map(str::parse).transpose()?,
            connect_timeout: table.get_seconds("connect_timeout")?,
            connection_timeout: match (
                table.get("connect_timeout"),
                table.get_seconds("connection_timeout")?,
            ) {
                (Some(_), Some(_)) => {
                    return Err(table.invalid(
                        "connection_timeout",
                        table.get("connection_timeout").expect("just read"),
                        "the same setting as connect_timeout: set only one",
                    ))
                }
                (_, t) => t,
            },
            response_timeout: table.get_seconds("response_timeout")?,
            reconnect_retries: table.get_usize("reconnect_retries")?,
            wait_replicas: table
                .get_usize("wait_replicas")?
                .map(|n| {
                    u32::try_from(n).map_err(|_| {
                        table.invalid(
                            "wait_replicas",
                            table.get("wait_replicas").expect("just read"),
                            "too large",
                        )
                    })
                })
                .transpose()?,
            wait_timeout: match (
                table.get("wait_replicas"),
                table.get_seconds("wait_timeout")?,
            ) {
                (None, Some(_)) => {
                    return Err(table.invalid(
                        "wait_timeout",
                        table.get("wait_timeout").expect("just read"),
                        "wait_replicas (1 or more) with it: alone it does nothing",
                    ))
                }
                (_, t) => t,
            },
            partitions: table.get_positive("partitions")?,
        })
    }

    /// The builder these options describe.
    pub fn builder(&self) -> RedisJobStoreBuilder {
        let url = self.url.as_deref().unwrap_or("redis://127.0.0.1:6379/");
        let mut b = RedisJobStore::builder(url);
        if let Some(prefix) = &self.prefix {
            b = b.prefix(prefix.clone());
        }
        if let Some(n) = self.max_state_bytes {
            b = b.max_state_bytes(n);
        }
        if let Some(f) = self.state_format {
            b = b.state_format(f);
        }
        if let Some(t) = self.connect_timeout.or(self.connection_timeout) {
            b = b.connect_timeout(t);
        }
        if let Some(t) = self.response_timeout {
            b = b.response_timeout(t);
        }
        if let Some(n) = self.reconnect_retries {
            b = b.reconnect_retries(n);
        }
        if let Some(n) = self.partitions {
            b = b.partitions(n);
        }
        if let Some(n) = self.wait_replicas {
            b = b.wait_replicas(
                n,
                self.wait_timeout
                    .unwrap_or(crate::durability::DEFAULT_WAIT_TIMEOUT),
            );
        }
        b
    }
}

fn factory(table: &ConfigTable) -> Result<Arc<dyn JobStore>, Error> {
    Ok(Arc::new(
        RedisStoreConfig::from_table(table)?.builder().build()?,
    ))
}

/// The store a `redis://`, `rediss://`, `redis+sentinel://` or `redis+cluster://` URL
/// names.
fn open_url(url: &str, options: &UrlOptions) -> Result<Arc<dyn JobStore>, Error> {
    let mut builder = RedisJobStore::builder(url);
    if let Some(timeout) = options.connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    Ok(Arc::new(builder.build()?))
}

/// Registers `redis` (and APScheduler's class string), and the URL schemes `redis`,
/// `rediss`, `redis+sentinel` and `redis+cluster`.
pub fn register(registry: &mut ComponentRegistry) {
    registry.register_store(
        &["redis", "apscheduler.jobstores.redis:RedisJobStore"],
        factory,
    );
    registry.register_url_schemes(
        &["redis", "rediss", "redis+sentinel", "redis+cluster"],
        open_url,
    );
}

apscheduler_core::inventory::submit! { Registration::new(env!("CARGO_PKG_NAME"), register) }

#[cfg(test)]
mod tests {
    use apscheduler_core::component::{ComponentConfig, ComponentKind};
    use serde_json::{json, Value};

    use super::*;

    fn table(options: &[(&str, Value)]) -> ConfigTable {
        let mut config = ComponentConfig::new("redis");
        for (key, value) in options {
            config = config.option(*key, value.clone());
        }
        ConfigTable::new(ComponentKind::JobStore, "default", &config)
    }

    #[test]
    fn connect_timeout_and_its_earlier_name() {
        let config =
            RedisStoreConfig::from_table(&table(&[("connect_timeout", json!(2))])).unwrap();
        assert_eq!(config.connect_timeout, Some(Duration::from_secs(2)));
        let config =
            RedisStoreConfig::from_table(&table(&[("connection_timeout", json!(1.5))])).unwrap();
        assert_eq!(config.connection_timeout, Some(Duration::from_millis(1500)));
        let err = RedisStoreConfig::from_table(&table(&[
            ("connect_timeout", json!(2)),
            ("connection_timeout", json!(3)),
        ]))
        .expect_err("both");
        assert!(err.message().contains("set only one"), "{err}");
    }

    #[test]
    fn partitions_go_to_a_cluster_store_only() {
        let config = RedisStoreConfig::from_table(&table(&[
            ("url", json!("redis+cluster://127.0.0.1:7000/")),
            ("partitions", json!(32)),
        ]))
        .unwrap();
        assert_eq!(config.partitions, Some(32));
        let store = config.builder().build().unwrap();
        assert_eq!(store.partition_keys().len(), 32);
        assert_eq!(store.partition_keys()[31].jobs, "{apscheduler.p31}jobs");
        let config = RedisStoreConfig::from_table(&table(&[("partitions", json!(4))])).unwrap();
        let err = config.builder().build().expect_err("not a cluster");
        assert!(
            err.message().contains("partitions are for a Redis Cluster"),
            "{err}"
        );
    }

    #[test]
    fn wait_replicas_and_its_timeout() {
        let config = RedisStoreConfig::from_table(&table(&[
            ("wait_replicas", json!(1)),
            ("wait_timeout", json!(0.25)),
        ]))
        .unwrap();
        assert_eq!(config.wait_replicas, Some(1));
        assert_eq!(config.wait_timeout, Some(Duration::from_millis(250)));
        let err = RedisStoreConfig::from_table(&table(&[("wait_timeout", json!(1))]))
            .expect_err("a time-out alone");
        assert!(err.message().contains("wait_replicas"), "{err}");
    }
}

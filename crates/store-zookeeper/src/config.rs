//! `type = "zookeeper"`: the ZooKeeper store's configuration and registration.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::codec::StateFormat;
use apscheduler_core::component::{
    seconds, ComponentRegistry, ConfigTable, Registration, UrlOptions,
};
use apscheduler_core::{Error, JobStore};
use serde::{Deserialize, Serialize};

use crate::{ZooKeeperJobStore, ZooKeeperJobStoreBuilder};

/// The ZooKeeper store's options, one per builder method
/// (`type = "zookeeper"  hosts = "127.0.0.1:2181"  path = "/apscheduler"`).
/// Durations are seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZooKeeperStoreConfig {
    /// The ensemble, `host:port[,host:port...]` (default `127.0.0.1:2181`).
    pub hosts: Option<String>,
    /// [`ZooKeeperJobStoreBuilder::path`].
    pub path: Option<String>,
    /// [`ZooKeeperJobStoreBuilder::session_timeout`].
    #[serde(default, with = "seconds")]
    pub session_timeout: Option<Duration>,
    /// [`ZooKeeperJobStoreBuilder::connect_timeout`].
    #[serde(default, with = "seconds")]
    pub connect_timeout: Option<Duration>,
    /// [`ZooKeeperJobStoreBuilder::connection_timeout`], the same setting under its
    /// earlier name (set one or the other).
    #[serde(default, with = "seconds")]
    pub connection_timeout: Option<Duration>,
    /// [`ZooKeeperJobStoreBuilder::max_state_bytes`].
    pub max_state_bytes: Option<usize>,
    /// [`ZooKeeperJobStoreBuilder::state_format`] (`json` or `bincode`).
    pub state_format: Option<StateFormat>,
}

impl ZooKeeperStoreConfig {
    /// Reads the options of a configured component.
    ///
    /// # Errors
    /// `InvalidInput` naming the option and the value.
    pub fn from_table(table: &ConfigTable) -> Result<Self, Error> {
        Ok(ZooKeeperStoreConfig {
            hosts: table.get_str("hosts")?.map(str::to_owned),
            path: table.get_str("path")?.map(str::to_owned),
            session_timeout: table.get_seconds("session_timeout")?,
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
            max_state_bytes: table.get_positive("max_state_bytes")?,
            state_format: table.get_str("state_format")?.map(str::parse).transpose()?,
        })
    }

    /// The builder these options describe.
    pub fn builder(&self) -> ZooKeeperJobStoreBuilder {
        let hosts = self.hosts.as_deref().unwrap_or("127.0.0.1:2181");
        let mut b = ZooKeeperJobStore::builder(hosts);
        if let Some(path) = &self.path {
            b = b.path(path.clone());
        }
        if let Some(t) = self.session_timeout {
            b = b.session_timeout(t);
        }
        if let Some(t) = self.connect_timeout.or(self.connection_timeout) {
            b = b.connect_timeout(t);
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
        ZooKeeperStoreConfig::from_table(table)?.builder().build()?,
    ))
}

/// The store a `zookeeper://host:port[,host:port…][/path]` (or `zk://`) URL names: the
/// ensemble's hosts, and the store's root znode ([`DEFAULT_PATH`](crate::DEFAULT_PATH)
/// when the URL has no path).
fn open_url(url: &str, options: &UrlOptions) -> Result<Arc<dyn JobStore>, Error> {
    let (hosts, path) = hosts_and_path(url);
    let mut builder = ZooKeeperJobStore::builder(hosts).path(path);
    if let Some(timeout) = options.connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    Ok(Arc::new(builder.build()?))
}

/// The hosts and the root znode of a ZooKeeper URL.
fn hosts_and_path(url: &str) -> (&str, &str) {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    match rest.find('/') {
        Some(i) if i + 1 < rest.len() => (&rest[..i], &rest[i..]),
        Some(i) => (&rest[..i], crate::DEFAULT_PATH),
        None => (rest, crate::DEFAULT_PATH),
    }
}

/// Registers `zookeeper` (and APScheduler's class string), and the URL schemes
/// `zookeeper` and `zk`.
pub fn register(registry: &mut ComponentRegistry) {
    registry.register_url_schemes(&["zookeeper", "zk"], open_url);
    registry.register_store(
        &[
            "zookeeper",
            "apscheduler.jobstores.zookeeper:ZooKeeperJobStore",
        ],
        factory,
    );
}

apscheduler_core::inventory::submit! { Registration::new(env!("CARGO_PKG_NAME"), register) }

#[cfg(test)]
mod tests {
    use apscheduler_core::component::{ComponentConfig, ComponentKind};
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn a_url_names_its_hosts_and_root_znode() {
        assert_eq!(
            hosts_and_path("zookeeper://a:2181,b:2182/apps/jobs"),
            ("a:2181,b:2182", "/apps/jobs")
        );
        assert_eq!(
            hosts_and_path("zk://127.0.0.1:2181"),
            ("127.0.0.1:2181", crate::DEFAULT_PATH)
        );
        assert_eq!(
            hosts_and_path("zk://127.0.0.1:2181/"),
            ("127.0.0.1:2181", crate::DEFAULT_PATH)
        );
        let registry = ComponentRegistry::global();
        assert!(registry.url_schemes().contains(&"zk"));
        let store = registry
            .open_url("ZK://127.0.0.1:2181/x", &UrlOptions::new())
            .expect("opened without connecting");
        assert!(format!("{store:?}").contains("/x"), "{store:?}");
    }

    fn table(options: &[(&str, Value)]) -> ConfigTable {
        let mut config = ComponentConfig::new("zookeeper");
        for (key, value) in options {
            config = config.option(*key, value.clone());
        }
        ConfigTable::new(ComponentKind::JobStore, "default", &config)
    }

    #[test]
    fn every_option_reaches_the_builder() {
        let table = table(&[
            ("hosts", json!("127.0.0.1:2182")),
            ("path", json!("/x/y")),
            ("session_timeout", json!(4)),
            ("connection_timeout", json!(1.5)),
            ("max_state_bytes", json!(4096)),
            ("state_format", json!("bincode")),
        ]);
        let config = ZooKeeperStoreConfig::from_table(&table).expect("valid options");
        assert_eq!(config.session_timeout, Some(Duration::from_secs(4)));
        assert_eq!(config.connection_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(config.state_format, Some(StateFormat::Bincode));
        let store = config.builder().build().expect("builds");
        assert_eq!(store.path(), "/x/y");
        assert_eq!(store.conn.hosts, "127.0.0.1:2182");
        assert_eq!(store.conn.session_timeout, Duration::from_secs(4));
    }

    #[test]
    fn connect_timeout_and_its_earlier_name() {
        for key in ["connect_timeout", "connection_timeout"] {
            let config =
                ZooKeeperStoreConfig::from_table(&table(&[(key, json!(2))])).expect("valid");
            let store = config.builder().build().expect("builds");
            assert_eq!(
                store.conn.connection_timeout,
                Duration::from_secs(2),
                "{key}"
            );
        }
        let err = ZooKeeperStoreConfig::from_table(&table(&[
            ("connect_timeout", json!(2)),
            ("connection_timeout", json!(3)),
        ]))
        .expect_err("both");
        assert!(err.message().contains("connection_timeout"), "{err}");
        assert!(err.message().contains("set only one"), "{err}");
    }

    #[test]
    fn bad_values_name_the_option() {
        for (key, value) in [
            ("path", json!("relative")),
            ("path", json!("/zookeeper/x")),
            ("path", json!("/a//b")),
            ("path", json!("/a/")),
            ("hosts", json!("")),
            ("max_state_bytes", json!(2_000_000)),
            ("session_timeout", json!(-1)),
        ] {
            let err = ZooKeeperStoreConfig::from_table(&table(&[(key, value)]))
                .and_then(|c| c.builder().build())
                .expect_err(key);
            assert!(err.message().contains(key), "{err}");
        }
    }
}

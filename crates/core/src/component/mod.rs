//! Job stores and executors by type name: how a configuration file's
//! `type = "sqlalchemy"` becomes a component.
//!
//! A [`ComponentConfig`] is one configured component (its type and options, as read from
//! TOML, JSON, APScheduler's flat dictionary or the environment). The
//! [`ComponentRegistry`] maps type names to factories; each factory reads its options
//! from a [`ConfigTable`], whose getters give errors that name the component, the option
//! and the value, and which refuses options nobody read.
//!
//! Backend crates own their configuration: each one has a typed configuration struct and
//! a `register` function, and submits it with [`inventory`], so every backend linked into
//! the program is known to [`ComponentRegistry::global`] without any call:
//!
//! ```
//! use std::sync::Arc;
//! use apscheduler_core::component::{ComponentConfig, ComponentRegistry, ConfigTable, Registration};
//! use apscheduler_core::{Error, JobStore};
//!
//! # #[derive(Debug)] struct MyStore;
//! fn my_store(table: &ConfigTable) -> Result<Arc<dyn JobStore>, Error> {
//!     let _capacity = table.get_usize("capacity")?.unwrap_or(16);
//!     # return Err(Error::new(apscheduler_core::ErrorKind::Other, "only a sketch"));
//! }
//!
//! fn register(registry: &mut ComponentRegistry) {
//!     registry.register_store(&["mine", "my-store"], my_store);
//! }
//! apscheduler_core::inventory::submit! { Registration::new("my-store-crate", register) }
//!
//! let registry = ComponentRegistry::global();
//! assert!(registry.store_types().contains(&"my-store"));
//! let err = registry.create_store("default", &ComponentConfig::new("my-store").option("capacity", "x")).unwrap_err();
//! assert!(err.to_string().contains("'capacity'"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::{Error, Executor, JobStore};

mod registry;
mod table;
mod url;

pub use registry::{AbsentType, AbsentUrlScheme, ComponentRegistry, Registration};
pub use table::ConfigTable;
pub use url::{url_scheme, UrlFactory, UrlOptions};

/// Builds a job store from its configuration table.
pub type StoreFactory = fn(&ConfigTable) -> Result<Arc<dyn JobStore>, Error>;

/// Builds an executor from its configuration table.
pub type ExecutorFactory = fn(&ConfigTable) -> Result<Arc<dyn Executor>, Error>;

/// Which kind of component a configuration entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComponentKind {
    /// A job store (`jobstores`).
    JobStore,
    /// An executor (`executors`).
    Executor,
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ComponentKind::JobStore => "job store",
            ComponentKind::Executor => "executor",
        })
    }
}

/// How messages name a component: `job store 'sql'`.
pub fn describe(kind: ComponentKind, alias: &str) -> String {
    format!("{kind} '{alias}'")
}

/// APScheduler's class strings of its own components, and their type aliases.
const CLASS_NAMES: &[(&str, &str)] = &[
    ("apscheduler.executors.debug:DebugExecutor", "debug"),
    (
        "apscheduler.executors.pool:ThreadPoolExecutor",
        "threadpool",
    ),
    (
        "apscheduler.executors.pool:ProcessPoolExecutor",
        "processpool",
    ),
    ("apscheduler.executors.asyncio:AsyncIOExecutor", "asyncio"),
    ("apscheduler.executors.gevent:GeventExecutor", "gevent"),
    ("apscheduler.executors.tornado:TornadoExecutor", "tornado"),
    ("apscheduler.executors.twisted:TwistedExecutor", "twisted"),
    ("apscheduler.jobstores.memory:MemoryJobStore", "memory"),
    (
        "apscheduler.jobstores.sqlalchemy:SQLAlchemyJobStore",
        "sqlalchemy",
    ),
    ("apscheduler.jobstores.mongodb:MongoDBJobStore", "mongodb"),
    ("apscheduler.jobstores.redis:RedisJobStore", "redis"),
    (
        "apscheduler.jobstores.rethinkdb:RethinkDBJobStore",
        "rethinkdb",
    ),
    (
        "apscheduler.jobstores.zookeeper:ZooKeeperJobStore",
        "zookeeper",
    ),
];

/// The type alias of an APScheduler class string; anything else unchanged.
pub fn canonical_type_name(name: &str) -> &str {
    CLASS_NAMES
        .iter()
        .find(|(class, _)| class.eq_ignore_ascii_case(name))
        .map_or(name, |(_, alias)| alias)
}

/// One job store or executor of a configuration: its type and its options.
///
/// The type is the `type` alias (`memory`, `threadpool`, `sqlalchemy`, ...) or
/// APScheduler's `class` string; class strings of APScheduler's own components
/// (`apscheduler.executors.pool:ThreadPoolExecutor`) are stored as their type alias
/// (`threadpool`). Scalar option values are stored as text (`20` → `"20"`).
///
/// ```
/// use apscheduler_core::component::ComponentConfig;
///
/// let a = ComponentConfig::new("apscheduler.executors.pool:ThreadPoolExecutor").option("max_workers", 20);
/// let b = ComponentConfig::new("threadpool").option("max_workers", "20");
/// assert_eq!(a, b);
/// assert_eq!(a.type_name(), "threadpool");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentConfig {
    type_name: String,
    options: BTreeMap<String, Value>,
}

impl ComponentConfig {
    /// A component of this type (alias or class string) without options.
    pub fn new(type_name: impl Into<String>) -> Self {
        let type_name = type_name.into();
        ComponentConfig {
            type_name: canonical_type_name(type_name.trim()).to_owned(),
            options: BTreeMap::new(),
        }
    }

    /// Adds an option (`max_workers`, `url`, ...).
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.insert(key.into(), normalize(value.into()));
        self
    }

    /// The type alias (or class string) the registry resolves.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The options, scalars as text.
    pub fn options(&self) -> &BTreeMap<String, Value> {
        &self.options
    }

    /// The nested form: `{"type": ..., options...}`.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("type".into(), Value::String(self.type_name.clone()));
        for (k, v) in &self.options {
            map.insert(k.clone(), v.clone());
        }
        Value::Object(map)
    }
}

/// Scalars become text so that every source (TOML, JSON, flat strings, environment)
/// gives the same configuration.
fn normalize(v: Value) -> Value {
    match v {
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        other => other,
    }
}

/// A value as error messages show it: text in single quotes, anything else as JSON.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// APScheduler's `asbool`.
pub fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" | "t" | "1" => Some(true),
            "false" | "no" | "off" | "n" | "f" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A non-negative integer given as a number or as text.
pub fn parse_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

/// Serde for an optional [`Duration`](std::time::Duration) written as seconds
/// (`timeout = 2.5`), as configuration files give durations; for backends' typed
/// configurations: `#[serde(default, with = "apscheduler_core::component::seconds")]`.
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `Some(d)` as its seconds, `None` as nothing (a unit).
    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    /// Reads non-negative seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(secs) => Duration::try_from_secs_f64(secs).map(Some).map_err(|_| {
                serde::de::Error::custom(format!("expected non-negative seconds, got {secs}"))
            }),
        }
    }
}

//! Job stores and executors by type alias: the registry that turns a
//! [`ComponentConfig`](crate::ComponentConfig) into a component.
//!
//! Crates that add a backend (SQL, Redis, MongoDB stores; the process pool) register a
//! factory under their type aliases, so configurations name them without the engine
//! knowing them:
//!
//! ```
//! use std::sync::Arc;
//! use apscheduler_core::{Error, JobStore};
//! use apscheduler_engine::{ComponentConfig, ComponentRegistry, ConfigTable};
//!
//! fn my_store(table: &ConfigTable) -> Result<Arc<dyn JobStore>, Error> {
//!     let _capacity = table.get_usize("capacity")?.unwrap_or(16);
//!     Ok(Arc::new(apscheduler_store_memory::MemoryJobStore::new()))
//! }
//!
//! let mut registry = ComponentRegistry::with_builtins();
//! registry.register_store(&["mine", "my-store"], my_store);
//! let store = registry
//!     .create_store("default", &ComponentConfig::new("my-store").option("capacity", 4))
//!     .unwrap();
//! # drop(store);
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use apscheduler_core::{Error, ErrorKind, Executor, JobStore};
use apscheduler_executor_async::AsyncExecutor;
use apscheduler_executor_thread::ThreadPoolExecutor;
use apscheduler_store_memory::MemoryJobStore;
use serde_json::Value;

use crate::config::{parse_bool, parse_u64, show, ComponentConfig};
use crate::inline::InlineExecutor;

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

/// `job store 'sql'`.
pub(crate) fn describe(kind: ComponentKind, alias: &str) -> String {
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
pub(crate) fn canonical_type_name(name: &str) -> &str {
    CLASS_NAMES
        .iter()
        .find(|(class, _)| class.eq_ignore_ascii_case(name))
        .map_or(name, |(_, alias)| alias)
}

/// Types APScheduler has that this build does not: why, and what to do.
struct Unavailable {
    kind: ComponentKind,
    names: &'static [&'static str],
    remedy: &'static str,
}

const UNAVAILABLE: &[Unavailable] = &[
    Unavailable {
        kind: ComponentKind::JobStore,
        names: &["sqlalchemy", "sql"],
        remedy: "is not available in this build (enable the facade feature `store-sql`)",
    },
    Unavailable {
        kind: ComponentKind::JobStore,
        names: &["mongodb"],
        remedy: "is not available in this build (enable the facade feature `store-mongodb`)",
    },
    Unavailable {
        kind: ComponentKind::JobStore,
        names: &["redis"],
        remedy: "is not available in this build (enable the facade feature `store-redis`)",
    },
    Unavailable {
        kind: ComponentKind::JobStore,
        names: &["rethinkdb", "zookeeper"],
        remedy: "is not available: apscheduler-rs has no such job store (use 'memory', 'sqlalchemy', 'mongodb' or 'redis')",
    },
    Unavailable {
        kind: ComponentKind::Executor,
        names: &["processpool"],
        remedy: "is not available in this build (enable the facade feature `executor-process`)",
    },
    Unavailable {
        kind: ComponentKind::Executor,
        names: &["rayon"],
        remedy: "is not available in this build (enable the facade feature `executor-rayon`)",
    },
    Unavailable {
        kind: ComponentKind::Executor,
        names: &["gevent", "tornado", "twisted"],
        remedy: "is not available: it exists for a Python event loop (use 'threadpool', or 'asyncio' for async tasks)",
    },
];

/// One component's configuration as its factory sees it: alias, type and options, with
/// typed getters whose errors name the component, the option and the value.
///
/// Every option a factory does not read is refused as unknown once the factory returns.
#[derive(Debug)]
pub struct ConfigTable {
    kind: ComponentKind,
    alias: String,
    type_name: String,
    options: BTreeMap<String, Value>,
    read: RefCell<BTreeSet<String>>,
}

impl ConfigTable {
    /// A table for `alias` (used by the registry; public for testing factories).
    pub fn new(kind: ComponentKind, alias: &str, config: &ComponentConfig) -> Self {
        ConfigTable {
            kind,
            alias: alias.to_owned(),
            type_name: config.type_name().to_owned(),
            options: config.options().clone(),
            read: RefCell::new(BTreeSet::new()),
        }
    }

    /// Job store or executor.
    pub fn kind(&self) -> ComponentKind {
        self.kind
    }

    /// The alias the component is configured under (`default`, `sql`, ...).
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The type it was asked for (`threadpool`, `sqlalchemy`, ...).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The raw value of an option (scalars as text), marking it as read.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.read.borrow_mut().insert(key.to_owned());
        self.options.get(key).filter(|v| !v.is_null())
    }

    /// Every option, read or not.
    pub fn options(&self) -> &BTreeMap<String, Value> {
        &self.options
    }

    /// An `InvalidInput` error about an option:
    /// `executor 'thread': invalid value for 'max_workers': 'abc': expected ...`.
    pub fn invalid(&self, key: &str, value: &Value, expected: &str) -> Error {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{}: invalid value for '{key}': {}: {expected}",
                describe(self.kind, &self.alias),
                show(value)
            ),
        )
    }

    /// A text option.
    ///
    /// # Errors
    /// `InvalidInput` when it is a table or a list.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.invalid(key, v, "expected text")),
        }
    }

    /// A text option that must be given.
    ///
    /// # Errors
    /// `InvalidInput` when missing or not text.
    pub fn require_str(&self, key: &str) -> Result<&str, Error> {
        self.get_str(key)?.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} (type '{}'): missing required option '{key}'",
                    describe(self.kind, &self.alias),
                    self.type_name
                ),
            )
        })
    }

    /// A boolean option (`true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`).
    ///
    /// # Errors
    /// `InvalidInput` for anything else.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, Error> {
        self.get(key)
            .map(|v| {
                parse_bool(v).ok_or_else(|| self.invalid(key, v, "expected a boolean (true/false)"))
            })
            .transpose()
    }

    /// A non-negative whole number.
    ///
    /// # Errors
    /// `InvalidInput` for anything else.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, Error> {
        self.get(key)
            .map(|v| {
                parse_u64(v)
                    .ok_or_else(|| self.invalid(key, v, "expected a non-negative whole number"))
            })
            .transpose()
    }

    /// A non-negative whole number that fits a `usize`.
    ///
    /// # Errors
    /// `InvalidInput` for anything else.
    pub fn get_usize(&self, key: &str) -> Result<Option<usize>, Error> {
        self.get(key)
            .map(|v| {
                parse_u64(v)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| self.invalid(key, v, "expected a non-negative whole number"))
            })
            .transpose()
    }

    /// A whole number of at least 1 (worker counts, limits).
    ///
    /// # Errors
    /// `InvalidInput` for anything else, 0 included.
    pub fn get_positive(&self, key: &str) -> Result<Option<usize>, Error> {
        self.get(key)
            .map(|v| {
                parse_u64(v)
                    .filter(|n| *n >= 1)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| self.invalid(key, v, "expected a positive whole number"))
            })
            .transpose()
    }

    /// A number.
    ///
    /// # Errors
    /// `InvalidInput` for anything else.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, Error> {
        self.get(key)
            .map(|v| {
                let n = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                n.filter(|f| f.is_finite())
                    .ok_or_else(|| self.invalid(key, v, "expected a number"))
            })
            .transpose()
    }

    /// A duration in seconds (fractions allowed).
    ///
    /// # Errors
    /// `InvalidInput` for anything else, negative numbers included.
    pub fn get_seconds(&self, key: &str) -> Result<Option<Duration>, Error> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let secs = self.get_f64(key)?.unwrap_or(-1.0);
        if (0.0..1e12).contains(&secs) {
            Ok(Some(Duration::from_secs_f64(secs)))
        } else {
            Err(self.invalid(key, v, "expected seconds (a non-negative number)"))
        }
    }

    /// Refuses options no getter has read.
    fn check_all_read(&self) -> Result<(), Error> {
        let read = self.read.borrow();
        let unknown: Vec<String> = self
            .options
            .iter()
            .filter(|(k, _)| !read.contains(*k))
            .map(|(k, v)| format!("'{k}' = {}", show(v)))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{}: unknown option{} {} for type '{}'",
                describe(self.kind, &self.alias),
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                self.type_name
            ),
        ))
    }
}

/// Factories for job stores and executors by type alias.
///
/// [`with_builtins`](Self::with_builtins) knows the components of this crate:
///
/// | kind | type aliases | options |
/// |---|---|---|
/// | job store | `memory` | none |
/// | executor | `threadpool`, `thread`, `pool` (class `apscheduler.executors.pool:ThreadPoolExecutor`) | `max_workers` (default 10) |
/// | executor | `asyncio`, `async` | `max_concurrency` (default: unbounded) |
/// | executor | `debug`, `inline` | none |
///
/// APScheduler's other types (`sqlalchemy`/`sql`, `mongodb`, `redis`, `processpool`,
/// `rethinkdb`, `zookeeper`, ...) give a `NotFound` error that says what is missing until
/// a crate registers them.
#[derive(Clone, Default)]
pub struct ComponentRegistry {
    stores: BTreeMap<String, StoreFactory>,
    executors: BTreeMap<String, ExecutorFactory>,
}

impl fmt::Debug for ComponentRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentRegistry")
            .field("stores", &self.stores.keys().collect::<Vec<_>>())
            .field("executors", &self.executors.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn memory_store(_: &ConfigTable) -> Result<Arc<dyn JobStore>, Error> {
    Ok(Arc::new(MemoryJobStore::new()))
}

fn thread_pool(table: &ConfigTable) -> Result<Arc<dyn Executor>, Error> {
    let workers = table.get_positive("max_workers")?.unwrap_or(10);
    Ok(Arc::new(ThreadPoolExecutor::new(workers)))
}

fn async_executor(table: &ConfigTable) -> Result<Arc<dyn Executor>, Error> {
    let limit = table.get_positive("max_concurrency")?;
    Ok(Arc::new(AsyncExecutor::new(limit)))
}

fn inline_executor(_: &ConfigTable) -> Result<Arc<dyn Executor>, Error> {
    Ok(Arc::new(InlineExecutor::new()))
}

fn global_lock() -> &'static RwLock<ComponentRegistry> {
    static GLOBAL: OnceLock<RwLock<ComponentRegistry>> = OnceLock::new();
    GLOBAL.get_or_init(|| RwLock::new(ComponentRegistry::with_builtins()))
}

fn key(name: &str) -> String {
    canonical_type_name(name.trim()).to_ascii_lowercase()
}

impl ComponentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with the components of this crate (see the table above).
    pub fn with_builtins() -> Self {
        let mut r = Self::new();
        r.register_store(
            &["memory", "apscheduler.jobstores.memory:MemoryJobStore"],
            memory_store,
        );
        r.register_executor(
            &[
                "threadpool",
                "thread",
                "pool",
                "apscheduler.executors.pool:ThreadPoolExecutor",
            ],
            thread_pool,
        );
        r.register_executor(
            &[
                "asyncio",
                "async",
                "apscheduler.executors.asyncio:AsyncIOExecutor",
            ],
            async_executor,
        );
        r.register_executor(
            &[
                "debug",
                "inline",
                "apscheduler.executors.debug:DebugExecutor",
            ],
            inline_executor,
        );
        r
    }

    /// Registers a job store factory under every name of `type_names` (aliases or class
    /// strings; matched without regard to ASCII case). A name registered before is
    /// replaced.
    pub fn register_store(&mut self, type_names: &[&str], factory: StoreFactory) -> &mut Self {
        for name in type_names {
            self.stores.insert(key(name), factory);
        }
        self
    }

    /// Registers an executor factory under every name of `type_names`.
    pub fn register_executor(
        &mut self,
        type_names: &[&str],
        factory: ExecutorFactory,
    ) -> &mut Self {
        for name in type_names {
            self.executors.insert(key(name), factory);
        }
        self
    }

    /// The job store type names known, sorted.
    pub fn store_types(&self) -> Vec<&str> {
        self.stores.keys().map(String::as_str).collect()
    }

    /// The executor type names known, sorted.
    pub fn executor_types(&self) -> Vec<&str> {
        self.executors.keys().map(String::as_str).collect()
    }

    /// A copy of the process-wide registry, which
    /// [`Engine::configure_with`](crate::Engine::configure_with) and
    /// [`EngineBuilder::config`](crate::EngineBuilder::config) use. It starts with the
    /// built-ins.
    pub fn global() -> ComponentRegistry {
        global_lock()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Registers a job store factory in the process-wide registry (how backend crates
    /// plug in).
    pub fn register_global_store(type_names: &[&str], factory: StoreFactory) {
        global_lock()
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .register_store(type_names, factory);
    }

    /// Registers an executor factory in the process-wide registry.
    pub fn register_global_executor(type_names: &[&str], factory: ExecutorFactory) {
        global_lock()
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .register_executor(type_names, factory);
    }

    /// Builds the job store `alias` from its configuration.
    ///
    /// # Errors
    /// `InvalidInput` for an unknown type or a bad or unknown option; `NotFound` for an
    /// APScheduler type that is not part of this build; the factory's own errors.
    pub fn create_store(
        &self,
        alias: &str,
        config: &ComponentConfig,
    ) -> Result<Arc<dyn JobStore>, Error> {
        let factory = self.lookup(ComponentKind::JobStore, alias, config, &self.stores)?;
        run_factory(ComponentKind::JobStore, alias, config, factory)
    }

    /// Builds the executor `alias` from its configuration.
    ///
    /// # Errors
    /// As [`create_store`](Self::create_store).
    pub fn create_executor(
        &self,
        alias: &str,
        config: &ComponentConfig,
    ) -> Result<Arc<dyn Executor>, Error> {
        let factory = self.lookup(ComponentKind::Executor, alias, config, &self.executors)?;
        run_factory(ComponentKind::Executor, alias, config, factory)
    }

    fn lookup<F: Copy>(
        &self,
        kind: ComponentKind,
        alias: &str,
        config: &ComponentConfig,
        table: &BTreeMap<String, F>,
    ) -> Result<F, Error> {
        let type_name = config.type_name();
        let k = key(type_name);
        if let Some(f) = table.get(&k) {
            return Ok(*f);
        }
        if let Some(u) = UNAVAILABLE
            .iter()
            .find(|u| u.kind == kind && u.names.contains(&k.as_str()))
        {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("{}: type '{type_name}' {}", describe(kind, alias), u.remedy),
            ));
        }
        let other = match kind {
            ComponentKind::JobStore => self.executors.contains_key(&k).then_some("an executor"),
            ComponentKind::Executor => self.stores.contains_key(&k).then_some("a job store"),
        };
        let known: Vec<&str> = table
            .keys()
            .map(String::as_str)
            .filter(|n| !n.contains(':'))
            .collect();
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{}: unknown type '{type_name}'{} (known {kind} types: {})",
                describe(kind, alias),
                other
                    .map(|o| format!(", which is {o} type"))
                    .unwrap_or_default(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ))
    }
}

fn run_factory<T: ?Sized>(
    kind: ComponentKind,
    alias: &str,
    config: &ComponentConfig,
    factory: fn(&ConfigTable) -> Result<Arc<T>, Error>,
) -> Result<Arc<T>, Error> {
    let table = ConfigTable::new(kind, alias, config);
    let built = factory(&table).map_err(|e| {
        let prefix = describe(kind, alias);
        if e.message().starts_with(&prefix) {
            e
        } else {
            let kind = e.kind();
            Error::new(
                kind,
                format!("{prefix} (type '{}'): {}", config.type_name(), e.message()),
            )
            .with_source(e)
        }
    })?;
    table.check_all_read()?;
    Ok(built)
}

//! [`ComponentRegistry`]: factories by type name, filled by the linked crates.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use super::{
    canonical_type_name, describe, url_scheme, ComponentConfig, ComponentKind, ConfigTable,
    ExecutorFactory, StoreFactory, UrlFactory, UrlOptions,
};
use crate::{Error, ErrorKind, Executor, JobStore};

/// A component type this build lacks, and what brings it: `remedy` completes
/// "executor 'cpu': type 'rayon' ...", e.g. "is not available in this build (enable the
/// facade feature `executor-rayon`)". The facade submits one for each of its backend
/// features that is off, with `apscheduler_core::inventory::submit!`.
#[derive(Debug)]
pub struct AbsentType {
    /// Job store or executor.
    pub kind: ComponentKind,
    /// The type aliases (lower case).
    pub names: &'static [&'static str],
    /// What to do, as the rest of the sentence after the type name.
    pub remedy: &'static str,
}
inventory::collect!(AbsentType);

/// Store URL schemes this build lacks, and what brings them: `remedy` completes "store
/// URL scheme 'redis' ...", e.g. "is not available in this build (enable the facade
/// feature `store-redis`)". The facade submits one for each store feature that is off,
/// so that [`ComponentRegistry::open_url`] names the feature wherever it is called.
#[derive(Debug)]
pub struct AbsentUrlScheme {
    /// The schemes (lower case).
    pub schemes: &'static [&'static str],
    /// What to do, as the rest of the sentence after the scheme.
    pub remedy: &'static str,
}
inventory::collect!(AbsentUrlScheme);

/// How a crate makes its component types known: submit one with
/// `apscheduler_core::inventory::submit! { Registration::new(env!("CARGO_PKG_NAME"), register) }`.
#[derive(Debug)]
pub struct Registration {
    crate_name: &'static str,
    register: fn(&mut ComponentRegistry),
}
inventory::collect!(Registration);

impl Registration {
    /// The registration function of the crate `crate_name`.
    pub const fn new(crate_name: &'static str, register: fn(&mut ComponentRegistry)) -> Self {
        Registration {
            crate_name,
            register,
        }
    }
}

/// APScheduler types that exist only for Python, or that apscheduler-rs has no store for.
const PYTHON_ONLY: &[AbsentType] = &[
    AbsentType {
        kind: ComponentKind::JobStore,
        names: &["rethinkdb"],
        remedy: "is not available: apscheduler-rs has no such job store (use 'memory', 'sqlalchemy', 'mongodb', 'redis' or 'zookeeper')",
    },
    AbsentType {
        kind: ComponentKind::Executor,
        names: &["gevent", "tornado", "twisted"],
        remedy: "is not available: it exists for a Python event loop (use 'threadpool', or 'asyncio' for async tasks)",
    },
];

/// Factories for job stores and executors by type alias.
///
/// [`with_builtins`](Self::with_builtins) and [`global`](Self::global) know every
/// component crate linked into the program (see the [module docs](super)). A type
/// APScheduler has that this build lacks gives a `NotFound` error that says what brings
/// it: the facade submits an [`AbsentType`] naming the Cargo feature for each backend
/// feature that is off; types that exist only for Python (`gevent`, `rethinkdb`, ...)
/// say so.
#[derive(Clone, Default)]
pub struct ComponentRegistry {
    stores: BTreeMap<String, StoreFactory>,
    executors: BTreeMap<String, ExecutorFactory>,
    urls: BTreeMap<String, UrlFactory>,
}

impl fmt::Debug for ComponentRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentRegistry")
            .field("stores", &self.stores.keys().collect::<Vec<_>>())
            .field("executors", &self.executors.keys().collect::<Vec<_>>())
            .field("url_schemes", &self.urls.keys().collect::<Vec<_>>())
            .finish()
    }
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

    /// A registry with every component type linked into this program: each backend
    /// crate submits its [`Registration`], so a crate the program depends on (directly or
    /// through the facade's features) is known without any call.
    pub fn with_builtins() -> Self {
        let mut r = Self::new();
        let mut registrations: Vec<&Registration> = inventory::iter::<Registration>().collect();
        // Link order is not specified: register in a stable order so that a name two
        // crates claim resolves the same way in every build.
        registrations.sort_by_key(|r| r.crate_name);
        for registration in registrations {
            (registration.register)(&mut r);
        }
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

    /// Registers a job store opened from URLs of every scheme of `schemes` (`postgres`,
    /// `redis+cluster`; matched without regard to ASCII case). A scheme registered
    /// before is replaced.
    pub fn register_url_schemes(&mut self, schemes: &[&str], factory: UrlFactory) -> &mut Self {
        for scheme in schemes {
            self.urls.insert(scheme.to_ascii_lowercase(), factory);
        }
        self
    }

    /// The store URL schemes known, sorted.
    pub fn url_schemes(&self) -> Vec<&str> {
        self.urls.keys().map(String::as_str).collect()
    }

    /// Opens (without connecting) the job store `url` names, through the crate that
    /// registered its scheme.
    ///
    /// # Errors
    /// As [`url_opener`](Self::url_opener); the store's own errors for a URL it
    /// refuses.
    pub fn open_url(&self, url: &str, options: &UrlOptions) -> Result<Arc<dyn JobStore>, Error> {
        self.url_opener(url)?(url, options)
    }

    /// The opener of `url`'s scheme: a check that a linked crate opens such URLs.
    ///
    /// # Errors
    /// `InvalidInput` for a URL without a scheme or with one no linked crate registered
    /// (the message names the feature that brings it where an [`AbsentUrlScheme`] says,
    /// else lists the known ones; never the URL, which may hold a password).
    pub fn url_opener(&self, url: &str) -> Result<UrlFactory, Error> {
        let scheme = url_scheme(url)?;
        if let Some(f) = self.urls.get(&scheme) {
            return Ok(*f);
        }
        if let Some(absent) =
            inventory::iter::<AbsentUrlScheme>().find(|a| a.schemes.contains(&scheme.as_str()))
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("store URL scheme '{scheme}' {}", absent.remedy),
            ));
        }
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "unknown store URL scheme '{scheme}' (known schemes: {})",
                if self.urls.is_empty() {
                    "none: this build links no store crate that opens URLs".to_owned()
                } else {
                    self.url_schemes().join(", ")
                }
            ),
        ))
    }

    /// The job store type names known, sorted.
    pub fn store_types(&self) -> Vec<&str> {
        self.stores.keys().map(String::as_str).collect()
    }

    /// The executor type names known, sorted.
    pub fn executor_types(&self) -> Vec<&str> {
        self.executors.keys().map(String::as_str).collect()
    }

    /// A copy of the process-wide registry, which the engine's configuration entry
    /// points use. It starts with every linked component ([`with_builtins`](Self::with_builtins)).
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
        if let Some(u) = PYTHON_ONLY
            .iter()
            .chain(inventory::iter::<AbsentType>())
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

//! The backends: one line each. A `backend!` line re-exports the backend crate when its
//! Cargo feature is on (linking it, which registers its configuration types: see
//! `apscheduler_core::component`), and when the feature is off, tells configuration
//! files which feature brings its types: `job store 'default': type 'sqlalchemy' is
//! not available in this build (enable the facade feature `store-sql`)`.

/// `backend!(doc, "feature" | "other feature"..., module = crate_name, Kind ["type", ...])`:
/// the crate is there when any of the features is on; a configuration file that names
/// one of its types without it is told to enable the first.
macro_rules! backend {
    ($doc:literal, $feature:literal $(| $also:literal)*, $module:ident = $krate:ident, $kind:ident [$($name:literal),+]) => {
        #[doc = $doc]
        #[cfg(any(feature = $feature $(, feature = $also)*))]
        #[doc(inline)]
        pub use $krate as $module;

        #[cfg(not(any(feature = $feature $(, feature = $also)*)))]
        apscheduler_core::inventory::submit! {
            apscheduler_core::component::AbsentType {
                kind: apscheduler_core::component::ComponentKind::$kind,
                names: &[$($name),+],
                remedy: concat!(
                    "is not available in this build (enable the facade feature `",
                    $feature,
                    "`)"
                ),
            }
        }
    };
}

/// Job stores.
pub mod stores {
    /// The in-memory job store (the default).
    #[cfg(feature = "scheduler")]
    #[doc(inline)]
    pub use apscheduler_store_memory as memory;

    backend!(
        "The MongoDB job store.",
        "store-mongodb",
        mongodb = apscheduler_store_mongodb,
        JobStore["mongodb"]
    );
    backend!(
        "The Redis job store.",
        "store-redis",
        redis = apscheduler_store_redis,
        JobStore["redis"]
    );
    backend!(
        "The ZooKeeper job store.",
        "store-zookeeper",
        zookeeper = apscheduler_store_zookeeper,
        JobStore["zookeeper"]
    );
    backend!("The SQL job store (SQLite, PostgreSQL, MySQL/MariaDB).", "store-sql" | "store-sql-sqlite" | "store-sql-postgres" | "store-sql-mysql", sql = apscheduler_store_sql, JobStore ["sqlalchemy", "sql"]);

    pub use super::urls::{open, open_with};
}

/// Job stores by URL, through the schemes the linked store crates register.
mod urls {
    use std::sync::Arc;

    use apscheduler_core::component::{ComponentRegistry, UrlOptions};
    use apscheduler_core::{Error, JobStore};

    /// `store_features!("feature" => ["scheme", ...]; ...)`: the URL schemes of each store
    /// feature. When a feature is off, a URL of its schemes is told to enable it
    /// wherever it is opened (here, `AsyncScheduler::connect`, a configuration).
    macro_rules! store_features {
        ($($feature:literal => [$($scheme:literal),+];)+) => {
            /// The URL schemes of each store feature.
            #[cfg(test)]
            pub(super) const FEATURES: &[(&str, &[&str])] = &[$(($feature, &[$($scheme),+])),+];
            $(
                #[cfg(not(feature = $feature))]
                apscheduler_core::inventory::submit! {
                    apscheduler_core::component::AbsentUrlScheme {
                        schemes: &[$($scheme),+],
                        remedy: concat!(
                            "is not available in this build (enable the facade feature `",
                            $feature,
                            "`)"
                        ),
                    }
                }
            )+
        };
    }

    store_features! {
        "store-sql-sqlite" => ["sqlite"];
        "store-sql-postgres" => ["postgres", "postgresql"];
        "store-sql-mysql" => ["mysql", "mariadb"];
        "store-redis" => ["redis", "rediss", "redis+sentinel", "redis+cluster"];
        "store-mongodb" => ["mongodb", "mongodb+srv"];
        "store-zookeeper" => ["zookeeper", "zk"];
    }

    /// Opens (without connecting: the first use connects) the job store `url` names:
    /// `sqlite:jobs.db`, `postgres://…`, `mysql://…` (`mariadb://…`), `redis://…`,
    /// `redis+sentinel://…`, `redis+cluster://…`, `mongodb://…`, `zookeeper://host/path`,
    /// each with its store's defaults. The store crate of each scheme registers it
    /// ([`ComponentRegistry::register_url_schemes`]), so a store crate linked into the
    /// program opens its URLs here with no other call.
    ///
    /// ```
    /// // A scheme whose store this build lacks names the feature that brings it.
    /// let err = apscheduler::stores::open("nosuch://x").unwrap_err();
    /// assert!(err.to_string().contains("unknown store URL scheme 'nosuch'"), "{err}");
    /// # #[cfg(not(feature = "store-zookeeper"))]
    /// assert!(apscheduler::stores::open("zk://127.0.0.1:2181/jobs").unwrap_err()
    ///     .to_string().contains("enable the facade feature `store-zookeeper`"));
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for a URL without a scheme, with a scheme no linked store has
    /// (naming the feature that brings it, or listing the known schemes; never the URL,
    /// which may hold a password), or one its store refuses.
    pub fn open(url: &str) -> Result<Arc<dyn JobStore>, Error> {
        open_with(url, &UrlOptions::new())
    }

    /// [`open`] with options the URL does not carry (the first connection's time-out).
    ///
    /// # Errors
    /// As [`open`].
    pub fn open_with(url: &str, options: &UrlOptions) -> Result<Arc<dyn JobStore>, Error> {
        ComponentRegistry::global().open_url(url, options)
    }
}

/// Executors.
pub mod executors {
    /// The tokio executor for async jobs.
    #[cfg(feature = "scheduler")]
    #[doc(inline)]
    pub use apscheduler_executor_async as r#async;
    /// The thread pool executor (the default).
    #[cfg(feature = "scheduler")]
    #[doc(inline)]
    pub use apscheduler_executor_thread as thread;

    backend!("The process pool executor.", "executor-process", process = apscheduler_executor_process, Executor ["processpool", "process"]);
    backend!(
        "The rayon executor for CPU-bound jobs.",
        "executor-rayon",
        rayon = apscheduler_executor_rayon,
        Executor["rayon"]
    );
}

#[cfg(test)]
mod tests {
    use apscheduler_core::component::ComponentRegistry;

    /// Each store feature that is on registers its URL schemes (through its crate);
    /// each that is off is named by the error for its schemes.
    #[test]
    fn every_store_feature_opens_its_url_schemes_or_names_itself() {
        let on = |feature: &str| match feature {
            "store-sql-sqlite" => cfg!(feature = "store-sql-sqlite"),
            "store-sql-postgres" => cfg!(feature = "store-sql-postgres"),
            "store-sql-mysql" => cfg!(feature = "store-sql-mysql"),
            "store-redis" => cfg!(feature = "store-redis"),
            "store-mongodb" => cfg!(feature = "store-mongodb"),
            "store-zookeeper" => cfg!(feature = "store-zookeeper"),
            other => panic!("unknown store feature {other}"),
        };
        let registry = ComponentRegistry::global();
        for (feature, schemes) in super::urls::FEATURES {
            for scheme in *schemes {
                if on(feature) {
                    assert!(
                        registry.url_schemes().contains(scheme),
                        "{feature} is on but '{scheme}' is not registered"
                    );
                } else {
                    let err = super::stores::open(&format!("{scheme}://h/x")).unwrap_err();
                    assert!(
                        err.to_string()
                            .contains(&format!("enable the facade feature `{feature}`")),
                        "{err}"
                    );
                }
            }
        }
        // Every scheme a linked crate registers belongs to a feature.
        for scheme in registry.url_schemes() {
            assert!(
                super::urls::FEATURES
                    .iter()
                    .any(|(_, s)| s.contains(&scheme)),
                "'{scheme}' has no feature in FEATURES"
            );
        }
    }

    /// `(features, type names)` of every `backend!` call of this file.
    fn backend_lines() -> Vec<(Vec<String>, Vec<String>)> {
        let source = include_str!("backends.rs")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("backend!( ", "backend!(");
        source
            .split("backend!(\"")
            .skip(1)
            .filter_map(|call| call.split_once(");").map(|(args, _)| args))
            // Calls only (this test's own text mentions the macro too).
            .filter(|args| args.contains(", JobStore") || args.contains(", Executor"))
            .map(|args| {
                // The doc's rest, the quoted features, `module = crate, Kind`, the
                // quoted type names.
                let quoted = |s: &str| -> Vec<String> {
                    s.split('"').skip(1).step_by(2).map(str::to_owned).collect()
                };
                let (features, names) = args.split_once(" = ").expect("module = crate");
                let (_, names) = names.split_once('[').expect("[type names]");
                (
                    quoted(&features[features.find('"').expect("doc") + 1..]),
                    quoted(names),
                )
            })
            .collect::<Vec<_>>()
    }

    /// Every backend feature of Cargo.toml has its `backend!` line, and in this build
    /// (all features on) each of its types is registered by the backend crate itself.
    #[test]
    fn every_backend_feature_has_its_line_and_registers_its_types() {
        let lines = backend_lines();
        let manifest = include_str!("../Cargo.toml");
        // A backend feature brings a store or an executor crate (`http` brings the
        // management plane, which has no `type = "..."`).
        let features: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.split_once(" = [\"scheduler\", \"dep:apscheduler-"))
            .filter(|(_, rest)| rest.starts_with("store-") || rest.starts_with("executor-"))
            .map(|(name, _)| name.trim())
            .collect();
        assert!(features.len() >= 5, "{features:?}");
        for feature in &features {
            assert!(
                lines.iter().any(|(f, _)| f.iter().any(|f| f == feature)),
                "feature `{feature}` brings a backend but has no backend! line"
            );
        }
        let registry = ComponentRegistry::global();
        let known: Vec<&str> = registry
            .store_types()
            .into_iter()
            .chain(registry.executor_types())
            .collect();
        for (features, names) in &lines {
            for name in names {
                assert!(
                    known.contains(&name.as_str()),
                    "`{features:?}` on, yet '{name}' is unknown: {known:?}"
                );
            }
        }
    }
}

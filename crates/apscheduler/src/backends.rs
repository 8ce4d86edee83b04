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

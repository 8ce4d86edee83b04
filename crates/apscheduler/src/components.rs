//! What configuration files can name. Every enabled backend registers its own types when
//! it is linked (see `apscheduler_core::component`), so nothing needs to be called;
//! here the facade only says, for each backend feature that is off, which feature
//! brings the type: `job store 'default': type 'sqlalchemy' is not available in this
//! build (enable the facade feature `store-sql`)`.

#[allow(unused_imports)]
use apscheduler_core::component::{AbsentType, ComponentKind};

/// For each backend feature: the type aliases it brings. A hint is submitted for each
/// feature that is off.
macro_rules! feature_types {
    ($(($feature:literal, $kind:ident, [$($name:literal),+])),+ $(,)?) => {
        $(
            #[cfg(not(feature = $feature))]
            apscheduler_core::inventory::submit! {
                AbsentType {
                    kind: ComponentKind::$kind,
                    names: &[$($name),+],
                    remedy: concat!(
                        "is not available in this build (enable the facade feature `",
                        $feature,
                        "`)"
                    ),
                }
            }
        )+
        /// The backend features and the types each brings (for the test below).
        #[cfg(test)]
        const FEATURE_TYPES: &[(&str, &[&str])] = &[$(($feature, &[$($name),+])),+];
    };
}

feature_types![
    ("store-sql", JobStore, ["sqlalchemy", "sql"]),
    ("store-redis", JobStore, ["redis"]),
    ("store-mongodb", JobStore, ["mongodb"]),
    ("executor-process", Executor, ["processpool", "process"]),
    ("executor-rayon", Executor, ["rayon"]),
];

#[cfg(test)]
mod tests {
    use apscheduler_core::component::ComponentRegistry;

    use super::FEATURE_TYPES;

    /// Every backend feature of Cargo.toml has its hint, and in this build (all features
    /// on) each of its types is registered by the backend itself.
    #[test]
    fn every_backend_feature_has_a_hint_and_registers_its_types() {
        let manifest = include_str!("../Cargo.toml");
        let features = manifest
            .lines()
            .filter_map(|l| l.split_once(" = [\"scheduler\", \"dep:apscheduler-"))
            .map(|(name, _)| name.trim())
            .collect::<Vec<_>>();
        assert!(features.len() >= 5, "{features:?}");
        for feature in &features {
            assert!(
                FEATURE_TYPES.iter().any(|(f, _)| f == feature),
                "feature `{feature}` brings a backend but has no hint in components.rs"
            );
        }
        let registry = ComponentRegistry::global();
        let known: Vec<&str> = registry
            .store_types()
            .into_iter()
            .chain(registry.executor_types())
            .collect();
        for (feature, names) in FEATURE_TYPES {
            for name in *names {
                assert!(
                    known.contains(name),
                    "`{feature}` on, yet '{name}' is unknown: {known:?}"
                );
            }
        }
    }
}

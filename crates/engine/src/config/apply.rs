//! Building a scheduler from a [`SchedulerConfig`]: its components from the registry,
//! then the builder or a stopped engine.

use super::*;
use crate::engine::{Engine, EngineBuilder, SchedulerState};

/// The job stores and executors a configuration describes, built.
pub(super) type Built = (
    Vec<(Arc<str>, Arc<dyn JobStore>)>,
    Vec<(Arc<str>, Arc<dyn Executor>)>,
);

pub(super) fn build_components(
    config: &SchedulerConfig,
    registry: &ComponentRegistry,
) -> Result<Built, Error> {
    let mut stores = Vec::with_capacity(config.jobstores.len());
    for (alias, c) in &config.jobstores {
        stores.push((Arc::from(alias.as_str()), registry.create_store(alias, c)?));
    }
    let mut executors = Vec::with_capacity(config.executors.len());
    for (alias, c) in &config.executors {
        executors.push((
            Arc::from(alias.as_str()),
            registry.create_executor(alias, c)?,
        ));
    }
    Ok((stores, executors))
}

/// Configuration from a [`SchedulerConfig`] (method 1 and 2 of APScheduler meet here).
impl EngineBuilder {
    /// Applies a configuration: its timezone, its job defaults (options left out keep
    /// APScheduler's defaults, replacing any set earlier with
    /// [`job_defaults`](Self::job_defaults)), and its job stores and executors, built by
    /// the process-wide [`ComponentRegistry::global`].
    ///
    /// ```
    /// use apscheduler_engine::{Engine, SchedulerConfig};
    ///
    /// let config = SchedulerConfig::from_toml_str(r#"
    ///     timezone = "UTC"
    ///     [executors.default]
    ///     type = "threadpool"
    ///     max_workers = 20
    /// "#).unwrap();
    /// let engine = Engine::builder().config(&config).unwrap().build();
    /// assert_eq!(engine.timezone(), chrono_tz::UTC);
    /// ```
    ///
    /// # Errors
    /// A component that cannot be built: `InvalidInput` for a bad option or an unknown
    /// type, `NotFound` for a type not part of this build.
    pub fn config(self, config: &SchedulerConfig) -> Result<Self, Error> {
        self.config_with_registry(config, &ComponentRegistry::global())
    }

    /// [`config`](Self::config) with a given registry.
    ///
    /// # Errors
    /// As [`config`](Self::config).
    pub fn config_with_registry(
        mut self,
        config: &SchedulerConfig,
        registry: &ComponentRegistry,
    ) -> Result<Self, Error> {
        let (stores, executors) = build_components(config, registry)?;
        if let Some(tz) = config.timezone {
            self = self.timezone(tz);
        }
        if !config.job_defaults.is_empty() {
            self = self.job_defaults(config.job_defaults.apply_to(JobDefaults::default()));
        }
        for (alias, store) in stores {
            self = self.jobstore(&*alias, store);
        }
        for (alias, executor) in executors {
            self = self.executor(&*alias, executor);
        }
        Ok(self)
    }
}

/// Configuration from a [`SchedulerConfig`] (method 3 of APScheduler: `configure()`).
impl Engine {
    /// A stopped engine built from a configuration
    /// (`Engine::builder().config(config)?.build()`).
    ///
    /// # Errors
    /// As [`EngineBuilder::config`].
    pub fn from_config(config: &SchedulerConfig) -> Result<Engine, Error> {
        Ok(Engine::builder().config(config)?.build())
    }

    /// APScheduler's `configure()`: applies a configuration to a scheduler that has not
    /// been started, all at once or not at all. The timezone and the job defaults that
    /// are given replace the current ones (job defaults left out keep their current
    /// value); job stores and executors replace those with the same alias, others stay.
    /// (APScheduler resets everything not given; from a fresh scheduler both agree.)
    /// Components come from [`ComponentRegistry::global`]. Jobs added before stay
    /// pending.
    ///
    /// # Errors
    /// `InvalidState` once the scheduler has started; a component that cannot be built
    /// (as [`EngineBuilder::config`]); the scheduler is then unchanged.
    pub fn configure_with(&self, config: &SchedulerConfig) -> Result<(), Error> {
        self.configure_with_registry(config, &ComponentRegistry::global())
    }

    /// [`configure_with`](Self::configure_with) with a given registry.
    ///
    /// # Errors
    /// As [`configure_with`](Self::configure_with).
    pub fn configure_with_registry(
        &self,
        config: &SchedulerConfig,
        registry: &ComponentRegistry,
    ) -> Result<(), Error> {
        if self.state() != SchedulerState::Stopped {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "cannot configure the scheduler while it is running",
            ));
        }
        let (stores, executors) = build_components(config, registry)?;
        let job_defaults = config.job_defaults.clone();
        self.apply_configuration(
            config.timezone,
            |d| job_defaults.apply_to(d),
            stores,
            executors,
        )
    }
}

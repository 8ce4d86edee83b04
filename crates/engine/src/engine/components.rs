//! Job stores and executors of a scheduler: configuration, adding and removing them.

use super::*;

impl Engine {
    // ----------------------------------------------------------------- configuration

    /// Changes the default timezone and job defaults; only while stopped.
    ///
    /// # Errors
    /// `InvalidState` once the scheduler is running.
    pub fn configure(
        &self,
        timezone: Option<Tz>,
        defaults: Option<JobDefaults>,
    ) -> Result<(), Error> {
        let mut st = lock(&self.inner.state);
        if st.status != SchedulerState::Stopped {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "cannot configure the scheduler while it is running",
            ));
        }
        if let Some(tz) = timezone {
            st.timezone = tz;
        }
        if let Some(d) = defaults {
            st.defaults = d;
        }
        Ok(())
    }

    /// Applies a whole configuration atomically while stopped (for
    /// `Engine::configure_with` in `config.rs`): components replace those with the same
    /// alias in place, others are appended.
    pub(crate) fn apply_configuration(
        &self,
        timezone: Option<Tz>,
        defaults: impl FnOnce(JobDefaults) -> JobDefaults,
        stores: Vec<(Arc<str>, Arc<dyn JobStore>)>,
        executors: Vec<(Arc<str>, Arc<dyn Executor>)>,
    ) -> Result<(), Error> {
        pub(super) fn put<T: ?Sized>(
            list: &mut Vec<(Arc<str>, Arc<T>)>,
            alias: &Arc<str>,
            item: &Arc<T>,
        ) {
            match list.iter_mut().find(|(a, _)| a == alias) {
                Some(slot) => slot.1 = item.clone(),
                None => list.push((alias.clone(), item.clone())),
            }
        }
        {
            let mut st = lock(&self.inner.state);
            if st.status != SchedulerState::Stopped {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "cannot configure the scheduler while it is running",
                ));
            }
            if let Some(tz) = timezone {
                st.timezone = tz;
            }
            st.defaults = defaults(st.defaults.clone());
            for (alias, store) in &stores {
                put(&mut st.stores, alias, store);
            }
            for (alias, executor) in &executors {
                put(&mut st.executors, alias, executor);
            }
        }
        for (alias, _) in &executors {
            self.emit_component(event::EVENT_EXECUTOR_ADDED, alias);
        }
        for (alias, _) in &stores {
            self.emit_component(event::EVENT_JOBSTORE_ADDED, alias);
        }
        Ok(())
    }

    pub(super) fn stores(&self) -> Vec<(Arc<str>, Arc<dyn JobStore>)> {
        lock(&self.inner.state).stores.clone()
    }

    pub(super) fn executor(&self, alias: &str) -> Option<Arc<dyn Executor>> {
        lock(&self.inner.state)
            .executors
            .iter()
            .find(|(a, _)| &**a == alias)
            .map(|(_, e)| e.clone())
    }

    pub(super) fn reporter(&self) -> Arc<dyn RunReporter> {
        Arc::new(Reporter {
            dispatcher: self.inner.dispatcher.clone(),
            recorder: self.inner.history.clone(),
            clock: self.inner.clock.clone(),
            buffered: self.inner.buffered.clone(),
            cancellable: self.inner.cancellable.clone(),
            engine: Arc::downgrade(&self.inner),
            leased: self.inner.leased().is_some(),
        })
    }

    /// Whether this scheduler keeps its runs as leased rows in their stores
    /// ([`EngineBuilder::leased_runs`]); `None` before the first start when the builder
    /// left it to the stores.
    pub fn leased_runs(&self) -> Option<bool> {
        self.inner.leased.get().map(Option::is_some)
    }

    /// Adds a job store. When the scheduler runs, the store is started at once.
    ///
    /// # Errors
    /// `Conflict` when the alias is taken; the store's own start errors.
    pub async fn add_jobstore(&self, store: Arc<dyn JobStore>, alias: &str) -> Result<(), Error> {
        let alias: Arc<str> = alias.into();
        let running = {
            let st = lock(&self.inner.state);
            if st.stores.iter().any(|(a, _)| *a == alias) {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("This scheduler already has a job store by the alias of {alias}"),
                ));
            }
            st.status != SchedulerState::Stopped
        };
        store.set_change_listener(self.change_listener());
        if running {
            store.start(&alias).await?;
        }
        lock(&self.inner.state).stores.push((alias.clone(), store));
        self.emit_component(event::EVENT_JOBSTORE_ADDED, &alias);
        if running {
            self.wakeup();
        }
        Ok(())
    }

    /// Removes a job store (shutting it down when `shutdown`).
    ///
    /// # Errors
    /// `NotFound` for an unknown alias.
    pub async fn remove_jobstore(&self, alias: &str, shutdown: bool) -> Result<(), Error> {
        let store = {
            let mut st = lock(&self.inner.state);
            let i = st
                .stores
                .iter()
                .position(|(a, _)| &**a == alias)
                .ok_or_else(|| {
                    Error::new(ErrorKind::NotFound, format!("No such job store: {alias}"))
                })?;
            st.stores.remove(i)
        };
        if shutdown {
            store.1.shutdown().await?;
        }
        self.emit_component(event::EVENT_JOBSTORE_REMOVED, &store.0);
        Ok(())
    }

    /// Adds an executor. When the scheduler runs, the executor is started at once.
    ///
    /// # Errors
    /// `Conflict` when the alias is taken; the executor's start errors.
    pub fn add_executor(&self, executor: Arc<dyn Executor>, alias: &str) -> Result<(), Error> {
        let alias: Arc<str> = alias.into();
        let running = {
            let st = lock(&self.inner.state);
            if st.executors.iter().any(|(a, _)| *a == alias) {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("This scheduler already has an executor by the alias of {alias}"),
                ));
            }
            st.status != SchedulerState::Stopped
        };
        if running {
            executor.start(self.reporter())?;
        }
        lock(&self.inner.state)
            .executors
            .push((alias.clone(), executor));
        self.emit_component(event::EVENT_EXECUTOR_ADDED, &alias);
        Ok(())
    }

    /// Removes an executor (shutting it down, waiting for its jobs, when `shutdown`).
    ///
    /// # Errors
    /// `NotFound` for an unknown alias.
    pub fn remove_executor(&self, alias: &str, shutdown: bool) -> Result<(), Error> {
        let executor = {
            let mut st = lock(&self.inner.state);
            let i = st
                .executors
                .iter()
                .position(|(a, _)| &**a == alias)
                .ok_or_else(|| {
                    Error::new(ErrorKind::NotFound, format!("No such executor: {alias}"))
                })?;
            st.executors.remove(i)
        };
        if shutdown {
            executor.1.shutdown(true);
        }
        self.emit_component(event::EVENT_EXECUTOR_REMOVED, &executor.0);
        Ok(())
    }
}

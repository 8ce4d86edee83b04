//! Starting, shutting down, pausing and resuming the scheduler.

use super::*;

impl Engine {
    // ----------------------------------------------------------------- life cycle

    /// Starts the scheduler: starts executors and stores (creating the `default` memory
    /// store and thread pool when missing), adds pending jobs, and begins processing
    /// (or stays paused when `paused`).
    ///
    /// # Errors
    /// `InvalidState` when already running; a store or executor that fails to start.
    pub async fn start(&self, paused: bool) -> Result<(), Error> {
        let (stores, executors) = {
            let mut st = lock(&self.inner.state);
            if st.status != SchedulerState::Stopped {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "Scheduler is already running",
                ));
            }
            if !st.stores.iter().any(|(a, _)| &**a == DEFAULT_ALIAS) {
                st.stores
                    .push((DEFAULT_ALIAS.into(), Arc::new(MemoryJobStore::new())));
            }
            if !st.executors.iter().any(|(a, _)| &**a == DEFAULT_ALIAS) {
                st.executors
                    .push((DEFAULT_ALIAS.into(), Arc::new(ThreadPoolExecutor::new(10))));
            }
            (st.stores.clone(), st.executors.clone())
        };
        for (alias, executor) in &executors {
            executor.start(self.reporter()).map_err(|e| {
                Error::new(e.kind(), format!("executor '{alias}' failed to start: {e}"))
                    .with_source(e)
            })?;
        }
        for (alias, store) in &stores {
            match store.start(alias).await {
                Ok(()) => {}
                // A store that is down now is retried by the main loop with backoff, so
                // a scheduler can start while its database is restarting.
                Err(e) if e.kind() == ErrorKind::Unavailable => {
                    apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "job store is unavailable at start; will retry: {e}");
                }
                Err(e) => {
                    return Err(Error::new(
                        e.kind(),
                        format!("job store '{alias}' failed to start: {e}"),
                    )
                    .with_source(e))
                }
            }
        }
        let pending = {
            let mut st = lock(&self.inner.state);
            st.status = if paused {
                SchedulerState::Paused
            } else {
                SchedulerState::Running
            };
            st.pending_ids.clear();
            std::mem::take(&mut st.pending)
        };
        {
            let _guard = self.inner.jobs_lock.lock().await;
            for p in pending {
                let id = p.job.id.clone();
                if let Err(e) = self.real_add(p, self.inner.clock.now()).await {
                    apscheduler_core::log_error!(target: "apscheduler", job_id = %id, "cannot add pending job: {e}");
                }
            }
        }
        tracing::info!(target: "apscheduler", "Scheduler started");
        self.emit_scheduler(event::EVENT_SCHEDULER_STARTED, None);
        self.wakeup();
        Ok(())
    }

    /// Shuts the scheduler down: stops processing, shuts executors down (waiting for
    /// running jobs when `wait`) and closes the stores.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub async fn shutdown(&self, wait: bool) -> Result<(), Error> {
        let (stores, executors) = {
            let mut st = lock(&self.inner.state);
            if st.status == SchedulerState::Stopped {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "Scheduler is not running",
                ));
            }
            st.status = SchedulerState::Stopped;
            (st.stores.clone(), st.executors.clone())
        };
        self.wakeup();
        for (_, executor) in &executors {
            executor.shutdown(wait);
        }
        for (alias, store) in &stores {
            if let Err(e) = store.shutdown().await {
                apscheduler_core::log_warn!(target: "apscheduler", "job store '{alias}' did not shut down cleanly: {e}");
            }
        }
        tracing::info!(target: "apscheduler", "Scheduler has been shut down");
        self.emit_scheduler(event::EVENT_SCHEDULER_SHUTDOWN, None);
        Ok(())
    }

    /// Pauses job processing (jobs keep their next run times).
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn pause(&self) -> Result<(), Error> {
        if self.switch_processing(SchedulerState::Paused)? {
            tracing::info!(target: "apscheduler", "Paused scheduler job processing");
            self.emit_scheduler(event::EVENT_SCHEDULER_PAUSED, None);
        }
        Ok(())
    }

    /// Moves a started scheduler to `to` (running or paused); returns whether it changed.
    pub(super) fn switch_processing(&self, to: SchedulerState) -> Result<bool, Error> {
        let mut st = lock(&self.inner.state);
        if st.status == SchedulerState::Stopped {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "Scheduler is not running",
            ));
        }
        let changed = st.status != to;
        st.status = to;
        Ok(changed)
    }

    /// Resumes job processing.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn resume(&self) -> Result<(), Error> {
        if self.switch_processing(SchedulerState::Running)? {
            tracing::info!(target: "apscheduler", "Resumed scheduler job processing");
            self.emit_scheduler(event::EVENT_SCHEDULER_RESUMED, None);
            self.wakeup();
        }
        Ok(())
    }
}

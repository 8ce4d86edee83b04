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
        *lock(&self.inner.runtime) = Some(tokio::runtime::Handle::current());
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
        let leased = self
            .inner
            .leased
            .get_or_init(|| leased_by_default(&stores).then(leased::Leased::default))
            .is_some();
        if let Some(recorder) = &self.inner.history {
            recorder.set_protocol(if leased {
                apscheduler_core::RunProtocol::LeasedRuns
            } else {
                apscheduler_core::RunProtocol::HistoryRecords
            });
        }
        for (alias, executor) in &executors {
            executor.start(self.reporter()).map_err(|e| {
                Error::new(e.kind(), format!("executor '{alias}' failed to start: {e}"))
                    .with_source(e)
            })?;
        }
        // Stores that are down now: the main loop retries them with backoff, so a
        // scheduler can start while its database is restarting.
        let mut down: Vec<Arc<str>> = Vec::new();
        for (alias, store) in &stores {
            store.set_change_listener(self.change_listener());
            match store.start(alias).await {
                Ok(()) => {
                    lock(&self.inner.state).store_failures.remove(alias);
                }
                Err(e) if e.kind() == ErrorKind::Unavailable => {
                    apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "job store is unavailable at start; will retry: {e}");
                    down.push(alias.clone());
                    lock(&self.inner.state)
                        .store_failures
                        .insert(alias.clone(), 1);
                }
                Err(e) => {
                    self.undo_start(&stores, &executors).await;
                    return Err(Error::new(
                        e.kind(),
                        format!("job store '{alias}' failed to start: {e}"),
                    )
                    .with_source(e));
                }
            }
        }
        // All or nothing, as APScheduler's start() raises ConflictingIdError: a pending
        // job (without replace_existing) whose id is taken in its store stops the start.
        match self.pending_conflicts(&stores, &mut down).await {
            Ok(conflicts) if conflicts.is_empty() => {}
            Ok(conflicts) => {
                self.undo_start(&stores, &executors).await;
                let ids: Vec<String> = conflicts.iter().map(|id| format!("'{id}'")).collect();
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "cannot start: job identifier{} {} conflict{} with stored jobs \
                         (add them with replace_existing to replace the stored ones)",
                        if ids.len() > 1 { "s" } else { "" },
                        ids.join(", "),
                        if ids.len() > 1 { "" } else { "s" },
                    ),
                ));
            }
            Err(e) => {
                self.undo_start(&stores, &executors).await;
                return Err(e);
            }
        }
        if let Some(recorder) = &self.inner.history {
            if let Err(e) = recorder.prepare().await {
                self.undo_start(&stores, &executors).await;
                return Err(e);
            }
            recorder.start(self.interrupted_hook()).await;
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
            let mut waiting = PendingJobs::default();
            for p in pending {
                if down.contains(&p.jobstore) {
                    waiting.push(p);
                    continue;
                }
                match self.real_add(p.clone(), self.inner.clock.now()).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Unavailable => {
                        down.push(p.jobstore.clone());
                        waiting.push(p);
                    }
                    Err(e) => self.report_failed_add(&p, &e),
                }
            }
            // Jobs whose store is down wait (listed by get_jobs) until a pass finds the
            // store back; none is dropped.
            if waiting.iter().next().is_some() {
                apscheduler_core::log_warn!(target: "apscheduler", "{} job(s) wait for their job store to come back: {}", waiting.iter().count(), down.join(", "));
                lock(&self.inner.state).pending = waiting;
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
            // Jobs still waiting for a store that was down are pending again: count
            // their ids, as add_job before start does.
            let st = &mut *st;
            for p in st.pending.iter() {
                if st.pending_ids.counts_id(p.generated_id) {
                    let key = st.pending_ids.key(&p.job.id);
                    st.pending_ids.insert(key);
                }
            }
            (st.stores.clone(), st.executors.clone())
        };
        self.wakeup();
        // A pass under way finishes first (it claims no further batch now): the fire
        // times it released are started, not lost to executors already shut down.
        // Bounded, in case the shutdown was called from inside the pass (a listener).
        let pass_finished = tokio::time::timeout(PASS_FINISH_WAIT, self.inner.jobs_lock.lock())
            .await
            .is_ok();
        for (_, executor) in &executors {
            executor.shutdown(wait);
        }
        self.drop_recoveries();
        self.drop_retries();
        // The runs that ended are written as ended before the stores close; the
        // unstarted ones this scheduler holds are taken over once their leases run out.
        if self.inner.leased().is_some() {
            let with_runs: Vec<_> = stores
                .iter()
                .filter(|(_, s)| s.runs().is_some())
                .cloned()
                .collect();
            // An end goes to its store only after its record is written.
            if let Some(recorder) = &self.inner.history {
                recorder.queued_written(HISTORY_FLUSH_DEADLINE).await;
            }
            if !self.write_ends(&with_runs).await || self.ends_queued(false) {
                apscheduler_core::log_warn!(target: "apscheduler", "the ends of some runs were not written before the shutdown: once their leases run out another scheduler takes them over, records them and ends them (a started one as interrupted)");
            }
        }
        {
            // The poller of fire times waiting for runs elsewhere takes them out of
            // their list and puts back those still waiting under this lock: taken
            // outside it, the list could be empty for that moment, and those fire
            // times go unrecorded (the poller records them only while this node still
            // holds their `running` records, which the flush below ends). Not held
            // across the executors' shutdown: a job may call the scheduler. Not waited
            // for again when the pass did not finish in time.
            let _guard = if pass_finished {
                tokio::time::timeout(PASS_FINISH_WAIT, self.inner.jobs_lock.lock())
                    .await
                    .ok()
            } else {
                None
            };
            self.drop_waiting_elsewhere();
            self.drop_unreleased();
        }
        // Before the stores close: a history may share their connection.
        if let Some(recorder) = &self.inner.history {
            recorder.flush(HISTORY_FLUSH_DEADLINE, true).await;
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

    /// The ids of pending jobs (without replace_existing) already taken in their store.
    /// A store found down is added to `down`; its jobs are checked when they are added.
    async fn pending_conflicts(
        &self,
        stores: &[(Arc<str>, Arc<dyn JobStore>)],
        down: &mut Vec<Arc<str>>,
    ) -> Result<Vec<Arc<str>>, Error> {
        // Generated ids are unique by construction: only explicit ids can clash.
        let candidates: Vec<(Arc<str>, Arc<str>)> = lock(&self.inner.state)
            .pending
            .iter()
            .filter(|p| !p.replace_existing && !p.declared && !p.generated_id)
            .map(|p| (p.job.id.clone(), p.jobstore.clone()))
            .collect();
        let mut conflicts = Vec::new();
        for (id, alias) in candidates {
            if down.contains(&alias) {
                continue;
            }
            let Some((_, store)) = stores.iter().find(|(a, _)| *a == alias) else {
                continue; // reported when it is added
            };
            match store.lookup_job(&id).await {
                Ok(Some(_)) => conflicts.push(id),
                Ok(None) => {}
                Err(e) if e.kind() == ErrorKind::Unavailable => down.push(alias),
                Err(e) => return Err(e),
            }
        }
        Ok(conflicts)
    }

    /// Stops what a failed `start` started; the pending jobs stay pending.
    async fn undo_start(
        &self,
        stores: &[(Arc<str>, Arc<dyn JobStore>)],
        executors: &[(Arc<str>, Arc<dyn Executor>)],
    ) {
        for (_, executor) in executors {
            executor.shutdown(false);
        }
        for (alias, store) in stores {
            if let Err(e) = store.shutdown().await {
                apscheduler_core::log_warn!(target: "apscheduler", "job store '{alias}' did not shut down cleanly: {e}");
            }
        }
    }
}

/// Leased runs by default: when every store is persistent and keeps runs (see
/// [`EngineBuilder::leased_runs`]).
fn leased_by_default(stores: &[(Arc<str>, Arc<dyn JobStore>)]) -> bool {
    !stores.is_empty()
        && stores
            .iter()
            .all(|(_, s)| s.capabilities().persistent && s.runs().is_some())
}

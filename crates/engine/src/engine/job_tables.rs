//! Where the job API finds jobs: [`PendingTable`] before start (the jobs added so far,
//! in the order they were added) and [`StoreTable`] after (the job stores, plus any
//! pending job still waiting for its store to come back). [`Engine::job_table`] is the
//! one place that looks at the scheduler's state; the job API in [`super::jobs`] is
//! written once against [`JobTable`].

use super::jobs::apply_changes;
use super::*;

/// The operations of the job API on one kind of table.
#[apscheduler_core::async_trait]
pub(super) trait JobTable: Send + Sync {
    /// Applies `changes` to a job (`modify_job`).
    async fn modify(
        &self,
        id: &str,
        jobstore: Option<&str>,
        changes: &JobChanges,
    ) -> Result<Job, Error>;

    /// Gives a job a new trigger (`reschedule_job`); `None` when that removed it.
    async fn reschedule(
        &self,
        id: &str,
        jobstore: Option<&str>,
        trigger: Arc<dyn Trigger>,
    ) -> Result<Option<Job>, Error>;

    /// Resumes a paused job (`resume_job`); `None` when its trigger has nothing left.
    async fn resume(&self, id: &str, jobstore: Option<&str>) -> Result<Option<Job>, Error>;

    /// Removes a job; the alias of the store it was in (or meant for).
    async fn remove(&self, id: &str, jobstore: Option<&str>) -> Result<Arc<str>, Error>;

    /// Removes every job (of one store, or of all).
    async fn remove_all(&self, jobstore: Option<&str>) -> Result<(), Error>;

    /// The job with this id.
    async fn get(&self, id: &str, jobstore: Option<&str>) -> Result<Option<Job>, Error>;

    /// Every job with its store alias, unsorted.
    async fn list(&self, jobstore: Option<&str>) -> Result<Vec<(Job, Arc<str>)>, Error>;

    /// APScheduler's `print_jobs` text.
    async fn format(&self, jobstore: Option<&str>) -> Result<String, Error>;
}

impl Engine {
    /// The table the job API works on now: the pending jobs before start, the stores
    /// after.
    pub(super) fn job_table(&self) -> Box<dyn JobTable + '_> {
        if self.state() == SchedulerState::Stopped {
            Box::new(PendingTable(self))
        } else {
            Box::new(StoreTable(self))
        }
    }

    /// The pending jobs of `jobstore` (all with `None`), with their store aliases.
    fn pending_jobs(&self, jobstore: Option<&str>) -> Vec<(Job, Arc<str>)> {
        let st = lock(&self.inner.state);
        st.pending
            .iter()
            .filter(|p| jobstore.is_none_or(|j| j == &*p.jobstore))
            .map(|p| (p.job.clone(), p.jobstore.clone()))
            .collect()
    }

    /// Drops the pending jobs of `jobstore` (all with `None`).
    fn clear_pending(&self, jobstore: Option<&str>) {
        let mut st = lock(&self.inner.state);
        st.pending
            .retain(|p| jobstore.is_some_and(|j| j != &*p.jobstore));
        let State {
            pending,
            pending_ids,
            ..
        } = &mut *st;
        // Rebuilt from what is left: generated ids are counted only if they were.
        pending_ids.counts.clear();
        for p in pending.iter() {
            if pending_ids.counts_id(p.generated_id) {
                let key = pending_ids.key(&p.job.id);
                pending_ids.insert(key);
            }
        }
    }
}

/// The jobs added before start. Their run times are computed at start, so changes here
/// only mark what start must respect (an explicit next run time, a trigger given).
pub(super) struct PendingTable<'a>(&'a Engine);

impl PendingTable<'_> {
    /// Applies `f` to the first pending job with this id and reports it modified
    /// (`EVENT_JOB_MODIFIED` without a store alias, as APScheduler does).
    fn update(&self, id: &str, f: impl FnOnce(&mut Pending)) -> Result<Job, Error> {
        let job = {
            let mut st = lock(&self.0.inner.state);
            let p = st
                .pending
                .iter_mut()
                .find(|p| &*p.job.id == id)
                .ok_or_else(|| Error::job_not_found(id))?;
            f(p);
            p.job.clone()
        };
        self.0.emit_pending_modified(&job.id);
        Ok(job)
    }
}

#[apscheduler_core::async_trait]
impl JobTable for PendingTable<'_> {
    async fn modify(
        &self,
        id: &str,
        _jobstore: Option<&str>,
        changes: &JobChanges,
    ) -> Result<Job, Error> {
        self.update(id, |p| {
            apply_changes(&mut p.job, changes);
            if changes.next_run_time.is_some() {
                p.explicit_next = true;
            }
        })
    }

    async fn reschedule(
        &self,
        id: &str,
        _jobstore: Option<&str>,
        trigger: Arc<dyn Trigger>,
    ) -> Result<Option<Job>, Error> {
        self.update(id, |p| {
            p.job.trigger = trigger;
            p.job.declaration = None;
            p.run_once = false;
        })
        .map(Some)
    }

    async fn resume(&self, id: &str, _jobstore: Option<&str>) -> Result<Option<Job>, Error> {
        self.update(id, |p| {
            if p.job.next_run_time.is_none() {
                p.explicit_next = false;
            }
        })
        .map(Some)
    }

    async fn remove(&self, id: &str, jobstore: Option<&str>) -> Result<Arc<str>, Error> {
        let mut st = lock(&self.0.inner.state);
        // The first pending job with this id (two may share it, the later one added
        // with replace_existing), as APScheduler removes from its pending list.
        let mut removed = None;
        st.pending.retain(|p| {
            let hit =
                removed.is_none() && &*p.job.id == id && jobstore.is_none_or(|a| *p.jobstore == *a);
            if hit {
                removed = Some((p.generated_id, p.jobstore.clone()));
            }
            !hit
        });
        let (generated, alias) = removed.ok_or_else(|| Error::job_not_found(id))?;
        if st.pending_ids.counts_id(generated) {
            let key = st.pending_ids.key(id);
            st.pending_ids.remove(key);
        }
        Ok(alias)
    }

    async fn remove_all(&self, jobstore: Option<&str>) -> Result<(), Error> {
        self.0.clear_pending(jobstore);
        Ok(())
    }

    async fn get(&self, id: &str, jobstore: Option<&str>) -> Result<Option<Job>, Error> {
        let st = lock(&self.0.inner.state);
        let found = st
            .pending
            .iter()
            .find(|p| &*p.job.id == id && jobstore.is_none_or(|j| j == &*p.jobstore))
            .map(|p| p.job.clone());
        Ok(found)
    }

    async fn list(&self, jobstore: Option<&str>) -> Result<Vec<(Job, Arc<str>)>, Error> {
        Ok(self.0.pending_jobs(jobstore))
    }

    async fn format(&self, jobstore: Option<&str>) -> Result<String, Error> {
        let mut out = String::from("Pending jobs:\n");
        let pending = self.0.pending_jobs(jobstore);
        if pending.is_empty() {
            out.push_str("    No pending jobs\n");
        }
        for (job, _) in pending {
            let _ = writeln!(out, "    {} (trigger: {}, pending)", job.name, job.trigger);
        }
        Ok(out)
    }
}

/// The job stores of a started scheduler. Changes are written under the job lock and
/// reported by events; a store known to be down fails fast with `Unavailable`.
pub(super) struct StoreTable<'a>(&'a Engine);

#[apscheduler_core::async_trait]
impl JobTable for StoreTable<'_> {
    async fn modify(
        &self,
        id: &str,
        jobstore: Option<&str>,
        changes: &JobChanges,
    ) -> Result<Job, Error> {
        let engine = self.0;
        let _guard = engine.inner.jobs_lock.lock().await;
        let (mut job, alias, store) = engine.find(id, jobstore).await?;
        apply_changes(&mut job, changes);
        store.update_job(job.clone()).await?;
        tracing::info!(target: "apscheduler", job_id = %job.id, "Modified job");
        engine.emit_job(event::EVENT_JOB_MODIFIED, &job.id, &alias);
        engine.wakeup();
        Ok(job)
    }

    async fn reschedule(
        &self,
        id: &str,
        jobstore: Option<&str>,
        trigger: Arc<dyn Trigger>,
    ) -> Result<Option<Job>, Error> {
        let engine = self.0;
        let _guard = engine.inner.jobs_lock.lock().await;
        let (mut job, alias, store) = engine.find(id, jobstore).await?;
        let paused = job.is_paused();
        job.trigger = trigger;
        // No longer the declared trigger: the next declaration sets it back.
        job.declaration = None;
        engine.store_rescheduled(job, &alias, &store, !paused).await
    }

    async fn resume(&self, id: &str, jobstore: Option<&str>) -> Result<Option<Job>, Error> {
        let engine = self.0;
        let _guard = engine.inner.jobs_lock.lock().await;
        let (mut job, alias, store) = engine.find(id, jobstore).await?;
        if !job.is_paused() {
            return Ok(Some(job));
        }
        // A resume ends the failure streak, and with it the reason of a pause by policy.
        job.paused_reason = None;
        engine
            .inner
            .streaks
            .reset(&job.id, engine.inner.clock.now());
        if let Some(recorder) = &engine.inner.history {
            recorder.streak_changed(apscheduler_core::StreakChange::Counted, &job.id, 0, None);
        }
        engine.store_rescheduled(job, &alias, &store, true).await
    }

    async fn remove(&self, id: &str, jobstore: Option<&str>) -> Result<Arc<str>, Error> {
        let engine = self.0;
        let _guard = engine.inner.jobs_lock.lock().await;
        let (job, alias, store) = engine.find(id, jobstore).await?;
        store.remove_job(&job.id).await?;
        tracing::info!(target: "apscheduler", job_id = %job.id, "Removed job");
        Ok(alias)
    }

    async fn remove_all(&self, jobstore: Option<&str>) -> Result<(), Error> {
        let engine = self.0;
        // Pending jobs still waiting for a store that was down at start go too.
        engine.clear_pending(jobstore);
        let _guard = engine.inner.jobs_lock.lock().await;
        for (alias, store) in engine.stores() {
            if jobstore.is_some_and(|j| j != &*alias) {
                continue;
            }
            engine.fail_fast(&alias)?;
            store.remove_all_jobs().await?;
        }
        Ok(())
    }

    async fn get(&self, id: &str, jobstore: Option<&str>) -> Result<Option<Job>, Error> {
        match self.0.find(id, jobstore).await {
            Ok((job, _, _)) => Ok(Some(job)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, jobstore: Option<&str>) -> Result<Vec<(Job, Arc<str>)>, Error> {
        let engine = self.0;
        // Pending jobs still waiting for their store are listed with it.
        let mut jobs = engine.pending_jobs(jobstore);
        for (alias, store) in engine.stores() {
            if jobstore.is_some_and(|j| j != &*alias) {
                continue;
            }
            engine.fail_fast(&alias)?;
            for job in store.get_all_jobs().await? {
                jobs.push((job, alias.clone()));
            }
        }
        Ok(jobs)
    }

    async fn format(&self, jobstore: Option<&str>) -> Result<String, Error> {
        let mut out = String::new();
        for (alias, store) in self.0.stores() {
            if jobstore.is_some_and(|j| j != &*alias) {
                continue;
            }
            let _ = writeln!(out, "Jobstore {alias}:");
            let jobs = store.get_all_jobs().await?;
            if jobs.is_empty() {
                let _ = writeln!(out, "    No scheduled jobs");
            }
            for job in jobs {
                let _ = writeln!(out, "    {job}");
            }
        }
        Ok(out)
    }
}

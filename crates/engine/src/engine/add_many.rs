//! Adding many jobs in one call (`add_jobs`): each store gets one batch, written in one
//! transaction or script, instead of one commit per job.

use super::*;

impl Engine {
    /// Adds several jobs: APScheduler's `add_job` for each, in order, with one write per
    /// store. Every spec is checked before any job is added. Before start the jobs are
    /// pending, as with `add_job`. After start the jobs of each store are added all or
    /// nothing (one `JobStore::add_jobs` batch); jobs with `replace_existing` or
    /// [`declared`](JobSpec::declared) are
    /// written one by one (a paused job they replace must stay paused, which needs a
    /// lookup). The events are those of `add_job`, in the order of the specs, once the
    /// stores have the jobs.
    ///
    /// # Errors
    /// As [`Engine::add_job`] for the first spec that is refused (nothing is added);
    /// `Conflict` when an id is taken in its store (none of that store's batch is
    /// added; the batches of stores written before it stay).
    pub async fn add_jobs(&self, specs: Vec<JobSpec>) -> Result<Vec<Job>, Error> {
        let prepared = specs
            .into_iter()
            .map(|spec| self.prepare_job(spec))
            .collect::<Result<Vec<_>, _>>()?;
        let mut added = Vec::with_capacity(prepared.len());
        let mut to_store = Vec::new();
        for p in prepared {
            match self.add_pending(p)? {
                Ok(job) => added.push(job),
                Err(p) => to_store.push(p.0),
            }
        }
        if to_store.is_empty() {
            return Ok(added);
        }
        let _guard = self.inner.jobs_lock.lock().await;
        let now = self.inner.clock.now();
        let mut batches: Vec<StoreBatch> = Vec::new();
        // The jobs not yet announced, in order: (id, store alias, dropped at once).
        let mut queued: Vec<(Arc<str>, Arc<str>, bool)> = Vec::new();
        let mut earliest: Option<DateTime<Utc>> = None;
        for p in to_store {
            if p.replace_existing || p.declared {
                // Written on its own, after what comes before it, so the events stay in
                // the order of the specs.
                self.flush(&mut batches, &mut queued).await?;
                let job = self.real_add(p, now).await?;
                earliest = earliest_of(earliest, &job);
                added.push(job);
                continue;
            }
            self.fail_fast(&p.jobstore)?;
            let store = self.check_job(&p.job, &p.jobstore, true)?.ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("No such job store: {}", p.jobstore),
                )
            })?;
            let mut job = p.job;
            let local_now = now.with_timezone(&job.trigger.timezone());
            if p.run_once {
                job.trigger = Arc::new(DateTrigger::new(local_now));
            }
            if !p.explicit_next {
                job.next_run_time = job.trigger.next_fire_time(None, &local_now);
            }
            // A trigger with nothing left: announced and dropped, as add_job does.
            let dropped = job.next_run_time.is_none() && !p.explicit_next;
            queued.push((job.id.clone(), p.jobstore.clone(), dropped));
            if !dropped {
                match batches
                    .iter_mut()
                    .find(|(alias, _, _)| *alias == p.jobstore)
                {
                    Some((_, _, jobs)) => jobs.push(job.clone()),
                    None => batches.push((p.jobstore.clone(), store, vec![job.clone()])),
                }
                earliest = earliest_of(earliest, &job);
            }
            added.push(job);
        }
        self.flush(&mut batches, &mut queued).await?;
        self.inner.wake.wake_for(earliest);
        Ok(added)
    }

    /// Writes each store's batch, then announces the queued jobs in order.
    async fn flush(
        &self,
        batches: &mut Vec<StoreBatch>,
        queued: &mut Vec<(Arc<str>, Arc<str>, bool)>,
    ) -> Result<(), Error> {
        let mut written: Vec<Arc<str>> = Vec::new();
        let mut failed = None;
        for (alias, store, jobs) in batches.drain(..) {
            let count = jobs.len();
            if let Err(e) = store.add_jobs(jobs, false).await {
                failed = Some((alias, e));
                break;
            }
            tracing::info!(target: "apscheduler", jobstore = %alias, "Added {count} jobs to job store \"{alias}\"");
            written.push(alias);
        }
        // What a store has is announced even when a later store refused its batch.
        for (id, alias, dropped) in queued.drain(..) {
            if dropped {
                self.emit_job(event::EVENT_JOB_ADDED, &id, &alias);
                self.emit_job(event::EVENT_JOB_REMOVED, &id, &alias);
            } else if written.contains(&alias) {
                self.emit_job(event::EVENT_JOB_ADDED, &id, &alias);
            }
        }
        match failed {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

/// A store's alias, the store, and the jobs to write to it in one batch.
type StoreBatch = (Arc<str>, Arc<dyn JobStore>, Vec<Job>);

/// The earlier of `current` and the job's next run time.
fn earliest_of(current: Option<DateTime<Utc>>, job: &Job) -> Option<DateTime<Utc>> {
    let next = job.next_run_time.map(|t| t.with_timezone(&Utc));
    match (current, next) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

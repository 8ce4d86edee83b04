//! The job API after adding: find, modify, reschedule, pause, resume, remove, list.

use super::*;

impl Engine {
    /// Finds a job and the alias of its store (`jobstore` = `None`: search every store).
    pub(super) async fn find(
        &self,
        id: &str,
        jobstore: Option<&str>,
    ) -> Result<(Job, Arc<str>, Arc<dyn JobStore>), Error> {
        for (alias, store) in self.stores() {
            if jobstore.is_some_and(|j| j != &*alias) {
                continue;
            }
            self.fail_fast(&alias)?;
            if let Some(job) = store.lookup_job(id).await? {
                return Ok((job, alias, store));
            }
        }
        Err(Error::job_not_found(id))
    }

    /// Changes a job's options (`modify_job`).
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    pub async fn modify_job(
        &self,
        id: &str,
        jobstore: Option<&str>,
        changes: JobChanges,
    ) -> Result<Job, Error> {
        self.job_table().modify(id, jobstore, &changes).await
    }

    /// Gives a job a new trigger and recomputes its next run time from now
    /// (`reschedule_job`). A paused job stays paused; the trigger applies on resume.
    /// A trigger with no fire time left removes the job.
    ///
    /// # Errors
    /// `NotFound` for an unknown job; `InvalidInput` for a bad trigger.
    pub async fn reschedule_job(
        &self,
        id: &str,
        jobstore: Option<&str>,
        kind: &str,
        args: &Value,
    ) -> Result<Option<Job>, Error> {
        let tz = self.timezone();
        let keyed = super::add::with_hash_key(kind, args, id);
        let args = keyed.as_ref().unwrap_or(args);
        let trigger = AnyTrigger::from_args(kind, args, tz, self.now_tz(tz))?.into_shared();
        self.reschedule_job_with(id, jobstore, trigger).await
    }

    /// [`reschedule_job`](Self::reschedule_job) with a built trigger.
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    pub async fn reschedule_job_with(
        &self,
        id: &str,
        jobstore: Option<&str>,
        trigger: Arc<dyn Trigger>,
    ) -> Result<Option<Job>, Error> {
        self.job_table().reschedule(id, jobstore, trigger).await
    }

    /// Stores a job whose schedule changed: with `recompute`, its next run time is
    /// computed from now and a trigger with nothing left removes the job (`None`).
    pub(super) async fn store_rescheduled(
        &self,
        mut job: Job,
        alias: &Arc<str>,
        store: &Arc<dyn JobStore>,
        recompute: bool,
    ) -> Result<Option<Job>, Error> {
        if recompute {
            let now = self.now_tz(job.trigger.timezone());
            job.next_run_time = job.trigger.next_fire_time(None, &now);
            if job.next_run_time.is_none() {
                store.remove_job(&job.id).await?;
                self.emit_job(event::EVENT_JOB_REMOVED, &job.id, alias);
                return Ok(None);
            }
        }
        store.update_job(job.clone()).await?;
        self.emit_job(event::EVENT_JOB_MODIFIED, &job.id, alias);
        self.wakeup();
        Ok(Some(job))
    }

    /// Pauses a job (clears its next run time).
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    pub async fn pause_job(&self, id: &str, jobstore: Option<&str>) -> Result<Job, Error> {
        self.modify_job(id, jobstore, JobChanges::new().next_run_time(None))
            .await
    }

    /// Resumes a paused job: its next run time is computed from now. A job that is not
    /// paused is left as it is. A trigger with no fire time left removes the job.
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    pub async fn resume_job(&self, id: &str, jobstore: Option<&str>) -> Result<Option<Job>, Error> {
        self.job_table().resume(id, jobstore).await
    }

    /// Removes a job.
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    pub async fn remove_job(&self, id: &str, jobstore: Option<&str>) -> Result<(), Error> {
        let alias = self.job_table().remove(id, jobstore).await?;
        self.emit_job(event::EVENT_JOB_REMOVED, &Arc::from(id), &alias);
        Ok(())
    }

    /// Removes every job (of one store, or of all).
    ///
    /// # Errors
    /// Store errors.
    pub async fn remove_all_jobs(&self, jobstore: Option<&str>) -> Result<(), Error> {
        self.job_table().remove_all(jobstore).await?;
        self.emit_scheduler(event::EVENT_ALL_JOBS_REMOVED, jobstore.map(Into::into));
        Ok(())
    }

    /// The job with this id.
    ///
    /// # Errors
    /// Store errors.
    pub async fn get_job(&self, id: &str, jobstore: Option<&str>) -> Result<Option<Job>, Error> {
        self.job_table().get(id, jobstore).await
    }

    /// Every job with its store alias (pending jobs before start), ordered by next run
    /// time then id, paused last.
    ///
    /// # Errors
    /// Store errors.
    pub async fn get_jobs_with_store(
        &self,
        jobstore: Option<&str>,
    ) -> Result<Vec<(Job, Arc<str>)>, Error> {
        let mut jobs = self.job_table().list(jobstore).await?;
        jobs.sort_by(|(a, _), (b, _)| {
            (a.next_run_time.is_none(), a.next_run_time, &a.id).cmp(&(
                b.next_run_time.is_none(),
                b.next_run_time,
                &b.id,
            ))
        });
        Ok(jobs)
    }

    /// Every job (of one store, or of all).
    ///
    /// # Errors
    /// Store errors.
    pub async fn get_jobs(&self, jobstore: Option<&str>) -> Result<Vec<Job>, Error> {
        Ok(self
            .get_jobs_with_store(jobstore)
            .await?
            .into_iter()
            .map(|(j, _)| j)
            .collect())
    }

    /// APScheduler's `print_jobs` output, per store: each job with its trigger and next
    /// run time, or "paused"; pending jobs before start.
    ///
    /// # Errors
    /// Store errors.
    pub async fn format_jobs(&self, jobstore: Option<&str>) -> Result<String, Error> {
        self.job_table().format(jobstore).await
    }

    /// How many submissions of a job are in flight in its executor.
    pub fn instances(&self, job_id: &str) -> usize {
        lock(&self.inner.state)
            .executors
            .iter()
            .map(|(_, e)| e.instances(job_id))
            .sum()
    }
}

pub(super) fn apply_changes(job: &mut Job, c: &JobChanges) {
    if let Some(n) = &c.name {
        job.name = n.as_str().into();
    }
    if let Some(a) = &c.args {
        job.args = Arc::new(a.clone());
    }
    if let Some(k) = &c.kwargs {
        job.kwargs = Arc::new(k.clone());
    }
    if let Some(e) = &c.executor {
        job.executor = e.as_str().into();
    }
    if let Some(g) = c.misfire_grace_time {
        job.misfire_grace_time = g;
    }
    if let Some(co) = c.coalesce {
        job.coalesce = co;
    }
    if let Some(m) = c.max_instances {
        job.max_instances = m.max(1);
    }
    if let Some(r) = c.recover {
        job.recover = r;
    }
    if let Some(p) = &c.policy {
        job.policy = apscheduler_core::shared_policy(p);
    }
    if let Some(n) = c.next_run_time {
        job.next_run_time = n;
    }
    if let Some(t) = &c.trigger {
        job.trigger = t.clone();
        // No longer the declared trigger: the next declaration sets it back.
        job.declaration = None;
    }
}

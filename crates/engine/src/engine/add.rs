//! Adding a job: building it from a [`JobSpec`], checking it, and placing it (pending
//! before start, in its store after).

use super::*;
use apscheduler_core::RunPolicy;
use std::borrow::Cow;

impl Engine {
    // ----------------------------------------------------------------- jobs

    /// Adds a job. Before `start` it is pending and gets its first run time at start.
    ///
    /// # Errors
    /// `InvalidInput` for a bad trigger or option (naming it); `NotFound` for an unknown
    /// job store, executor or task name; `Serialization` for a closure sent to a
    /// persistent store or to an out-of-process executor; `Conflict` for a taken id
    /// without `replace_existing`.
    pub async fn add_job(&self, spec: JobSpec) -> Result<Job, Error> {
        let pending = self.prepare_job(spec)?;
        match self.add_pending(pending)? {
            Ok(job) => Ok(job),
            Err(pending) => self.add_prepared(pending).await,
        }
    }

    /// The job [`add_job`](Self::add_job) would store for `spec` in a running
    /// scheduler, built and checked (its store, executor and task exist; a persistent
    /// store gets no closure) with its first run time from now, but not stored: for a
    /// store's own way of adding, such as a SQL store's `SqlJobStore::add_job_in`, which
    /// writes it inside the caller's transaction. No event is sent: the job reaches the
    /// schedulers through the store, as a job another process added.
    ///
    /// # Errors
    /// As [`add_job`](Self::add_job); `InvalidInput` when the trigger has no fire time
    /// left.
    pub fn build_job(&self, spec: JobSpec) -> Result<Job, Error> {
        let PreparedJob(p) = self.prepare_job(spec)?;
        let mut job = p.job;
        self.check_job(&job, &p.jobstore, true)?;
        let now = self.now_tz(job.trigger.timezone());
        if p.run_once {
            job.trigger = Arc::new(DateTrigger::new(now));
        }
        if !p.explicit_next {
            job.next_run_time = job.trigger.next_fire_time(None, &now);
            if job.next_run_time.is_none() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("job '{}': its trigger has no fire time left", job.id),
                ));
            }
        }
        Ok(job)
    }

    /// Builds the job a spec describes (trigger, id, options), validated.
    pub(crate) fn prepare_job(&self, spec: JobSpec) -> Result<PreparedJob, Error> {
        let (tz, defaults, executor, jobstore) = {
            let st = lock(&self.inner.state);
            (
                st.timezone,
                st.defaults.clone(),
                shared_alias(&st.executors, spec.executor.as_deref()),
                shared_alias(&st.stores, spec.jobstore.as_deref()),
            )
        };
        let now = self.now_tz(tz);
        let id: Arc<str> = match &spec.id {
            Some(id) if id.is_empty() => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "invalid value for 'id': '': a job id must not be empty",
                ))
            }
            Some(id) => id.as_str().into(),
            // A generated id is new at every start: the declaration would add one more
            // job each time instead of finding the stored one.
            None if spec.declared => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "invalid value for 'id': none: a declared job needs an id of its own, \
                     the same at every start (JobSpec::id)",
                ))
            }
            None => new_job_id(),
        };
        let run_once = matches!(spec.trigger, TriggerSpec::RunOnce);
        let trigger: Arc<dyn Trigger> = match &spec.trigger {
            TriggerSpec::RunOnce => Arc::new(DateTrigger::new(now)),
            TriggerSpec::Args { kind, args } => match spec.jitter {
                None => match with_hash_key(kind, args, &id) {
                    Some(args) => AnyTrigger::from_args(kind, &args, tz, now)?.into_shared(),
                    None => AnyTrigger::from_args(kind, args, tz, now)?.into_shared(),
                },
                Some(j) => {
                    let mut args = with_hash_key(kind, args, &id).unwrap_or_else(|| args.clone());
                    match &mut args {
                        Value::Object(map) => {
                            map.insert("jitter".into(), serde_json::json!(j));
                        }
                        Value::Null => args = serde_json::json!({ "jitter": j }),
                        _ => {}
                    }
                    AnyTrigger::from_args(kind, &args, tz, now)?.into_shared()
                }
            },
            TriggerSpec::Built(t) => {
                if spec.jitter.is_some() {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "invalid value for 'jitter': give jitter to the trigger itself when passing a built trigger",
                    ));
                }
                t.clone()
            }
        };
        let trigger =
            match &spec.calendar {
                Some(calendar) => super::calendar::with_calendar(
                    trigger,
                    (**calendar).clone(),
                    spec.calendar_action.unwrap_or_default(),
                    &now,
                    spec.id.as_deref(),
                )?,
                None if spec.calendar_action.is_some() => return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "invalid value for 'calendar_action': it needs a calendar (JobSpec::calendar)",
                )),
                None => trigger,
            };
        let name: Arc<str> = match (&spec.name, &spec.task) {
            (Some(n), _) => n.as_str().into(),
            (None, Task::Named(n)) => n.clone(),
            (None, Task::Closure(_)) => id.clone(),
        };
        let max_instances = spec.max_instances.unwrap_or(defaults.max_instances);
        if max_instances == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "invalid value for 'max_instances': 0: must be at least 1",
            ));
        }
        // A job without its own retry policy takes the default one, unless it set its
        // whole policy (`JobSpec::policy`).
        let policy = match (&spec.policy.retry, &defaults.retry) {
            (None, Some(retry)) if !spec.policy_whole => Cow::Owned(RunPolicy {
                retry: Some(retry.clone()),
                ..spec.policy.clone()
            }),
            _ => Cow::Borrowed(&spec.policy),
        };
        policy.validate()?;
        let job = Job {
            id,
            name,
            task: spec.task.clone(),
            args: if spec.args.is_empty() {
                apscheduler_core::no_args()
            } else {
                Arc::new(spec.args.clone())
            },
            kwargs: if spec.kwargs.is_empty() {
                apscheduler_core::no_kwargs()
            } else {
                Arc::new(spec.kwargs.clone())
            },
            trigger,
            executor,
            misfire_grace_time: spec
                .misfire_grace_time
                .unwrap_or(defaults.misfire_grace_time),
            coalesce: spec.coalesce.unwrap_or(defaults.coalesce),
            max_instances,
            recover: spec.recover,
            policy: apscheduler_core::shared_policy(&policy),
            next_run_time: spec.next_run_time.flatten(),
            paused_reason: None,
            declaration: spec
                .declared
                .then(|| super::declared::declaration_of(&spec, tz)),
        };
        Ok(PreparedJob(Pending {
            job,
            jobstore,
            replace_existing: spec.replace_existing,
            declared: spec.declared,
            run_once,
            explicit_next: spec.next_run_time.is_some(),
            generated_id: spec.id.is_none(),
        }))
    }

    /// Adds a prepared job to the pending jobs if the scheduler is not started (`Ok`),
    /// or gives it back for [`Engine::add_prepared`].
    pub(crate) fn add_pending(
        &self,
        prepared: PreparedJob,
    ) -> Result<Result<Job, PreparedJob>, Error> {
        let pending = prepared.0;
        let job = pending.job.clone();
        {
            // Checked again under the lock that guards the pending jobs: `start` may
            // have taken them since.
            if lock(&self.inner.state).status != SchedulerState::Stopped {
                return Ok(Err(PreparedJob(pending)));
            }
            self.check_job(&pending.job, &pending.jobstore, false)?;
            let mut st = lock(&self.inner.state);
            if st.status != SchedulerState::Stopped {
                return Ok(Err(PreparedJob(pending)));
            }
            let st = &mut *st;
            if !pending.generated_id
                && !st.pending_ids.generated_counted
                && could_be_generated(&job.id)
            {
                // This id might equal a generated one: count those from now on.
                for p in st.pending.iter().filter(|p| p.generated_id) {
                    let key = st.pending_ids.key(&p.job.id);
                    st.pending_ids.insert(key);
                }
                st.pending_ids.generated_counted = true;
            }
            let key = st.pending_ids.key(&job.id);
            if !st.pending_ids.counts_id(pending.generated_id) {
                // A generated id, unique by construction.
            } else if !st.pending_ids.insert_new(key) {
                if st.pending.iter().any(|p| p.job.id == job.id) {
                    if !pending.replace_existing && !pending.declared {
                        return Err(Error::conflict(&job.id));
                    }
                    // Kept beside the earlier one, as APScheduler keeps its pending list:
                    // at start both are added in order (two EVENT_JOB_ADDED) and this
                    // one replaces the other.
                    st.pending_ids.insert(key);
                } else {
                    // Another id with the same hash: count this one too.
                    st.pending_ids.insert(key);
                }
            }
            st.pending.push(pending);
        }
        tracing::info!(target: "apscheduler", job_id = %job.id, "Adding job tentatively -- it will be properly scheduled when the scheduler starts");
        Ok(Ok(job))
    }

    /// Adds a prepared job to its store in a started scheduler.
    pub(crate) async fn add_prepared(&self, prepared: PreparedJob) -> Result<Job, Error> {
        let pending = prepared.0;
        self.fail_fast(&pending.jobstore)?;
        // A new job cannot be claimed or changed by anyone before it is stored, so only
        // a job replacing another takes the job lock (then the time of adding is read
        // under it, as APScheduler does). Concurrent adds then reach the store
        // together, which commits them together where it can (PostgreSQL's group
        // commit), instead of one commit after another.
        let _guard = if pending.replace_existing || pending.declared {
            Some(self.inner.jobs_lock.lock().await)
        } else {
            None
        };
        let added = self.real_add(pending, self.inner.clock.now()).await?;
        // Wakes the main loop unless it already wakes by the new job's run time.
        self.inner
            .wake
            .wake_for(added.next_run_time.map(|t| t.with_timezone(&Utc)));
        Ok(added)
    }

    /// Validates a job against the configured stores, executors and tasks; returns its
    /// store when there is one.
    pub(super) fn check_job(
        &self,
        job: &Job,
        jobstore: &str,
        require_components: bool,
    ) -> Result<Option<Arc<dyn JobStore>>, Error> {
        // Both looked up under one lock.
        let (store, executor) = {
            let st = lock(&self.inner.state);
            (
                st.stores
                    .iter()
                    .find(|(a, _)| &**a == jobstore)
                    .map(|(_, s)| s.clone()),
                st.executors
                    .iter()
                    .find(|(a, _)| **a == *job.executor)
                    .map(|(_, e)| e.clone()),
            )
        };
        if require_components {
            if store.is_none() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("No such job store: {jobstore}"),
                ));
            }
            if executor.is_none() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("No such executor: {}", job.executor),
                ));
            }
        }
        if let Task::Closure(_) = job.task {
            if let Some(store) = &store {
                if store.is_persistent() {
                    return Err(Error::new(
                        ErrorKind::Serialization,
                        format!(
                            "job '{}' runs a closure, which job store '{jobstore}' would have to \
                             serialize: register the task by name instead",
                            job.id
                        ),
                    ));
                }
            }
            if let Some(executor) = &executor {
                if !executor.runs_in_process() {
                    return Err(Error::new(
                        ErrorKind::Serialization,
                        format!(
                            "job '{}' runs a closure, which executor '{}' would have to send to \
                             another process: register the task by name instead",
                            job.id, job.executor
                        ),
                    ));
                }
            }
        }
        if let Task::Named(name) = &job.task {
            if self.resolve_task(&job.task).is_none()
                && executor.as_ref().is_none_or(|e| e.runs_in_process())
            {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("no task is registered under the name '{name}'"),
                ));
            }
        }
        Ok(store)
    }

    /// Adds the jobs that waited for `alias` since `start` found it down (caller holds
    /// `jobs_lock`). While it is still down they keep waiting and the error goes to the
    /// pass's retry; a job that cannot be added for another reason is reported.
    pub(super) async fn add_waiting_jobs(&self, alias: &Arc<str>) -> Result<(), Error> {
        let waiting: Vec<Pending> = {
            let mut st = lock(&self.inner.state);
            if st.status == SchedulerState::Stopped || st.pending.iter().next().is_none() {
                return Ok(());
            }
            let mut taken = Vec::new();
            st.pending.retain(|p| {
                if p.jobstore == *alias {
                    taken.push(p.clone());
                    false
                } else {
                    true
                }
            });
            taken
        };
        let mut waiting = waiting.into_iter();
        while let Some(p) = waiting.next() {
            match self.real_add(p.clone(), self.inner.clock.now()).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Unavailable => {
                    let mut st = lock(&self.inner.state);
                    st.pending.push(p);
                    waiting.for_each(|p| st.pending.push(p));
                    return Err(e);
                }
                Err(e) => self.report_failed_add(&p, &e),
            }
        }
        Ok(())
    }

    /// A job that could not be added at or after start: logged and reported as
    /// `EVENT_JOB_ERROR` (kind `add`), never dropped silently.
    pub(super) fn report_failed_add(&self, p: &Pending, e: &Error) {
        apscheduler_core::log_error!(target: "apscheduler", job_id = %p.job.id, jobstore = %p.jobstore, "cannot add pending job: {e}");
        let now = self.inner.clock.now().with_timezone(&Tz::UTC);
        let failure = JobFailure::new("add", e.to_string());
        let (id, alias) = (p.job.id.clone(), p.jobstore.clone());
        self.inner.dispatcher.emit(event::EVENT_JOB_ERROR, || {
            Event::error(id, alias, now, failure)
        });
    }

    /// Stores a job while the scheduler runs (caller holds `jobs_lock`).
    pub(super) async fn real_add(&self, p: Pending, now: DateTime<Utc>) -> Result<Job, Error> {
        let Pending {
            mut job,
            jobstore,
            replace_existing,
            declared,
            run_once,
            explicit_next,
            generated_id: _,
        } = p;
        let store = self.check_job(&job, &jobstore, true)?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("No such job store: {jobstore}"),
            )
        })?;
        let now = now.with_timezone(&job.trigger.timezone());
        if run_once {
            // A job without a trigger runs once, now (at start for pending jobs).
            job.trigger = Arc::new(DateTrigger::new(now));
        }
        if declared {
            return self
                .store_declared(job, &jobstore, &store, explicit_next, &now)
                .await;
        }
        if !explicit_next {
            // Re-declaring a paused job (replace_existing) keeps it paused.
            let keep_paused = replace_existing
                && store
                    .lookup_job(&job.id)
                    .await?
                    .is_some_and(|existing| existing.is_paused());
            if keep_paused {
                job.next_run_time = None;
            } else {
                job.next_run_time = job.trigger.next_fire_time(None, &now);
                if job.next_run_time.is_none() {
                    // The trigger has nothing left: announce and drop the job at once.
                    if replace_existing && store.lookup_job(&job.id).await?.is_some() {
                        store.remove_job(&job.id).await?;
                    }
                    self.emit_job(event::EVENT_JOB_ADDED, &job.id, &jobstore);
                    self.emit_job(event::EVENT_JOB_REMOVED, &job.id, &jobstore);
                    return Ok(job);
                }
            }
        }
        store.add_job(job.clone(), replace_existing).await?;
        tracing::info!(target: "apscheduler", job_id = %job.id, jobstore = %jobstore, "Added job \"{}\" to job store \"{}\"", job.name, jobstore);
        self.emit_job(event::EVENT_JOB_ADDED, &job.id, &jobstore);
        Ok(job)
    }
}

/// The alias `name` (default: [`DEFAULT_ALIAS`]) as an `Arc`, shared with the configured
/// component of that alias when there is one, so jobs do not each allocate a copy.
pub(super) fn shared_alias<T: ?Sized>(
    components: &[(Arc<str>, Arc<T>)],
    name: Option<&str>,
) -> Arc<str> {
    static DEFAULT: OnceLock<Arc<str>> = OnceLock::new();
    let name = name.unwrap_or(DEFAULT_ALIAS);
    match components.iter().find(|(alias, _)| &**alias == name) {
        Some((alias, _)) => alias.clone(),
        None if name == DEFAULT_ALIAS => DEFAULT.get_or_init(|| DEFAULT_ALIAS.into()).clone(),
        None => name.into(),
    }
}

/// Crontab arguments whose text uses Jenkins' `H` and give no `hash_key`, with the job id
/// as the key (so the job's values are the same wherever and whenever it is loaded);
/// `None` when they need no change.
pub(super) fn with_hash_key(kind: &str, args: &Value, id: &str) -> Option<Value> {
    let map = args.as_object()?;
    let expr = map.get("expr")?.as_str()?;
    if kind != "crontab" || map.contains_key("hash_key") || !crontab_uses_hash(expr) {
        return None;
    }
    let mut map = map.clone();
    map.insert("hash_key".into(), Value::String(id.to_owned()));
    Some(Value::Object(map))
}

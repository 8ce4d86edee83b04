//! Declared jobs ([`JobSpec::declared`]): a job the program declares at every start is
//! added when the store lacks it, kept when the stored one equals the declaration,
//! updated in place when only its options changed, and given its new trigger (next run
//! time from now) when the trigger changed. The trigger is compared by its declaration
//! ([`Job::declaration`]), never by the built trigger, whose state holds the instant it
//! was built at (an interval's start): comparing that would reset the schedule at
//! every start.

use super::*;
use crate::spec::TriggerSpec;

/// How many times a declaration is tried again when another scheduler added, replaced
/// or removed the job between this one's read and its write.
const RACE_RETRIES: usize = 5;

/// What a declared job's trigger is compared by: the trigger as given (kind and
/// arguments, or a built trigger's stored form), its jitter and calendar, and the
/// scheduler's time zone (the default of trigger arguments), as one JSON text.
pub(super) fn declaration_of(spec: &JobSpec, tz: Tz) -> Arc<str> {
    let trigger = match &spec.trigger {
        TriggerSpec::RunOnce => Value::Null,
        TriggerSpec::Args { kind, args } => serde_json::json!({ "kind": kind, "args": args }),
        // A trigger without a stored form lives in the memory store only: its text.
        TriggerSpec::Built(t) => t.to_state().unwrap_or_else(|| Value::from(t.to_string())),
    };
    serde_json::json!({
        "trigger": trigger,
        "timezone": tz.name(),
        "jitter": spec.jitter,
        "calendar": spec.calendar,
        "calendar_action": spec.calendar_action,
    })
    .to_string()
    .into()
}

/// Whether two jobs agree on everything a declaration gives besides the trigger.
fn same_options(a: &Job, b: &Job) -> bool {
    let same_task = match (&a.task, &b.task) {
        (Task::Named(x), Task::Named(y)) => x == y,
        // Closures cannot be compared: a new one replaces the old.
        _ => false,
    };
    same_task
        && a.name == b.name
        && a.args == b.args
        && a.kwargs == b.kwargs
        && a.executor == b.executor
        && a.misfire_grace_time == b.misfire_grace_time
        && a.coalesce == b.coalesce
        && a.max_instances == b.max_instances
        && a.recover == b.recover
        && a.policy == b.policy
}

impl Engine {
    /// Stores a declared job in `store` (caller holds `jobs_lock`): added, kept,
    /// updated or replaced, as [`JobSpec::declared`] says. `job` is built from the
    /// declaration; `explicit_next` when it gave its first run time.
    pub(super) async fn store_declared(
        &self,
        job: Job,
        jobstore: &Arc<str>,
        store: &Arc<dyn JobStore>,
        explicit_next: bool,
        now: &DateTime<Tz>,
    ) -> Result<Job, Error> {
        for _ in 0..RACE_RETRIES {
            let Some(old) = store.lookup_job(&job.id).await? else {
                let mut new = job.clone();
                if !explicit_next {
                    new.next_run_time = new.trigger.next_fire_time(None, now);
                    if new.next_run_time.is_none() {
                        // Nothing left to run: announced and dropped, as add_job does.
                        self.emit_job(event::EVENT_JOB_ADDED, &new.id, jobstore);
                        self.emit_job(event::EVENT_JOB_REMOVED, &new.id, jobstore);
                        return Ok(new);
                    }
                }
                match store.add_job(new.clone(), false).await {
                    Ok(()) => {
                        tracing::info!(target: "apscheduler", job_id = %new.id, jobstore = %jobstore, "Added declared job \"{}\" to job store \"{}\"", new.name, jobstore);
                        self.emit_job(event::EVENT_JOB_ADDED, &new.id, jobstore);
                        return Ok(new);
                    }
                    // Another scheduler declared it since the read: compared again.
                    Err(e) if e.kind() == ErrorKind::Conflict => continue,
                    Err(e) => return Err(e),
                }
            };
            let mut new = job.clone();
            let same_trigger = old.declaration.is_some() && old.declaration == new.declaration;
            if same_trigger {
                // The schedule goes on: the stored trigger (built when the job was first
                // declared), next run time and pause stay.
                new.trigger = old.trigger.clone();
                new.next_run_time = old.next_run_time;
                new.paused_reason = old.paused_reason.clone();
                if same_options(&old, &new) {
                    tracing::debug!(target: "apscheduler", job_id = %old.id, jobstore = %jobstore, "declared job \"{}\" unchanged in job store \"{}\": kept", old.name, jobstore);
                    return Ok(old);
                }
            } else if old.is_paused() {
                new.next_run_time = None;
                new.paused_reason = old.paused_reason.clone();
            } else if !explicit_next {
                new.next_run_time = new.trigger.next_fire_time(None, now);
                if new.next_run_time.is_none() {
                    // The new trigger has nothing left: the job goes.
                    match store.remove_job(&new.id).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                    self.emit_job(event::EVENT_JOB_REMOVED, &new.id, jobstore);
                    return Ok(new);
                }
            }
            match store.update_job(new.clone()).await {
                Ok(()) => {
                    let what = if same_trigger {
                        "options changed, schedule kept"
                    } else {
                        "trigger changed, next run time from now"
                    };
                    tracing::info!(target: "apscheduler", job_id = %new.id, jobstore = %jobstore, "Updated declared job \"{}\" in job store \"{}\" ({what})", new.name, jobstore);
                    self.emit_job(event::EVENT_JOB_MODIFIED, &new.id, jobstore);
                    return Ok(new);
                }
                // Removed since the read: declared again from the start.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "declared job '{}' was added, changed or removed by others {RACE_RETRIES} times \
                 while this scheduler declared it",
                job.id
            ),
        ))
    }
}

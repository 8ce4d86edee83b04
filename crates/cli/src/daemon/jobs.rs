//! Config jobs as scheduler jobs, and the sync that makes the store match the config.

use std::collections::HashMap;
use std::time::Duration;

use apscheduler_core::{Job, RunHistory, RunQuery, Trigger as _};
use apscheduler_engine::{AsyncScheduler, JobSpec};

use super::config::{JobDef, Origin};

/// The scheduler job for `def`; one that runs only at start is stored paused (its
/// trigger has no fire time: it runs by [`run_at_start`]).
pub(crate) fn spec_of(def: &JobDef) -> JobSpec {
    let spec = JobSpec::task(def.action.task_name())
        .id(def.id.clone())
        .name(def.name.clone())
        .trigger_args(def.trigger_kind.clone(), def.trigger_args.clone())
        .kwargs(def.to_kwargs())
        .misfire_grace_time(def.misfire_grace_time.map(Duration::from_secs_f64))
        .coalesce(def.coalesce)
        .max_instances(def.max_instances)
        .recover(def.recover)
        .policy(def.policy.clone());
    // The engine wraps the trigger in the calendar: the stored job carries it whole.
    let spec = match &def.calendar {
        Some(calendar) => spec
            .calendar(calendar.clone())
            .calendar_action(def.calendar_action),
        None => spec,
    };
    if def.runs_only_at_start() {
        spec.next_run_time(None)
    } else {
        spec
    }
}

/// Makes the store hold the config's jobs: new ones added, changed ones updated (their
/// next run time kept unless their schedule changed; a paused job stays paused),
/// unchanged ones left alone (their next run time kept), and
/// jobs from an earlier config that are gone from this one removed. Jobs added with
/// `aps jobs add`, and jobs the daemon did not make, are left alone.
pub(crate) async fn sync(
    scheduler: &AsyncScheduler,
    defs: &[JobDef],
    history: Option<&dyn RunHistory>,
) -> Result<(), String> {
    let stored: HashMap<String, Job> = scheduler
        .get_jobs(None)
        .await
        .map_err(|e| format!("cannot list the stored jobs: {e}"))?
        .into_iter()
        .map(|h| (h.job().id.to_string(), h.job().clone()))
        .collect();
    let (mut added, mut changed) = (0, 0);
    for def in defs {
        match stored.get(&def.id) {
            Some(job) if JobDef::from_kwargs(&job.kwargs).as_ref() == Some(def) => {}
            Some(job) => {
                // A job that ran only at start was stored paused; not paused by hand.
                let start_only =
                    JobDef::from_kwargs(&job.kwargs).is_some_and(|old| old.runs_only_at_start());
                let spec = if start_only || def.runs_only_at_start() {
                    let spec = spec_of(def).replace_existing(true);
                    if job.is_paused() && !start_only {
                        spec.next_run_time(None)
                    } else {
                        spec
                    }
                } else {
                    // The library's rule for declared jobs: updated in place, its next run
                    // time kept while its schedule is the same; a paused job stays paused.
                    spec_of(def).declared(true)
                };
                scheduler
                    .add_job(spec)
                    .await
                    .map_err(|e| format!("job '{}': cannot be replaced: {e}", def.id))?;
                changed += 1;
            }
            None if already_done(def, scheduler, history).await => {}
            // Declared, so that a later change keeps its schedule when that is the same
            // (a job that runs only at start has none).
            None => match scheduler
                .add_job(spec_of(def).declared(!def.runs_only_at_start()))
                .await
            {
                Ok(_) => added += 1,
                // Another daemon on the store added it since the listing (daemons
                // started together): theirs stands if it is this config's job.
                Err(e) if e.kind() == apscheduler_core::ErrorKind::Conflict => {
                    let theirs = scheduler
                        .get_job(&def.id)
                        .await
                        .map_err(|e| format!("job '{}': cannot be read: {e}", def.id))?;
                    let same = theirs.as_ref().is_some_and(|h| {
                        JobDef::from_kwargs(&h.job().kwargs).as_ref() == Some(def)
                    });
                    if !same {
                        scheduler
                            .add_job(spec_of(def).replace_existing(true))
                            .await
                            .map_err(|e| format!("job '{}': cannot be replaced: {e}", def.id))?;
                        changed += 1;
                    }
                }
                Err(e) => return Err(format!("job '{}': cannot be added: {e}", def.id)),
            },
        }
    }
    let mut removed = 0;
    for (id, job) in &stored {
        let from_config =
            JobDef::from_kwargs(&job.kwargs).is_some_and(|d| d.origin == Origin::Config);
        if from_config && !defs.iter().any(|d| &d.id == id) {
            match scheduler.remove_job(id).await {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == apscheduler_core::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("job '{id}': cannot be removed: {e}")),
            }
        }
    }
    tracing::info!(
        added,
        changed,
        removed,
        unchanged = defs.len() - added - changed,
        "config jobs applied to the store"
    );
    Ok(())
}

/// Whether `def` is a job that is gone from the store because it has run its last
/// fire time: a one-off (`date`) job whose fire time the history already holds. Adding
/// it again would run that fire time twice.
async fn already_done(
    def: &JobDef,
    scheduler: &AsyncScheduler,
    history: Option<&dyn RunHistory>,
) -> bool {
    let (Some(history), "date") = (history, def.trigger_kind.as_str()) else {
        return false;
    };
    if def.runs_only_at_start() {
        return false;
    }
    let tz = scheduler.engine().timezone();
    let Ok(trigger) = def.build_trigger(tz) else {
        return false;
    };
    let now = chrono::Utc::now().with_timezone(&tz);
    let Some(at) = trigger.next_fire_time(None, &now) else {
        return false;
    };
    let at = at.with_timezone(&chrono::Utc);
    let query = RunQuery {
        job_id: Some(def.id.clone()),
        since: Some(at),
        until: Some(at + chrono::Duration::microseconds(1)),
        limit: 1,
        ..RunQuery::default()
    };
    match history.query_runs(&query).await {
        Ok(runs) if !runs.is_empty() => {
            tracing::info!(job_id = %def.id, "job {} ran its one fire time ({at}) already: not added again", def.id);
            true
        }
        _ => false,
    }
}

/// Why `job` cannot be resumed, when it is one that runs only at the daemon's start:
/// it is stored paused because its trigger has no fire time, and resuming it would
/// schedule that trigger's date long past (and record it missed).
pub(crate) fn resume_refusal(job: &Job) -> Option<String> {
    JobDef::from_kwargs(&job.kwargs)
        .filter(JobDef::runs_only_at_start)
        .map(|_| {
            format!(
                "job '{}' runs only when the daemon starts (at_start, no trigger): it has no fire time to resume to; it runs at the next start",
                job.id
            )
        })
}

/// The message of the history record of a run at the daemon's start.
pub(crate) const AT_START_NOTE: &str = "run at the daemon's start (at_start)";

/// The stored jobs with `at_start` set that run at this start, as the store holds them
/// once the config is synced (each daemon on a store runs them at its own start, as
/// each machine runs its `@reboot` lines). Chosen before the management plane answers,
/// so that a job added through the API or `aps jobs add` while the daemon starts is
/// never taken for one present at start. A job paused by hand is left out; one that
/// runs only at start is paused by nature and is in.
pub(crate) async fn at_start_jobs(scheduler: &AsyncScheduler) -> Vec<String> {
    let jobs = match scheduler.get_jobs(None).await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::error!("the jobs to run at start cannot be listed, none runs: {e}");
            return Vec::new();
        }
    };
    let mut chosen = Vec::new();
    for h in jobs {
        let job = h.job();
        let Some(def) = JobDef::from_kwargs(&job.kwargs).filter(|d| d.at_start) else {
            continue;
        };
        if job.is_paused() && !def.runs_only_at_start() {
            tracing::info!(job_id = %job.id, "job {} is paused: its run at start is skipped", job.id);
            continue;
        }
        chosen.push(job.id.to_string());
    }
    chosen
}

/// Starts one run of each job of `ids` (chosen by [`at_start_jobs`]). Each run goes
/// through the scheduler like `aps jobs run` through the API: `max_instances`, events
/// and a history record.
pub(crate) async fn run_at_start(scheduler: &AsyncScheduler, ids: &[String]) {
    for id in ids {
        match scheduler
            .engine()
            .run_job_now(id, None, Some(AT_START_NOTE))
            .await
        {
            Ok(run_id) => {
                tracing::info!(job_id = %id, run_id = run_id.as_deref().unwrap_or("-"), "job {id} started at the daemon's start")
            }
            Err(e) => {
                tracing::error!(job_id = %id, "job {id}: its run at start cannot start: {e}")
            }
        }
    }
    tracing::info!(
        "runs at start: {} job(s) chosen, all handed to the scheduler",
        ids.len()
    );
}

/// Logs each job with its next fire time.
pub(crate) async fn log_jobs(scheduler: &AsyncScheduler) {
    match scheduler.get_jobs(None).await {
        Ok(jobs) => {
            for h in jobs {
                let job = h.job();
                let what = JobDef::from_kwargs(&job.kwargs)
                    .map(|d| format!("{} [{}]", d.trigger_text, d.action.summary()))
                    .unwrap_or_else(|| job.trigger.to_string());
                match &job.next_run_time {
                    Some(t) => {
                        tracing::info!(job_id = %job.id, "job {}: {what}; next run at {}", job.id, apscheduler_core::time::to_rfc3339(t))
                    }
                    None if JobDef::from_kwargs(&job.kwargs)
                        .is_some_and(|d| d.runs_only_at_start()) =>
                    {
                        tracing::info!(job_id = %job.id, "job {}: {what}; runs only at start", job.id)
                    }
                    None => tracing::info!(job_id = %job.id, "job {}: {what}; paused", job.id),
                }
            }
        }
        Err(e) => tracing::error!("cannot list the jobs: {e}"),
    }
}

//! Replays a scheduler scenario (the trace format of `tests/conformance/engine/`)
//! through the engine under a manual clock, producing the same per-step record the
//! traces hold, so any scenario can be checked against APScheduler's recorded behaviour.
//!
//! The scenario's executor runs a job at the instant of its step, completing at the end
//! of the step, or, for jobs with `hold_runs`, at a later `complete_runs` step (first in,
//! first out), which is how the traces exercise `max_instances`. Whether a run is held is
//! decided when it is submitted: a job replaced by one without `hold_runs` leaves its
//! held runs held until they are completed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::time::{parse_rfc3339, parse_timezone, to_rfc3339};
use apscheduler_core::{
    finish_run, report_each_run_time, run_sync_task, Error, ErrorKind, Event, Executor,
    InstanceTracker, JobRun, ManualClock, RunReporter, SubmitError, TaskFailure,
};
use apscheduler_store_memory::MemoryJobStore;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

use crate::config::{grace_from_json, JobDefaults};
use crate::engine::Engine;
use crate::spec::{JobChanges, JobSpec};

/// A submitted run waiting for its completion.
struct Queued {
    run: JobRun,
    /// Whether it waits for a `complete_runs` step: its job's `hold_runs` when it was
    /// submitted (the job may be replaced meanwhile).
    held: bool,
}

/// Queues runs and completes them when the replay says so.
#[derive(Default)]
struct ReplayExecutor {
    reporter: Mutex<Option<Arc<dyn RunReporter>>>,
    instances: InstanceTracker,
    queue: Mutex<VecDeque<Queued>>,
    /// The `hold_runs` of each job as last added: what its next runs get.
    held: Mutex<HashMap<String, bool>>,
}

impl std::fmt::Debug for ReplayExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayExecutor").finish_non_exhaustive()
    }
}

impl ReplayExecutor {
    fn is_held(&self, job_id: &str) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job_id)
            .copied()
            .unwrap_or(false)
    }

    /// Records the `hold_runs` of a job just added (or replaced).
    fn set_held(&self, job_id: String, held: bool) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job_id, held);
    }

    fn complete(&self, run: JobRun) {
        let Some(reporter) = self
            .reporter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        report_each_run_time(&*reporter, &run, |run_time| {
            run_sync_task(&run.task, &run.context(run_time))
        });
        finish_run(&*reporter, &run, &self.instances);
    }

    /// Completes every queued run that is not held.
    fn run_ready(&self) {
        loop {
            let next = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                let pos = q.iter().position(|r| !r.held);
                pos.and_then(|p| q.remove(p))
            };
            match next {
                Some(queued) => self.complete(queued.run),
                None => break,
            }
        }
    }

    /// Completes up to `count` held runs (of `job_id`, or any), oldest first.
    fn complete_held(&self, job_id: Option<&str>, count: Option<usize>) {
        let mut done = 0;
        while count.is_none_or(|c| done < c) {
            let next = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                let pos = q
                    .iter()
                    .position(|r| job_id.is_none_or(|j| &*r.run.job_id == j));
                pos.and_then(|p| q.remove(p))
            };
            match next {
                Some(queued) => self.complete(queued.run),
                None => break,
            }
            done += 1;
        }
    }

    fn held_runs(&self) -> Vec<String> {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|r| r.run.job_id.to_string())
            .collect()
    }
}

impl Executor for ReplayExecutor {
    fn start(&self, reporter: Arc<dyn RunReporter>) -> Result<(), Error> {
        *self.reporter.lock().unwrap_or_else(|e| e.into_inner()) = Some(reporter);
        Ok(())
    }

    fn submit(&self, run: JobRun) -> Result<(), SubmitError> {
        let reporter = self
            .reporter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(SubmitError::NotRunning)?;
        if !self.instances.try_acquire(&run.job_id, run.max_instances) {
            return Err(SubmitError::MaxInstances);
        }
        reporter.submitted(&run);
        let held = self.is_held(&run.job_id);
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Queued { run, held });
        Ok(())
    }

    fn shutdown(&self, _wait: bool) {}

    fn instances(&self, job_id: &str) -> usize {
        self.instances.count(job_id)
    }

    fn kind(&self) -> &'static str {
        "replay"
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

fn text<'a>(v: &'a Value, key: &str) -> Result<&'a str, Error> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("scenario: '{key}' must be a string")))
}

fn instant(v: &Value, key: &str) -> Result<DateTime<Utc>, Error> {
    Ok(parse_rfc3339(key, text(v, key)?, Tz::UTC)?.with_timezone(&Utc))
}

fn error_json(e: &Error) -> Value {
    json!({"type": format!("{:?}", e.kind()), "message": e.message()})
}

fn seconds_json(d: Option<Duration>) -> Value {
    match d {
        None => Value::Null,
        Some(d) if d.subsec_nanos() == 0 => json!(d.as_secs()),
        Some(d) => json!(d.as_secs_f64()),
    }
}

fn event_json(e: &Event) -> Value {
    let mut out = Map::new();
    out.insert("event".into(), json!(e.name()));
    match e {
        Event::Scheduler { .. } | Event::Component { .. } => {}
        Event::Job {
            job_id, jobstore, ..
        } => {
            out.insert("job_id".into(), json!(&**job_id));
            out.insert("jobstore".into(), json!(jobstore.as_deref()));
        }
        Event::Submission {
            job_id,
            jobstore,
            scheduled_run_times,
            ..
        } => {
            out.insert("job_id".into(), json!(&**job_id));
            out.insert("jobstore".into(), json!(&**jobstore));
            out.insert(
                "scheduled_run_times".into(),
                json!(scheduled_run_times
                    .iter()
                    .map(to_rfc3339)
                    .collect::<Vec<_>>()),
            );
        }
        Event::Execution {
            code,
            job_id,
            jobstore,
            scheduled_run_time,
            retval,
            exception,
            ..
        } => {
            out.insert("job_id".into(), json!(&**job_id));
            out.insert("jobstore".into(), json!(&**jobstore));
            out.insert(
                "scheduled_run_time".into(),
                json!(to_rfc3339(scheduled_run_time)),
            );
            if *code == apscheduler_core::event::EVENT_JOB_EXECUTED {
                out.insert("retval".into(), retval.clone().unwrap_or(Value::Null));
            }
            if let Some(x) = exception {
                out.insert(
                    "exception".into(),
                    json!({"type": x.kind, "message": x.message}),
                );
            }
        }
        _ => {}
    }
    Value::Object(out)
}

/// Whether a scenario job's runs wait for a `complete_runs` step.
fn hold_runs(job: &Value) -> bool {
    job.get("hold_runs")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Builds the spec of a scenario job, registering its task (returns `retval` or fails
/// with `ValueError(raise_message)`).
fn job_spec(engine: &Engine, job: &Value, tz: Tz) -> Result<JobSpec, Error> {
    let id = text(job, "id")?.to_owned();
    let task_name = format!("replay:{id}");
    let retval = job.get("retval").cloned().unwrap_or(Value::Null);
    let raise = job
        .get("raise_message")
        .and_then(Value::as_str)
        .map(str::to_owned);
    engine.register_task(task_name.clone(), move |_ctx| match &raise {
        Some(msg) => Err(TaskFailure::new("ValueError", msg.clone()).into()),
        None => Ok(retval.clone()),
    });
    let mut spec = JobSpec::task(task_name).id(id.clone());
    spec = spec.name(job.get("name").and_then(Value::as_str).unwrap_or(&id));
    match job.get("trigger") {
        None | Some(Value::Null) => {}
        Some(Value::String(kind)) => {
            spec = spec.trigger_args(
                kind.clone(),
                job.get("trigger_args").cloned().unwrap_or(json!({})),
            );
        }
        Some(other) => return Err(invalid(format!("scenario: bad trigger {other}"))),
    }
    if let Some(v) = job.get("misfire_grace_time") {
        spec = spec.misfire_grace_time(grace_from_json("misfire_grace_time", v)?);
    }
    if let Some(v) = job.get("coalesce") {
        spec = spec.coalesce(
            v.as_bool()
                .ok_or_else(|| invalid("scenario: coalesce must be a boolean"))?,
        );
    }
    if let Some(v) = job.get("max_instances") {
        let n = v.as_u64().filter(|n| *n >= 1 && *n <= u64::from(u32::MAX));
        spec = spec.max_instances(
            n.ok_or_else(|| invalid("scenario: max_instances must be a positive integer"))? as u32,
        );
    }
    if let Some(v) = job.get("next_run_time") {
        spec = spec.next_run_time(match v {
            Value::Null => None,
            Value::String(s) => Some(apscheduler_core::time::parse_datetime(
                "next_run_time",
                s,
                tz,
            )?),
            _ => return Err(invalid("scenario: next_run_time must be a string or null")),
        });
    }
    if job.get("replace_existing").and_then(Value::as_bool) == Some(true) {
        spec = spec.replace_existing(true);
    }
    Ok(spec)
}

/// Replays one scenario and returns one record per step (step 0 = start), in the
/// traces' `expected` shape.
///
/// # Errors
/// A malformed scenario (`InvalidInput`). Errors of the scenario's own actions are part
/// of the records, not errors of this function.
pub fn replay(scenario: &Value) -> Result<Vec<Value>, Error> {
    let tz = parse_timezone(
        "timezone",
        scenario
            .get("timezone")
            .and_then(Value::as_str)
            .unwrap_or("UTC"),
    )?;
    let start_at = instant(scenario, "start_at")?;
    let mut defaults = JobDefaults::default();
    if let Some(d) = scenario.get("job_defaults").and_then(Value::as_object) {
        if let Some(v) = d.get("misfire_grace_time") {
            defaults.misfire_grace_time = grace_from_json("misfire_grace_time", v)?;
        }
        if let Some(v) = d.get("coalesce").and_then(Value::as_bool) {
            defaults.coalesce = v;
        }
        if let Some(v) = d.get("max_instances").and_then(Value::as_u64) {
            defaults.max_instances = u32::try_from(v).unwrap_or(u32::MAX).max(1);
        }
    }
    let clock = Arc::new(ManualClock::new(start_at));
    let executor = Arc::new(ReplayExecutor::default());
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(tz)
        .job_defaults(defaults)
        .scheduler_id("replay")
        .jobstore("default", Arc::new(MemoryJobStore::new()))
        .executor("default", executor.clone())
        .build();
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = events.clone();
    engine.add_listener(
        move |e| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.clone())
        },
        apscheduler_core::event::EVENT_ALL,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(ErrorKind::Other, format!("cannot start a runtime: {e}")))?;

    let mut records = Vec::new();
    let record = |step: u64,
                  at: &str,
                  action: &str,
                  error: Option<Error>,
                  wait: Option<Option<Duration>>,
                  wakeups: u64|
     -> Value {
        engine.flush_events();
        let taken: Vec<Event> =
            std::mem::take(&mut *events.lock().unwrap_or_else(|p| p.into_inner()));
        let submitted: Vec<Value> = taken
            .iter()
            .filter_map(|e| match e {
                Event::Submission { code, job_id, scheduled_run_times, .. }
                    if *code == apscheduler_core::event::EVENT_JOB_SUBMITTED =>
                {
                    Some(json!({"job_id": &**job_id, "run_times": scheduled_run_times.iter().map(to_rfc3339).collect::<Vec<_>>()}))
                }
                _ => None,
            })
            .collect();
        let jobs = runtime
            .block_on(engine.get_jobs_with_store(None))
            .unwrap_or_default();
        let jobs_after: Vec<Value> = jobs
            .iter()
            .map(|(j, _)| {
                json!({
                    "id": &*j.id,
                    "name": &*j.name,
                    "next_run_time": j.next_run_time.as_ref().map(to_rfc3339),
                    "coalesce": j.coalesce,
                    "misfire_grace_time": seconds_json(j.misfire_grace_time),
                    "max_instances": j.max_instances,
                })
            })
            .collect();
        let mut in_flight = Map::new();
        for (j, _) in &jobs {
            let n = executor.instances(&j.id);
            if n > 0 {
                in_flight.insert(j.id.to_string(), json!(n));
            }
        }
        for id in executor.held_runs() {
            if !in_flight.contains_key(&id) {
                in_flight.insert(id.clone(), json!(executor.instances(&id)));
            }
        }
        let mut out = json!({
            "step": step,
            "at": at,
            "action": action,
            "error": error.as_ref().map(error_json),
            "events": taken.iter().map(event_json).collect::<Vec<_>>(),
            "submitted_runs": submitted,
            "jobs_after": jobs_after,
            "instances_in_flight": in_flight,
            "held_runs": executor.held_runs(),
            "scheduler_state": engine.state().as_str(),
            "wakeup_calls": wakeups,
        });
        if let Some(wait) = wait {
            out["wait_seconds"] = match wait {
                Some(w) => json!(w.as_secs_f64()),
                None => Value::Null,
            };
        }
        out
    };

    // Step 0: add the jobs (each at its own `added_at`), then start.
    let jobs = scenario
        .get("jobs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for job in &jobs {
        let added_at = match job.get("added_at") {
            Some(Value::String(_)) => instant(job, "added_at")?,
            _ => start_at,
        };
        clock.set(added_at);
        let spec = job_spec(&engine, job, tz)?;
        runtime.block_on(engine.add_job(spec))?;
        executor.set_held(text(job, "id")?.to_owned(), hold_runs(job));
    }
    clock.set(start_at);
    let wake_before = engine.wake_signal().calls();
    let paused = scenario
        .get("start_paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let err = runtime.block_on(engine.start(paused)).err();
    let wakeups = engine.wake_signal().calls() - wake_before;
    records.push(record(
        0,
        text(scenario, "start_at")?,
        "start",
        err,
        None,
        wakeups,
    ));

    for step in scenario
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let n = step
            .get("step")
            .and_then(Value::as_u64)
            .unwrap_or(records.len() as u64);
        let at = text(&step, "at")?.to_owned();
        clock.set(instant(&step, "at")?);
        let action = text(&step, "action")?.to_owned();
        let args = step.get("args").cloned().unwrap_or(json!({}));
        let job_id = args
            .get("job_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let wake_before = engine.wake_signal().calls();
        let mut wait = None;
        let result: Result<(), Error> = runtime.block_on(async {
            let id = || {
                job_id
                    .clone()
                    .ok_or_else(|| invalid("scenario: job_id missing"))
            };
            match action.as_str() {
                "process" => {
                    wait = Some(engine.process_jobs().await);
                    executor.run_ready();
                    Ok(())
                }
                "pause_job" => engine.pause_job(&id()?, None).await.map(drop),
                "resume_job" => engine.resume_job(&id()?, None).await.map(drop),
                "remove_job" => engine.remove_job(&id()?, None).await,
                "modify_job" => {
                    let changes =
                        JobChanges::from_json(args.get("changes").unwrap_or(&json!({})), tz)?;
                    engine.modify_job(&id()?, None, changes).await.map(drop)
                }
                "reschedule_job" => {
                    let kind = args
                        .get("trigger")
                        .and_then(Value::as_str)
                        .unwrap_or("date");
                    let targs = args.get("trigger_args").cloned().unwrap_or(json!({}));
                    engine
                        .reschedule_job(&id()?, None, kind, &targs)
                        .await
                        .map(drop)
                }
                "pause_scheduler" => engine.pause(),
                "resume_scheduler" => engine.resume(),
                "complete_runs" => {
                    let count = args
                        .get("count")
                        .and_then(Value::as_u64)
                        .map(|c| c as usize);
                    executor.complete_held(job_id.as_deref(), count);
                    Ok(())
                }
                "add_job" => {
                    let spec = job_spec(&engine, &args, tz)?;
                    engine.add_job(spec).await?;
                    // Only a job that was added (or replaced) changes what its next
                    // runs get; runs already queued keep theirs.
                    executor.set_held(text(&args, "id")?.to_owned(), hold_runs(&args));
                    Ok(())
                }
                other => Err(invalid(format!("scenario: unknown action '{other}'"))),
            }
        });
        let wakeups = engine.wake_signal().calls() - wake_before;
        records.push(record(n, &at, &action, result.err(), wait, wakeups));
    }
    Ok(records)
}

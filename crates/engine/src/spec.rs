//! Describing jobs to add (`add_job`'s arguments) and changes to existing jobs
//! (`modify_job`'s).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    Catchup, Overlap, RetryPolicy, RunPolicy, Task, TaskContext, TaskFn, TaskResult, Trigger,
};
use apscheduler_triggers::{AnyTrigger, CalendarAction, NamedCalendar};
use chrono::DateTime;
use chrono_tz::Tz;
use serde_json::{Map, Value};

/// The trigger of a job to add.
#[derive(Clone, Default)]
pub(crate) enum TriggerSpec {
    /// No trigger: run once, as soon as possible (at start for pending jobs).
    #[default]
    RunOnce,
    /// A trigger by kind name and APScheduler keyword arguments (`"interval"`, `{"seconds": 10}`).
    Args { kind: String, args: Value },
    /// A ready trigger.
    Built(Arc<dyn Trigger>),
}

/// Everything `add_job` takes (APScheduler's `add_job` keyword arguments).
///
/// ```
/// use apscheduler_engine::JobSpec;
/// use serde_json::json;
///
/// // add_job(job_func, 'interval', args=[1], id='1', name='a test job', max_instances=10,
/// //         jobstore='default', executor='default', seconds=10)
/// let spec = JobSpec::task("job_func")
///     .trigger_args("interval", json!({"seconds": 10}))
///     .args([json!(1)])
///     .id("1")
///     .name("a test job")
///     .max_instances(10)
///     .jobstore("default")
///     .executor("default");
/// ```
#[derive(Clone)]
pub struct JobSpec {
    pub(crate) task: Task,
    pub(crate) trigger: TriggerSpec,
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) args: Vec<Value>,
    pub(crate) kwargs: Map<String, Value>,
    pub(crate) executor: Option<String>,
    pub(crate) jobstore: Option<String>,
    pub(crate) misfire_grace_time: Option<Option<Duration>>,
    pub(crate) coalesce: Option<bool>,
    pub(crate) max_instances: Option<u32>,
    pub(crate) recover: bool,
    pub(crate) policy: RunPolicy,
    /// The whole policy was set (`policy`): the default retry policy does not apply.
    pub(crate) policy_whole: bool,
    pub(crate) next_run_time: Option<Option<DateTime<Tz>>>,
    pub(crate) replace_existing: bool,
    pub(crate) declared: bool,
    pub(crate) jitter: Option<f64>,
    /// Boxed: a calendar is large, and most jobs have none.
    pub(crate) calendar: Option<Box<NamedCalendar>>,
    pub(crate) calendar_action: Option<CalendarAction>,
}

impl JobSpec {
    fn with_task(task: Task) -> Self {
        JobSpec {
            task,
            trigger: TriggerSpec::RunOnce,
            id: None,
            name: None,
            args: Vec::new(),
            kwargs: Map::new(),
            executor: None,
            jobstore: None,
            misfire_grace_time: None,
            coalesce: None,
            max_instances: None,
            recover: false,
            policy: RunPolicy::default(),
            policy_whole: false,
            next_run_time: None,
            replace_existing: false,
            declared: false,
            jitter: None,
            calendar: None,
            calendar_action: None,
        }
    }

    /// A job running the task registered under `name` (see `Scheduler::register_task`).
    /// Such jobs can be stored in persistent stores and sent to worker processes.
    pub fn task(name: impl Into<String>) -> Self {
        Self::with_task(Task::Named(name.into().into()))
    }

    /// A [declared](Self::declared) job running the task registered under `name`, with
    /// `name` as its id and the trigger `kind` with `args` ([`trigger_args`](Self::trigger_args)):
    /// what a program that declares its jobs at every start, in every replica, writes
    /// for each. `JobSpec::declare("refresh", "interval", json!({"minutes": 5}))` is
    /// `JobSpec::task("refresh").id("refresh").trigger_args("interval", json!({"minutes":
    /// 5})).declared(true)`; the other options chain on as for any job.
    pub fn declare(name: impl Into<String>, kind: impl Into<String>, args: Value) -> Self {
        let name = name.into();
        Self::task(name.clone())
            .id(name)
            .trigger_args(kind, args)
            .declared(true)
    }

    /// A job running a closure. Only the memory store and in-process executors accept it.
    pub fn closure<F>(f: F) -> Self
    where
        F: Fn(&TaskContext) -> TaskResult + Send + Sync + 'static,
    {
        Self::with_task(Task::Closure(TaskFn::from_fn(f)))
    }

    /// A job running an async closure (on the async scheduler's runtime).
    pub fn closure_async<F, Fut>(f: F) -> Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        Self::with_task(Task::Closure(TaskFn::from_async(f)))
    }

    /// The trigger by kind and keyword arguments: `trigger_args("cron", json!({"hour": 19, "minute": 36}))`.
    /// Kinds: `date`, `interval`, `cron`, `crontab`, `calendarinterval`, `and`, `or`.
    pub fn trigger_args(mut self, kind: impl Into<String>, args: Value) -> Self {
        self.trigger = TriggerSpec::Args {
            kind: kind.into(),
            args,
        };
        self
    }

    /// A ready trigger (`CronTrigger::from_crontab(...)`, ...).
    pub fn trigger(mut self, trigger: impl Into<AnyTrigger>) -> Self {
        self.trigger = TriggerSpec::Built(trigger.into().into_shared());
        self
    }

    /// A ready trigger of any type implementing [`Trigger`] (custom triggers cannot be
    /// stored in persistent stores unless they implement `to_state`).
    pub fn trigger_dyn(mut self, trigger: Arc<dyn Trigger>) -> Self {
        self.trigger = TriggerSpec::Built(trigger);
        self
    }

    /// Job id (default: a random UUID).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Job name (default: the task name, or the id for closures).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Positional arguments.
    pub fn args(mut self, args: impl IntoIterator<Item = Value>) -> Self {
        self.args = args.into_iter().collect();
        self
    }

    /// Keyword arguments.
    pub fn kwargs(mut self, kwargs: Map<String, Value>) -> Self {
        self.kwargs = kwargs;
        self
    }

    /// One keyword argument.
    pub fn kwarg(mut self, name: impl Into<String>, value: Value) -> Self {
        self.kwargs.insert(name.into(), value);
        self
    }

    /// The executor alias (default `default`).
    pub fn executor(mut self, alias: impl Into<String>) -> Self {
        self.executor = Some(alias.into());
        self
    }

    /// The job store alias (default `default`).
    pub fn jobstore(mut self, alias: impl Into<String>) -> Self {
        self.jobstore = Some(alias.into());
        self
    }

    /// How late a run may start; `None` = run however late. Default: the scheduler's
    /// job defaults (1 s, as APScheduler).
    pub fn misfire_grace_time(mut self, grace: Option<Duration>) -> Self {
        self.misfire_grace_time = Some(grace);
        self
    }

    /// Collapse overdue runs into one (default: the scheduler's job defaults, `true`).
    pub fn coalesce(mut self, coalesce: bool) -> Self {
        self.coalesce = Some(coalesce);
        self
    }

    /// Concurrent runs allowed (default: the scheduler's job defaults, 1).
    pub fn max_instances(mut self, n: u32) -> Self {
        self.max_instances = Some(n);
        self
    }

    /// Run again a run that its node's death interrupted (Quartz's `requestsRecovery`;
    /// default `false`): the node that records the run `interrupted` starts one new run
    /// for the same fire time, however late. Needs a run history
    /// ([`EngineBuilder::run_history`](crate::EngineBuilder::run_history)); see
    /// docs/cluster.md.
    pub fn recover(mut self, recover: bool) -> Self {
        self.recover = recover;
        self
    }

    /// The whole run policy (retries, overlap, catch-up, failure streaks) at once; see
    /// docs/scheduler.md. The default is APScheduler's behaviour; a whole policy set here
    /// does not take the default retry policy ([`JobDefaults::retry`](crate::JobDefaults::retry)).
    pub fn policy(mut self, policy: RunPolicy) -> Self {
        self.policy = policy;
        self.policy_whole = true;
        self
    }

    /// Retry a failed fire time ([`RetryPolicy`]); default: the scheduler's
    /// [`JobDefaults::retry`](crate::JobDefaults::retry), none unless set.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.policy.retry = Some(retry);
        self
    }

    /// What a fire time does while a run of the job is in flight ([`Overlap`]); default
    /// `skip` at `max_instances`.
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.policy.overlap = overlap;
        self
    }

    /// How far back fire times missed during downtime still run ([`Catchup`]).
    pub fn catchup(mut self, catchup: Catchup) -> Self {
        self.policy.catchup = Some(catchup);
        self
    }

    /// Pause the job after `n` consecutive failed fire times.
    pub fn pause_after_failures(mut self, n: u32) -> Self {
        self.policy.pause_after_failures = Some(n);
        self
    }

    /// Notify after `n` consecutive failed fire times, and again when the job recovers.
    pub fn notify_after_failures(mut self, n: u32) -> Self {
        self.policy.notify_after_failures = Some(n);
        self
    }

    /// The first run time; `None` adds the job paused.
    pub fn next_run_time(mut self, t: Option<DateTime<Tz>>) -> Self {
        self.next_run_time = Some(t);
        self
    }

    /// Replace a stored job with the same id instead of failing with a conflict.
    pub fn replace_existing(mut self, replace: bool) -> Self {
        self.replace_existing = replace;
        self
    }

    /// A job the program declares at every start (the same code path in every replica
    /// and every deploy), kept in step with the store by the rule `aps` applies to its
    /// config jobs:
    ///
    /// - no stored job with this id: the job is added;
    /// - a stored job equal to the declaration: kept as it is, its schedule going on
    ///   (nothing is written, so replicas restarted faster than the interval do not
    ///   reset or starve it);
    /// - a stored job whose options changed (task, arguments, executor, grace, coalesce,
    ///   `max_instances`, `recover`, run policy, name) but not its trigger: updated in
    ///   place, its next run time and pause kept;
    /// - a stored job whose trigger changed (kind, arguments, jitter, calendar, the
    ///   scheduler's time zone): replaced, its next run time computed from now (a paused
    ///   job stays paused).
    ///
    /// Two replicas declaring the same job at once end with one job, never a
    /// `Conflict`. A job the program no longer declares stays until the program removes
    /// it (`remove_job`). A declared job changed by hand (`modify_job`) is set back to
    /// the declaration at the next start; one rescheduled by hand gets the declared
    /// trigger back. An explicit [`next_run_time`](Self::next_run_time) applies only
    /// when the job is added or its trigger changed. A built trigger
    /// ([`trigger`](Self::trigger)) is compared by its stored form: build it from fixed
    /// instants (not "now"), or give its arguments with
    /// [`trigger_args`](Self::trigger_args).
    ///
    /// A declared job needs an [`id`](Self::id): without one, adding it is an
    /// `InvalidInput` error (a generated id would differ at every start).
    pub fn declared(mut self, declared: bool) -> Self {
        self.declared = declared;
        self
    }

    /// Random delay of up to `seconds` added to each fire time (passed to the trigger).
    pub fn jitter(mut self, seconds: f64) -> Self {
        self.jitter = Some(seconds);
        self
    }

    /// An exclusion calendar: fire times it excludes do not run. The job's trigger is
    /// wrapped in an [`ExcludingTrigger`](apscheduler_triggers::ExcludingTrigger) when
    /// the job is built, so the calendar is stored with the job and every scheduler
    /// sharing the store applies the same one. What happens to an excluded fire time is
    /// [`calendar_action`](Self::calendar_action)'s (default: skip it, recording it
    /// `missed` with "excluded by calendar NAME"). Adding the job fails when the
    /// calendar excludes every remaining fire time of its trigger.
    pub fn calendar(mut self, calendar: NamedCalendar) -> Self {
        self.calendar = Some(Box::new(calendar));
        self
    }

    /// What an excluded fire time becomes: [`CalendarAction::Skip`] (the default) or
    /// [`CalendarAction::NextAllowed`] (it runs at the first instant the calendar
    /// allows). Needs [`calendar`](Self::calendar).
    pub fn calendar_action(mut self, action: CalendarAction) -> Self {
        self.calendar_action = Some(action);
        self
    }
}

impl fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobSpec")
            .field("task", &self.task)
            .field("id", &self.id)
            .field("name", &self.name)
            .field("executor", &self.executor)
            .field("jobstore", &self.jobstore)
            .finish_non_exhaustive()
    }
}

/// Changes to apply to an existing job (`modify_job`'s keyword arguments).
#[derive(Clone, Default)]
pub struct JobChanges {
    pub(crate) name: Option<String>,
    pub(crate) args: Option<Vec<Value>>,
    pub(crate) kwargs: Option<Map<String, Value>>,
    pub(crate) executor: Option<String>,
    pub(crate) misfire_grace_time: Option<Option<Duration>>,
    pub(crate) coalesce: Option<bool>,
    pub(crate) max_instances: Option<u32>,
    pub(crate) recover: Option<bool>,
    pub(crate) policy: Option<RunPolicy>,
    pub(crate) next_run_time: Option<Option<DateTime<Tz>>>,
    pub(crate) trigger: Option<Arc<dyn Trigger>>,
}

impl JobChanges {
    /// No changes yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// New name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// New positional arguments.
    pub fn args(mut self, args: impl IntoIterator<Item = Value>) -> Self {
        self.args = Some(args.into_iter().collect());
        self
    }
    /// New keyword arguments.
    pub fn kwargs(mut self, kwargs: Map<String, Value>) -> Self {
        self.kwargs = Some(kwargs);
        self
    }
    /// New executor alias.
    pub fn executor(mut self, alias: impl Into<String>) -> Self {
        self.executor = Some(alias.into());
        self
    }
    /// New misfire grace time.
    pub fn misfire_grace_time(mut self, grace: Option<Duration>) -> Self {
        self.misfire_grace_time = Some(grace);
        self
    }
    /// New coalesce flag.
    pub fn coalesce(mut self, coalesce: bool) -> Self {
        self.coalesce = Some(coalesce);
        self
    }
    /// New instance limit.
    pub fn max_instances(mut self, n: u32) -> Self {
        self.max_instances = Some(n);
        self
    }
    /// New recovery flag (see [`JobSpec::recover`]).
    pub fn recover(mut self, recover: bool) -> Self {
        self.recover = Some(recover);
        self
    }
    /// New run policy (see [`JobSpec::policy`]).
    pub fn policy(mut self, policy: RunPolicy) -> Self {
        self.policy = Some(policy);
        self
    }
    /// New next run time (`None` pauses the job).
    pub fn next_run_time(mut self, t: Option<DateTime<Tz>>) -> Self {
        self.next_run_time = Some(t);
        self
    }
    /// New trigger (without recomputing the next run time; see `reschedule_job`).
    pub fn trigger(mut self, trigger: impl Into<AnyTrigger>) -> Self {
        self.trigger = Some(trigger.into().into_shared());
        self
    }

    /// Reads changes from JSON (`{"name": ..., "max_instances": 2, "misfire_grace_time": null, ...}`).
    ///
    /// # Errors
    /// Unknown keys or values of the wrong type, naming the key.
    pub fn from_json(changes: &Value, tz: Tz) -> Result<Self, apscheduler_core::Error> {
        use apscheduler_core::{Error, ErrorKind};
        let bad = |key: &str, v: &Value, why: &str| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("invalid value for '{key}': {v}: {why}"),
            )
        };
        let map = changes
            .as_object()
            .ok_or_else(|| bad("changes", changes, "expected an object"))?;
        let mut out = JobChanges::new();
        for (key, v) in map {
            match key.as_str() {
                "name" => {
                    out.name = Some(
                        v.as_str()
                            .ok_or_else(|| bad(key, v, "expected a string"))?
                            .to_owned(),
                    )
                }
                "args" => {
                    out.args = Some(
                        v.as_array()
                            .ok_or_else(|| bad(key, v, "expected a list"))?
                            .clone(),
                    )
                }
                "kwargs" => {
                    out.kwargs = Some(
                        v.as_object()
                            .ok_or_else(|| bad(key, v, "expected an object"))?
                            .clone(),
                    )
                }
                "executor" => {
                    out.executor = Some(
                        v.as_str()
                            .ok_or_else(|| bad(key, v, "expected a string"))?
                            .to_owned(),
                    )
                }
                "coalesce" => {
                    out.coalesce = Some(
                        v.as_bool()
                            .ok_or_else(|| bad(key, v, "expected a boolean"))?,
                    )
                }
                "recover" => {
                    out.recover = Some(
                        v.as_bool()
                            .ok_or_else(|| bad(key, v, "expected a boolean"))?,
                    )
                }
                "max_instances" => {
                    let n = v
                        .as_u64()
                        .filter(|n| *n >= 1 && *n <= u64::from(u32::MAX))
                        .ok_or_else(|| bad(key, v, "expected a positive integer"))?;
                    out.max_instances = Some(n as u32);
                }
                "misfire_grace_time" => {
                    out.misfire_grace_time = Some(crate::config::grace_from_json(key, v)?)
                }
                "next_run_time" => {
                    out.next_run_time = Some(match v {
                        Value::Null => None,
                        Value::String(s) => Some(apscheduler_core::time::parse_datetime(
                            "next_run_time",
                            s,
                            tz,
                        )?),
                        _ => return Err(bad(key, v, "expected a datetime string or null")),
                    })
                }
                _ => return Err(bad(key, v, "not a job option that can be modified")),
            }
        }
        Ok(out)
    }
}

impl fmt::Debug for JobChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobChanges")
            .field("name", &self.name)
            .field("max_instances", &self.max_instances)
            .field("coalesce", &self.coalesce)
            .field("recover", &self.recover)
            .finish_non_exhaustive()
    }
}

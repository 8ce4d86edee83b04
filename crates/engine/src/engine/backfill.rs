//! Backfill: running a job's fire times of a past (or any) range, each as a run of that
//! fire time recorded with `backfill: true`, at a limited rate, skipping the fire
//! times that already have a `success` run. Planning checks everything first, so a
//! request is either refused whole (a typed error naming the field) or started whole.
//!
//! The runs are started by a task on this scheduler. If the scheduler stops or its
//! process dies, the fire times not started yet are not run; the log says how far it
//! got, and a second backfill of the same range runs only what did not succeed. With
//! leased runs each run is a row (`RunOrigin::Backfill`) the store starts: it counts
//! toward `max_instances` on every scheduler; a fire time whose run the store still
//! keeps is run again as that run's rerun (same idempotency key), unless it is going.

use std::collections::{HashSet, VecDeque};
// tokio's Instant: the system monotonic clock, and a paused runtime's virtual one (the
// deterministic simulation, crates/sim).
use tokio::time::Instant;

use super::pass::PassLookups;
use super::*;
use apscheduler_core::{
    NewRun, Overlap, Run, RunHistory, RunKey, RunOrigin, RunPolicy, RunQuery, RunState, RunStore,
};
use serde::{Deserialize, Serialize};

/// Backfill rate when none is given: runs started per second.
pub const DEFAULT_BACKFILL_RATE: f64 = 10.0;

/// The most fire times a backfill covers without [`BackfillRequest::force`].
pub const DEFAULT_BACKFILL_MAX: usize = 10_000;

/// The most fire times a backfill covers even with `force`: bounds the plan's memory.
pub const BACKFILL_HARD_MAX: usize = 10_000_000;

/// The highest rate accepted (runs per second).
pub const BACKFILL_MAX_RATE: f64 = 1_000_000.0;

/// How often a backfill waiting for a free instance of its job looks again.
const INSTANCE_POLL: Duration = Duration::from_millis(5);

/// How often the backfill task checks that its job still exists.
const JOB_CHECK: Duration = Duration::from_secs(1);

/// What to backfill ([`Engine::backfill`]). Build with [`BackfillRequest::new`] and
/// adjust the fields; the JSON form (HTTP API) takes the same field names, all but
/// `from` and `to` optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// The first instant of the range (inclusive).
    pub from: DateTime<Utc>,
    /// The end of the range (exclusive).
    pub to: DateTime<Utc>,
    /// Only plan: report what would run and what is skipped, run nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The overlap policy for the backfill's runs instead of the job's.
    #[serde(default)]
    pub overlap: Option<Overlap>,
    /// Runs started per second at most.
    #[serde(default = "default_rate")]
    pub rate_per_sec: f64,
    /// Accept more than `max_fire_times` fire times.
    #[serde(default)]
    pub force: bool,
    /// Run fire times that already have a `success` run too.
    #[serde(default)]
    pub rerun_succeeded: bool,
    /// The most fire times accepted without `force`.
    #[serde(default = "default_max")]
    pub max_fire_times: usize,
}

fn default_rate() -> f64 {
    DEFAULT_BACKFILL_RATE
}

fn default_max() -> usize {
    DEFAULT_BACKFILL_MAX
}

impl BackfillRequest {
    /// A backfill of `[from, to)` with the defaults: runs for real, the job's overlap
    /// policy, [`DEFAULT_BACKFILL_RATE`], at most [`DEFAULT_BACKFILL_MAX`] fire times,
    /// succeeded fire times skipped.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        BackfillRequest {
            from,
            to,
            dry_run: false,
            overlap: None,
            rate_per_sec: DEFAULT_BACKFILL_RATE,
            force: false,
            rerun_succeeded: false,
            max_fire_times: DEFAULT_BACKFILL_MAX,
        }
    }
}

/// What a backfill runs (or, with `dry_run`, would run) and what it skips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillReport {
    /// The job.
    pub job_id: String,
    /// The range, as requested.
    pub from: DateTime<Utc>,
    /// The range's exclusive end.
    pub to: DateTime<Utc>,
    /// Whether nothing was started.
    pub dry_run: bool,
    /// The overlap policy the runs go by.
    pub overlap: Overlap,
    /// Runs started per second at most.
    pub rate_per_sec: f64,
    /// The fire times run (or to run), oldest first.
    pub to_run: Vec<DateTime<Utc>>,
    /// The fire times skipped because a run of them already succeeded.
    pub already_succeeded: Vec<DateTime<Utc>>,
    /// The fire times skipped because the job's exclusion calendar excludes them.
    pub excluded: Vec<DateTime<Utc>>,
    /// How long starting every run takes at the rate, in seconds.
    pub estimated_seconds: f64,
}

fn invalid(field: &str, value: impl fmt::Display, why: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("invalid value for field '{field}': '{value}': {why}"),
    )
}

impl Engine {
    /// Backfills job `id`: runs every fire time of its trigger in `[from, to)` that
    /// has no `success` run in the history yet, each as a run of that fire time
    /// (recorded with `backfill: true`), at most `rate_per_sec` a second, under the
    /// job's overlap policy (or the request's). Returns once the plan is made and, unless
    /// `dry_run`, its runs are handed to a task that starts them at the rate.
    ///
    /// # Errors
    /// Nothing is started when the request is refused:
    /// `InvalidInput` naming the field for a `rate_per_sec` that is not a positive
    /// number up to [`BACKFILL_MAX_RATE`], a `to` not after `from`, a `from` before the
    /// job's first fire time (its trigger's start), a range of more than
    /// `max_fire_times` fire times without `force` (or more than
    /// [`BACKFILL_HARD_MAX`]); `NotFound` for an unknown job; `InvalidState` when the
    /// scheduler keeps no run history (it cannot tell what succeeded: set
    /// `rerun_succeeded`) or, unless `dry_run`, is not running; history and store
    /// errors.
    pub async fn backfill(
        &self,
        id: &str,
        request: &BackfillRequest,
    ) -> Result<BackfillReport, Error> {
        let rate = request.rate_per_sec;
        if !(rate.is_finite() && rate > 0.0 && rate <= BACKFILL_MAX_RATE) {
            return Err(invalid(
                "rate_per_sec",
                rate,
                format!(
                    "expected a number of runs per second above 0 and up to {BACKFILL_MAX_RATE}"
                ),
            ));
        }
        if request.to <= request.from {
            return Err(invalid(
                "to",
                request.to.to_rfc3339(),
                format!(
                    "the range's end must be after its start ('from' = {})",
                    request.from.to_rfc3339()
                ),
            ));
        }
        if !request.dry_run && self.state() != SchedulerState::Running {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "job '{id}' cannot be backfilled: the scheduler is {}",
                    self.state().as_str()
                ),
            ));
        }
        let history = self.inner.history.as_ref().map(|r| r.history().clone());
        if history.is_none() && !request.rerun_succeeded {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("job '{id}' cannot be backfilled: this scheduler keeps no run history, so it cannot tell which fire times succeeded (set 'rerun_succeeded' to run them all)"),
            ));
        }
        let (job, alias, _) = self.find(id, None).await?;
        let limit = if request.force {
            BACKFILL_HARD_MAX
        } else {
            request.max_fire_times.min(BACKFILL_HARD_MAX)
        };
        let (times, excluded) = fire_times(&job, request, limit)?;
        let succeeded = match (&history, request.rerun_succeeded) {
            (Some(history), false) if !times.is_empty() => {
                succeeded_in(history.as_ref(), id, request.from, request.to).await?
            }
            _ => HashSet::new(),
        };
        let (already_succeeded, to_run): (Vec<_>, Vec<_>) =
            times.into_iter().partition(|t| succeeded.contains(t));
        let overlap = request.overlap.unwrap_or(job.policy.overlap);
        let report = BackfillReport {
            job_id: id.to_owned(),
            from: request.from,
            to: request.to,
            dry_run: request.dry_run,
            overlap,
            rate_per_sec: rate,
            estimated_seconds: to_run.len() as f64 / rate,
            to_run,
            already_succeeded,
            excluded,
        };
        if request.dry_run || report.to_run.is_empty() {
            return Ok(report);
        }
        let job = with_overlap(job, overlap);
        tracing::info!(target: "apscheduler", job_id = %job.id, "backfill of job \"{}\" from {} to {}: {} run(s) at up to {rate}/s, {} already succeeded, {} excluded", job.name, request.from.to_rfc3339(), request.to.to_rfc3339(), report.to_run.len(), report.already_succeeded.len(), report.excluded.len());
        let engine = self.clone();
        let times = report.to_run.clone();
        tokio::spawn(async move { engine.run_backfill(alias, job, times, rate).await });
        Ok(report)
    }

    /// Starts the runs of `times` at `rate` a second; stops (saying how far it got) when
    /// the scheduler shuts down or the job is removed, waits while it is paused.
    async fn run_backfill(&self, alias: Arc<str>, job: Job, times: Vec<DateTime<Utc>>, rate: f64) {
        let total = times.len();
        let mut origin = Instant::now();
        let mut checked = Instant::now();
        let mut started = 0;
        while started < total {
            match self.state() {
                SchedulerState::Running => {}
                SchedulerState::Paused => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // Resume at the rate, not with a burst for the time paused.
                    origin = Instant::now() - Duration::from_secs_f64(started as f64 / rate);
                    continue;
                }
                SchedulerState::Stopped => {
                    apscheduler_core::log_warn!(target: "apscheduler", job_id = %job.id, "backfill of job \"{}\" stopped with the scheduler after {started} of {total} run(s); the fire times from {} on were not run", job.name, times[started].to_rfc3339());
                    return;
                }
            }
            if checked.elapsed() >= JOB_CHECK {
                checked = Instant::now();
                if let Err(e) = self.find(&job.id, Some(&alias)).await {
                    if e.kind() == ErrorKind::NotFound {
                        apscheduler_core::log_warn!(target: "apscheduler", job_id = %job.id, "backfill of job \"{}\" stopped after {started} of {total} run(s): the job was removed; the fire times from {} on were not run", job.name, times[started].to_rfc3339());
                        return;
                    }
                }
            }
            // Runs due by now at the rate (the first at once), started as one batch.
            let due = ((origin.elapsed().as_secs_f64() * rate) as usize + 1).min(total);
            if due <= started {
                let next = Duration::from_secs_f64(started as f64 / rate);
                tokio::time::sleep(next.saturating_sub(origin.elapsed())).await;
                continue;
            }
            // Under `skip`, the backfill waits for a free instance rather than skipping
            // its own fire times: at most `max_instances` of the job's runs at once.
            let due = if job.policy.overlap == Overlap::Skip {
                // With leased runs, a run counts until its end is in the store.
                let going = self.instances(&job.id).max(self.held_instances(&job.id));
                let free = (job.max_instances as usize).saturating_sub(going);
                if free == 0 {
                    tokio::time::sleep(INSTANCE_POLL).await;
                    // Resume at the rate, not with a burst for the time waited.
                    origin = Instant::now() - Duration::from_secs_f64(started as f64 / rate);
                    continue;
                }
                due.min(started + free)
            } else {
                due
            };
            self.start_backfill_runs(&alias, &job, &times[started..due])
                .await;
            started = due;
        }
        tracing::info!(target: "apscheduler", job_id = %job.id, "backfill of job \"{}\": all {total} run(s) started", job.name);
    }

    /// Starts one run of `job` per fire time, each recorded `running` with
    /// `backfill: true` before it starts. With leased runs each is a row
    /// (`RunOrigin::Backfill`) the store starts, counted toward `max_instances` on
    /// every scheduler.
    async fn start_backfill_runs(&self, alias: &Arc<str>, job: &Job, times: &[DateTime<Utc>]) {
        let mut used = PassLookups::default();
        let tz = job.trigger.timezone();
        let planned: Vec<_> = times
            .iter()
            .filter_map(|t| self.plan_run(alias, job, vec![t.with_timezone(&tz)], &mut used))
            .collect();
        let store = self.stores().into_iter().find(|(a, _)| a == alias);
        if let Some(runs) = store.as_ref().and_then(|(_, s)| self.run_store(s)) {
            self.start_backfill_rows(alias, runs, job, planned, &mut used)
                .await;
            used.flush();
            return;
        }
        if let Some(recorder) = &self.inner.history {
            recorder
                .begin_marked(planned.iter().map(|p| p.run()), None, false, true)
                .await;
        }
        // The instance counted free may go to the job's own fire time before the
        // submission: under `skip` the run then waits for the next free instance.
        let wait = job.policy.overlap == Overlap::Skip;
        let mut queue: VecDeque<_> = planned.into();
        while let Some(run) = queue.pop_front() {
            let Some(back) = self.start_or_give_back(alias, run, &mut used, &[], wait) else {
                continue;
            };
            queue.push_front(back);
            used.flush();
            if !self.wait_while_running(INSTANCE_POLL).await {
                self.backfill_stopped(job, queue);
                return;
            }
        }
        used.flush();
    }

    /// Sleeps `pause`, then longer while the scheduler is paused; false once it stopped.
    async fn wait_while_running(&self, pause: Duration) -> bool {
        loop {
            tokio::time::sleep(pause).await;
            match self.state() {
                SchedulerState::Running => return true,
                SchedulerState::Paused => {}
                SchedulerState::Stopped => return false,
            }
        }
    }

    /// The backfill's runs recorded `running` that the scheduler stopped before they
    /// got an instance: each recorded `missed`, with a warning.
    fn backfill_stopped(&self, job: &Job, waiting: VecDeque<super::start::PlannedRun>) {
        let Some(first) = waiting.front().map(|p| p.run().run_times[0]) else {
            return;
        };
        apscheduler_core::log_warn!(target: "apscheduler", job_id = %job.id, "backfill of job \"{}\" stopped with the scheduler while {} run(s) waited for a free instance; the fire times from {} on were not run", job.name, waiting.len(), first.to_rfc3339());
        let Some(recorder) = &self.inner.history else {
            return;
        };
        for p in waiting {
            let run = p.run();
            for (i, &t) in run.run_times.iter().enumerate() {
                let reason =
                    "not run: the scheduler stopped while the backfill waited for a free instance";
                recorder.not_run_as(
                    run.run_ids.get(i),
                    &job.id,
                    t,
                    RunOutcome::Missed,
                    reason.to_string(),
                );
            }
        }
    }

    /// The leased path of [`start_backfill_runs`](Self::start_backfill_runs): creates
    /// the rows (no misfire grace), records them, has the store start them.
    async fn start_backfill_rows(
        &self,
        alias: &Arc<str>,
        runs: &dyn RunStore,
        job: &Job,
        planned: Vec<super::start::PlannedRun>,
        used: &mut PassLookups,
    ) {
        let new: Vec<NewRun> = planned
            .iter()
            .map(|p| {
                let fire = p.run().run_times[0].with_timezone(&Utc);
                let rules = p.rules(fire);
                NewRun {
                    key: RunKey::first(job.id.clone(), fire),
                    state: RunState::Claimed,
                    rules: apscheduler_core::RunRules {
                        grace_until: None,
                        // Under `skip` the backfill waits for an instance rather than
                        // skipping its own fire times; the store may find the job at
                        // `max_instances` (another scheduler's run, or this one's fire
                        // time starting meanwhile): the row then waits there, in order.
                        overlap: match rules.overlap {
                            Overlap::Skip => Overlap::BufferAll,
                            other => other,
                        },
                        ..rules
                    },
                    origin: RunOrigin::Backfill,
                }
            })
            .collect();
        let mut rows = match self.insert_backfill_rows(runs, job, new).await {
            Ok(rows) => rows,
            Err(e) => {
                // Created or not: created rows are this scheduler's, and a sweep
                // starts them once their lease runs out.
                apscheduler_core::log_error!(target: "apscheduler", job_id = %job.id, "backfill of job \"{}\": the store did not confirm the creation of {} run(s) ({e}): those it created start once their lease runs out, the others are not run", job.name, planned.len());
                return;
            }
        };
        let mut starting = Vec::with_capacity(planned.len());
        for mut p in planned {
            let fire = p.run().run_times[0].with_timezone(&Utc);
            match rows.remove(&fire) {
                Some(row) => {
                    p.run.run_ids = vec![row.id.clone()];
                    starting.push((p, vec![row]));
                }
                None => {
                    apscheduler_core::log_warn!(target: "apscheduler", job_id = %job.id, "backfill of job \"{}\": fire time {} not run: a run of it is going", job.name, fire.to_rfc3339());
                }
            }
        }
        if let Some(recorder) = &self.inner.history {
            recorder
                .begin_marked(starting.iter().map(|(p, _)| p.run()), None, false, true)
                .await;
        }
        self.start_rows(alias, runs, starting, used).await;
    }
}

impl Engine {
    /// Creates the backfill's rows, by fire time. A fire time whose run the store still
    /// keeps (ended lately: missed, failed) gets a run again (`RunKey::rerun`, the same
    /// idempotency key), unless that run is live (going, or waiting to start).
    async fn insert_backfill_rows(
        &self,
        runs: &dyn RunStore,
        job: &Job,
        new: Vec<NewRun>,
    ) -> Result<HashMap<DateTime<Utc>, Run>, Error> {
        let (id, lease) = (&self.inner.scheduler_id, self.inner.lease);
        let mut rows: HashMap<DateTime<Utc>, Run> = HashMap::new();
        let mut kept = Vec::new();
        let created = runs.insert_runs(id, new.clone(), lease).await?;
        rows.extend(created.into_iter().map(|r| (r.key.fire_time, r)));
        for run in new {
            if !rows.contains_key(&run.key.fire_time) {
                kept.push(run);
            }
        }
        if kept.is_empty() {
            return Ok(rows);
        }
        let existing = runs.runs_of_job(&job.id).await?;
        let again: Vec<NewRun> = kept
            .into_iter()
            .filter_map(|mut run| {
                let same = existing
                    .iter()
                    .filter(|r| r.key.fire_time == run.key.fire_time && r.key.attempt == 1);
                let (mut live, mut last) = (false, None::<RunKey>);
                for r in same {
                    live |= r.state.is_live();
                    if last.as_ref().is_none_or(|k| r.key.rerun > k.rerun) {
                        last = Some(r.key.clone());
                    }
                }
                run.key = last?.rerun();
                (!live).then_some(run)
            })
            .collect();
        if !again.is_empty() {
            let created = runs.insert_runs(id, again, lease).await?;
            rows.extend(created.into_iter().map(|r| (r.key.fire_time, r)));
        }
        Ok(rows)
    }
}

/// Fire times, oldest first.
type FireTimes = Vec<DateTime<Utc>>;

/// `job` with the backfill's overlap policy; `allow_all` lifts `max_instances`.
fn with_overlap(mut job: Job, overlap: Overlap) -> Job {
    if overlap != job.policy.overlap {
        job.policy = Arc::new(RunPolicy {
            overlap,
            ..(*job.policy).clone()
        });
    }
    if overlap == Overlap::AllowAll {
        job.max_instances = u32::MAX;
    }
    job
}

/// The fire times of `job`'s trigger in the request's range, oldest first (bounded by
/// `limit`), and those its calendar excludes.
fn fire_times(
    job: &Job,
    request: &BackfillRequest,
    limit: usize,
) -> Result<(FireTimes, FireTimes), Error> {
    let tz = job.trigger.timezone();
    let from = request.from.with_timezone(&tz);
    let to = request.to.with_timezone(&tz);
    // The trigger's start: its first fire time ever.
    let epoch = DateTime::<Utc>::UNIX_EPOCH.with_timezone(&tz);
    if let Some(first) = job.trigger.next_fire_time(None, &epoch) {
        if from < first {
            return Err(invalid(
                "from",
                request.from.to_rfc3339(),
                format!(
                    "before the job's first fire time {} (its trigger's start)",
                    first.with_timezone(&Utc).to_rfc3339()
                ),
            ));
        }
    }
    let (mut times, mut excluded) = (Vec::new(), Vec::new());
    let mut next = job.trigger.next_fire_time(None, &from);
    while let Some(t) = next {
        if t >= to {
            break;
        }
        if times.len() + excluded.len() >= limit {
            let why = if request.force {
                format!("the range holds more than {limit} fire times, the most a backfill takes")
            } else {
                format!("the range holds more than {limit} fire times (max_fire_times); narrow it or set 'force'")
            };
            return Err(invalid("to", request.to.to_rfc3339(), why));
        }
        if job.trigger.excluded_by(&t).is_some() {
            excluded.push(t.with_timezone(&Utc));
        } else {
            times.push(t.with_timezone(&Utc));
        }
        next = job.trigger.next_fire_time(Some(&t), &to);
        if next.is_some_and(|n| n <= t) {
            break;
        }
    }
    Ok((times, excluded))
}

/// The fire times in `[from, to)` of job `id` that have a `success` run, read newest
/// first a page at a time.
async fn succeeded_in(
    history: &dyn RunHistory,
    id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashSet<DateTime<Utc>>, Error> {
    const PAGE: usize = 10_000;
    let mut seen = HashSet::new();
    let mut until = to;
    loop {
        let page = history
            .query_runs(&RunQuery {
                job_id: Some(id.to_owned()),
                outcome: Some(RunOutcome::Success),
                since: Some(from),
                until: Some(until),
                limit: PAGE,
                ..RunQuery::default()
            })
            .await?;
        let full = page.len() == PAGE;
        let oldest = page.iter().map(|r| r.scheduled_at).min();
        seen.extend(page.into_iter().map(|r| r.scheduled_at));
        match oldest {
            // `until` is exclusive: the oldest one's fire time is already seen.
            Some(oldest) if full && oldest < until => until = oldest,
            _ => return Ok(seen),
        }
    }
}

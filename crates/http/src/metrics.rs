//! Prometheus metrics of runs, jobs and store round trips, emitted through the
//! [`metrics`] facade.
//!
//! [`RunMetrics`] is a [`RunObserver`]: registered with `HistoryOptions::observe`, it
//! counts what the run history records, so the numbers on a dashboard and the history
//! agree. [`MeteredStore`] wraps a [`JobStore`] and times its calls.
//!
//! Two ways to get the numbers out:
//! - [`RunMetrics::prometheus`] owns a Prometheus recorder of its own (not installed as
//!   the process's global recorder, so several can coexist) and [`RunMetrics::render`]
//!   returns the text exposition: what `/metrics` serves.
//! - [`RunMetrics::global`] emits into the global recorder the application installed
//!   (any `metrics` exporter); [`RunMetrics::render`] returns `None`. Give that
//!   recorder the buckets of [`HISTOGRAM_BUCKETS`] ([`with_buckets`] does it for a
//!   [`PrometheusBuilder`]).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `aps_runs_total` | counter | `job`, `outcome` |
//! | `aps_missed_total` | counter | `job` |
//! | `aps_runs_cancelled_total` | counter | `job` |
//! | `aps_runs_terminated_total` | counter | `job` |
//! | `aps_backfilled_total` | counter | `job` |
//! | `aps_calendar_excluded_total` | counter | `job`, `calendar` |
//! | `aps_run_duration_seconds` | histogram | |
//! | `aps_fire_lateness_seconds` | histogram | |
//! | `aps_jobs` | gauge | `state` (`scheduled`, `paused`) |
//! | `aps_runs_in_flight` | gauge | |
//! | `aps_last_success_timestamp_seconds` | gauge | `job` |
//! | `aps_job_failure_streak` | gauge | `job` |
//! | `aps_store_round_trip_seconds` | histogram | `op` |
//! | `aps_mail_sent_total` | counter | |
//! | `aps_mail_failures_total` | counter | |
//!
//! The `job` label is bounded by [`MetricsOptions::max_job_labels`]: past it, jobs are
//! counted under `job="_other"` ([`OTHER_JOBS`]), so that a scheduler with many
//! short-lived jobs cannot blow up the time series count of the Prometheus server.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use apscheduler_core::{
    Acquired, Capabilities, ChangeListener, Error, Job, JobRelease, JobStore, Released, RunHistory,
    RunObserver, RunOutcome, RunRecord,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Runs by job and outcome: one per record that is not `running` (ended runs, and fire
/// times that did not run).
pub const RUNS_TOTAL: &str = "aps_runs_total";
/// Fire times missed, by job.
pub const MISSED_TOTAL: &str = "aps_missed_total";
/// Backfilled fire times that ended (`backfill: true` records: run, or skipped by the
/// overlap policy), by job.
pub const BACKFILLED_TOTAL: &str = "aps_backfilled_total";
/// Fire times an exclusion calendar excluded (recorded `missed`, "excluded by calendar
/// NAME"), by job and calendar; they count in [`MISSED_TOTAL`] too.
pub const CALENDAR_EXCLUDED_TOTAL: &str = "aps_calendar_excluded_total";
/// Runs a newer fire time asked to stop (`overlap = "cancel_other"`), by job.
pub const RUNS_CANCELLED_TOTAL: &str = "aps_runs_cancelled_total";
/// Runs a newer fire time killed (`overlap = "terminate_other"`), by job.
pub const RUNS_TERMINATED_TOTAL: &str = "aps_runs_terminated_total";
/// How long ended runs ran (`finished_at - started_at`), in seconds.
pub const RUN_DURATION_SECONDS: &str = "aps_run_duration_seconds";
/// How late runs started (`started_at - scheduled_at`), in seconds.
pub const FIRE_LATENESS_SECONDS: &str = "aps_fire_lateness_seconds";
/// Jobs in the scheduler, by state (`scheduled`, `paused`).
pub const JOBS: &str = "aps_jobs";
/// Runs started and not yet ended, as this observer saw them.
pub const RUNS_IN_FLIGHT: &str = "aps_runs_in_flight";
/// Retries scheduled (a failed attempt's next attempt recorded as waiting), by job.
pub const RETRIES_TOTAL: &str = "aps_retries_total";
/// Retries recorded waiting for their due time and not yet started or dropped, as this
/// observer saw them.
pub const RETRIES_PENDING: &str = "aps_retries_pending";
/// When each job last succeeded (its `finished_at`), in Unix seconds.
pub const LAST_SUCCESS_TIMESTAMP_SECONDS: &str = "aps_last_success_timestamp_seconds";
/// The failed fire times in a row of each job with `pause_after_failures` or
/// `notify_after_failures`.
pub const JOB_FAILURE_STREAK: &str = "aps_job_failure_streak";
/// How long job store calls took, by method (`op`), in seconds.
pub const STORE_ROUND_TRIP_SECONDS: &str = "aps_store_round_trip_seconds";

/// Mails of runs' output handed to the mail server (or sendmail), by
/// [`RunMetrics::record_mail`].
pub const MAIL_SENT_TOTAL: &str = "aps_mail_sent_total";
/// Mails of runs' output that could not be delivered (refused, server down, sendmail
/// missing or failing, time-out, too many pending), by [`RunMetrics::record_mail`].
pub const MAIL_FAILURES_TOTAL: &str = "aps_mail_failures_total";
/// The `job` label value of the jobs past [`MetricsOptions::max_job_labels`].
pub const OTHER_JOBS: &str = "_other";

/// Buckets (upper bounds, seconds) of [`RUN_DURATION_SECONDS`]: 5 ms to an hour, since
/// jobs range from HTTP pings to nightly batches.
pub const RUN_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];

/// Buckets (upper bounds, seconds) of [`FIRE_LATENESS_SECONDS`]: 1 ms to a minute; a
/// healthy scheduler starts runs within milliseconds, and a minute late is an incident.
pub const FIRE_LATENESS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets (upper bounds, seconds) of [`STORE_ROUND_TRIP_SECONDS`]: 0.5 ms (the memory
/// store) to 5 s (a database under trouble).
pub const STORE_ROUND_TRIP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Every histogram with its buckets, for configuring a recorder of your own.
pub const HISTOGRAM_BUCKETS: &[(&str, &[f64])] = &[
    (RUN_DURATION_SECONDS, RUN_DURATION_BUCKETS),
    (FIRE_LATENESS_SECONDS, FIRE_LATENESS_BUCKETS),
    (STORE_ROUND_TRIP_SECONDS, STORE_ROUND_TRIP_BUCKETS),
];

/// Sets the buckets of [`HISTOGRAM_BUCKETS`] on `builder`, so that the histograms
/// render as Prometheus histograms (without buckets the exporter renders summaries).
/// For applications that install their own Prometheus recorder and use
/// [`RunMetrics::global`].
pub fn with_buckets(mut builder: PrometheusBuilder) -> PrometheusBuilder {
    for (name, buckets) in HISTOGRAM_BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
            .expect("the bucket lists are not empty");
    }
    builder
}

/// Options of [`RunMetrics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsOptions {
    /// How many distinct job ids get a `job` label of their own (default 1000); jobs
    /// seen after that are counted under `job="_other"`. A warning is logged when the
    /// cap is first reached.
    pub max_job_labels: usize,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            max_job_labels: 1000,
        }
    }
}

/// Where a [`RunMetrics`] emits.
enum Target {
    /// Its own recorder, rendered by [`RunMetrics::render`].
    Local {
        recorder: PrometheusRecorder,
        handle: PrometheusHandle,
    },
    /// The application's global recorder.
    Global,
}

/// The per-job state behind the gauges and the label cap.
#[derive(Default)]
struct State {
    /// Job ids that have a label of their own.
    labelled: HashSet<String>,
    /// Whether the cap warning was logged.
    cap_warned: bool,
    /// Run ids seen `running` and not yet ended.
    in_flight: HashSet<String>,
    /// Run ids of retries seen waiting (not started, `due_at` set) and not since.
    retries: HashSet<String>,
    /// Newest success per `job` label value, in Unix seconds.
    last_success: HashMap<String, f64>,
}

struct Inner {
    target: Target,
    options: MetricsOptions,
    state: Mutex<State>,
    /// Histogram samples recorded, to drain them into their buckets now and then even
    /// when nobody scrapes (the recorder keeps raw samples until a render).
    samples: AtomicU64,
}

/// Histogram samples between two upkeeps of an own recorder.
const UPKEEP_EVERY: u64 = 1024;

/// Prometheus metrics of the runs a scheduler records: a [`RunObserver`] to register
/// with `HistoryOptions::observe`, plus job counts ([`set_job_counts`]) and store
/// round trips ([`MeteredStore`]). Clones share their counts.
///
/// [`set_job_counts`]: RunMetrics::set_job_counts
#[derive(Clone)]
pub struct RunMetrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for RunMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunMetrics")
            .field(
                "target",
                &match self.inner.target {
                    Target::Local { .. } => "prometheus",
                    Target::Global => "global",
                },
            )
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `later - earlier` in seconds, never negative (clocks of different nodes may disagree).
fn seconds_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    let micros = (later - earlier).num_microseconds().unwrap_or(i64::MAX);
    micros.max(0) as f64 / 1e6
}

fn unix_seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

impl RunMetrics {
    /// Metrics in a Prometheus recorder of their own (with the buckets of
    /// [`HISTOGRAM_BUCKETS`]), read with [`render`](RunMetrics::render). The recorder is
    /// not installed as the global one: several of these live side by side.
    pub fn prometheus(options: MetricsOptions) -> RunMetrics {
        let recorder = with_buckets(PrometheusBuilder::new()).build_recorder();
        let handle = recorder.handle();
        RunMetrics::with_target(Target::Local { recorder, handle }, options)
    }

    /// Metrics emitted into the global recorder the application installed (with
    /// `metrics::set_global_recorder` or an exporter's `install`); install it before
    /// calling this, so that the descriptions reach it. [`render`](RunMetrics::render)
    /// returns `None`: the application's exporter serves them.
    pub fn global(options: MetricsOptions) -> RunMetrics {
        RunMetrics::with_target(Target::Global, options)
    }

    fn with_target(target: Target, options: MetricsOptions) -> RunMetrics {
        let metrics = RunMetrics {
            inner: Arc::new(Inner {
                target,
                options,
                state: Mutex::new(State::default()),
                samples: AtomicU64::new(0),
            }),
        };
        metrics.emit(|| {
            describe_counter!(
                RUNS_TOTAL,
                Unit::Count,
                "Runs by job and outcome: every ended run, and every fire time that did not run."
            );
            describe_counter!(MISSED_TOTAL, Unit::Count, "Fire times missed, by job.");
            describe_counter!(
                RUNS_CANCELLED_TOTAL,
                Unit::Count,
                "Runs a newer fire time asked to stop (overlap = cancel_other), by job."
            );
            describe_counter!(
                RUNS_TERMINATED_TOTAL,
                Unit::Count,
                "Runs a newer fire time killed (overlap = terminate_other), by job."
            );
            describe_counter!(
                BACKFILLED_TOTAL,
                Unit::Count,
                "Backfilled fire times that ended (run, or skipped by the overlap policy), by job."
            );
            describe_counter!(
                CALENDAR_EXCLUDED_TOTAL,
                Unit::Count,
                "Fire times an exclusion calendar excluded, by job and calendar."
            );
            describe_histogram!(
                RUN_DURATION_SECONDS,
                Unit::Seconds,
                "How long ended runs ran (finished_at - started_at)."
            );
            describe_histogram!(
                FIRE_LATENESS_SECONDS,
                Unit::Seconds,
                "How late runs started after their fire time (started_at - scheduled_at)."
            );
            describe_gauge!(
                JOBS,
                Unit::Count,
                "Jobs in the scheduler, by state (scheduled, paused)."
            );
            describe_gauge!(
                RUNS_IN_FLIGHT,
                Unit::Count,
                "Runs started and not yet ended."
            );
            describe_counter!(
                RETRIES_TOTAL,
                Unit::Count,
                "Retries scheduled (failed attempts that get another), by job."
            );
            describe_gauge!(
                RETRIES_PENDING,
                Unit::Count,
                "Retries waiting for their due time."
            );
            describe_gauge!(
                JOB_FAILURE_STREAK,
                Unit::Count,
                "Failed fire times in a row, by job (jobs with pause_after_failures or notify_after_failures)."
            );
            describe_gauge!(
                LAST_SUCCESS_TIMESTAMP_SECONDS,
                Unit::Seconds,
                "When each job last succeeded (its finished_at), in Unix seconds."
            );
            describe_histogram!(
                STORE_ROUND_TRIP_SECONDS,
                Unit::Seconds,
                "How long job store calls took, by method."
            );
            describe_counter!(
                MAIL_SENT_TOTAL,
                Unit::Count,
                "Mails of runs' output handed to the mail server or sendmail."
            );
            describe_counter!(
                MAIL_FAILURES_TOTAL,
                Unit::Count,
                "Mails of runs' output that could not be delivered."
            );
            // Gauges (and counters) that exist from the start, so that a scrape before
            // the first run shows zeros rather than nothing.
            counter!(MAIL_SENT_TOTAL).absolute(0);
            counter!(MAIL_FAILURES_TOTAL).absolute(0);
            gauge!(RUNS_IN_FLIGHT).set(0.0);
            gauge!(RETRIES_PENDING).set(0.0);
            gauge!(JOBS, "state" => "scheduled").set(0.0);
            gauge!(JOBS, "state" => "paused").set(0.0);
        });
        metrics
    }

    /// Runs `f` with this instance's recorder as the current one.
    fn emit<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.inner.target {
            Target::Local { recorder, .. } => metrics::with_local_recorder(recorder, f),
            Target::Global => f(),
        }
    }

    /// Counts histogram samples and drains an own recorder's raw samples into buckets
    /// every [`UPKEEP_EVERY`], so that memory stays flat when nobody scrapes.
    fn sampled(&self, n: u64) {
        let before = self.inner.samples.fetch_add(n, Ordering::Relaxed);
        if before / UPKEEP_EVERY != (before + n) / UPKEEP_EVERY {
            if let Target::Local { handle, .. } = &self.inner.target {
                handle.run_upkeep();
            }
        }
    }

    /// The Prometheus text exposition of every metric, for an instance made with
    /// [`prometheus`](RunMetrics::prometheus); `None` for [`global`](RunMetrics::global).
    pub fn render(&self) -> Option<String> {
        match &self.inner.target {
            Target::Local { handle, .. } => Some(handle.render()),
            Target::Global => None,
        }
    }

    /// Counts one mail of a run's output: delivered (`aps_mail_sent_total`) or not
    /// (`aps_mail_failures_total`).
    pub fn record_mail(&self, delivered: bool) {
        let name = if delivered {
            MAIL_SENT_TOTAL
        } else {
            MAIL_FAILURES_TOTAL
        };
        self.emit(|| counter!(name).increment(1));
    }

    /// Sets `aps_jobs{state="scheduled"}` and `aps_jobs{state="paused"}`. The store
    /// knows the job counts, not the run records: call it before rendering.
    pub fn set_job_counts(&self, scheduled: usize, paused: usize) {
        self.emit(|| {
            gauge!(JOBS, "state" => "scheduled").set(scheduled as f64);
            gauge!(JOBS, "state" => "paused").set(paused as f64);
        });
    }

    /// Records one store call of `op` that took `elapsed`.
    pub fn record_store_call(&self, op: &'static str, elapsed: Duration) {
        self.emit(|| histogram!(STORE_ROUND_TRIP_SECONDS, "op" => op).record(elapsed));
        self.sampled(1);
    }

    /// Wraps `store` so that its calls are timed into these metrics.
    pub fn meter<S: JobStore>(&self, store: S) -> MeteredStore<S> {
        MeteredStore::new(store, self.clone())
    }

    /// The `job` label value of `job_id`: its own while under the cap.
    fn job_label(&self, state: &mut State, job_id: &str) -> String {
        if state.labelled.contains(job_id) {
            return job_id.to_owned();
        }
        let cap = self.inner.options.max_job_labels;
        if state.labelled.len() < cap {
            state.labelled.insert(job_id.to_owned());
            return job_id.to_owned();
        }
        if !state.cap_warned {
            state.cap_warned = true;
            tracing::warn!(
                target: "apscheduler::metrics",
                max_job_labels = cap,
                job_id,
                "{cap} jobs have a metrics label of their own; this job and later ones are \
                 counted under job=\"{OTHER_JOBS}\" (raise MetricsOptions::max_job_labels \
                 to label more)"
            );
        }
        OTHER_JOBS.to_owned()
    }
}

impl RunObserver for RunMetrics {
    fn streak(
        &self,
        change: apscheduler_core::StreakChange,
        job_id: &str,
        streak: u32,
        _record: Option<&RunRecord>,
    ) {
        if change != apscheduler_core::StreakChange::Counted {
            return;
        }
        let job = self.job_label(&mut lock(&self.inner.state), job_id);
        // A gauge of one job: jobs past the label cap share no meaningful value.
        if job != OTHER_JOBS {
            self.emit(|| gauge!(JOB_FAILURE_STREAK, "job" => job).set(f64::from(streak)));
        }
    }

    fn observe(&self, record: &RunRecord) {
        let mut state = lock(&self.inner.state);
        let job = self.job_label(&mut state, &record.job_id);
        // A waiting run (a retry, a buffered fire time) is not in flight yet.
        let waiting = record.outcome == RunOutcome::Running
            && record.started_at.is_none()
            && record.due_at.is_some();
        if waiting {
            // A waiting record that says why it was written is an old one taken over
            // from a dead node: counted where it was scheduled.
            if record.attempt > 1
                && state.retries.insert(record.run_id.clone())
                && record.message.is_none()
            {
                self.emit(|| counter!(RETRIES_TOTAL, "job" => job.clone()).increment(1));
            }
            let pending = state.retries.len();
            self.emit(|| gauge!(RETRIES_PENDING).set(pending as f64));
            return;
        }
        if state.retries.remove(&record.run_id) {
            let pending = state.retries.len();
            self.emit(|| gauge!(RETRIES_PENDING).set(pending as f64));
        }
        if record.outcome == RunOutcome::Running {
            state.in_flight.insert(record.run_id.clone());
            let in_flight = state.in_flight.len();
            // Set under the lock, so that concurrent observers cannot set stale counts.
            self.emit(|| gauge!(RUNS_IN_FLIGHT).set(in_flight as f64));
            return;
        }
        if state.in_flight.remove(&record.run_id) {
            let in_flight = state.in_flight.len();
            self.emit(|| gauge!(RUNS_IN_FLIGHT).set(in_flight as f64));
        }
        if let (RunOutcome::Success, Some(finished)) = (record.outcome, record.finished_at) {
            let at = unix_seconds(finished);
            let newest = state.last_success.entry(job.clone()).or_insert(f64::MIN);
            // Records may arrive out of order (several executors): keep the newest.
            if at > *newest {
                *newest = at;
                self.emit(|| gauge!(LAST_SUCCESS_TIMESTAMP_SECONDS, "job" => job.clone()).set(at));
            }
        }
        drop(state);

        let duration = match (record.started_at, record.finished_at) {
            (Some(started), Some(finished)) => Some(seconds_between(started, finished)),
            _ => None,
        };
        // The ended record carries the real start (a `running` record's is the time it
        // was written), so lateness is taken here, once per run.
        let lateness = record
            .started_at
            .map(|started| seconds_between(record.scheduled_at, started));
        self.emit(|| {
            counter!(RUNS_TOTAL, "job" => job.clone(), "outcome" => record.outcome.as_str())
                .increment(1);
            if record.backfill {
                counter!(BACKFILLED_TOTAL, "job" => job.clone()).increment(1);
            }
            if record.outcome == RunOutcome::Missed {
                counter!(MISSED_TOTAL, "job" => job.clone()).increment(1);
                if let Some(calendar) = record
                    .message
                    .as_deref()
                    .and_then(apscheduler_engine::excluded_calendar)
                {
                    counter!(CALENDAR_EXCLUDED_TOTAL, "job" => job.clone(), "calendar" => calendar.to_owned())
                        .increment(1);
                }
            }
            match record.message.as_deref().and_then(apscheduler_engine::cancelled_by) {
                Some(apscheduler_core::Overlap::TerminateOther) => {
                    counter!(RUNS_TERMINATED_TOTAL, "job" => job.clone()).increment(1);
                }
                Some(_) => counter!(RUNS_CANCELLED_TOTAL, "job" => job.clone()).increment(1),
                None => {}
            }
            if let Some(d) = duration {
                histogram!(RUN_DURATION_SECONDS).record(d);
            }
            if let Some(l) = lateness {
                histogram!(FIRE_LATENESS_SECONDS).record(l);
            }
        });
        self.sampled(u64::from(duration.is_some()) + u64::from(lateness.is_some()));
    }
}

/// A [`JobStore`] that times every call of the store it wraps into
/// `aps_store_round_trip_seconds{op="<method>"}` of a [`RunMetrics`], forwarding
/// everything else unchanged (capabilities, change listener, run history).
///
/// Wrap a concrete store with [`MeteredStore::new`] (or [`RunMetrics::meter`]), or an
/// `Arc<dyn JobStore>` with [`MeteredStore::from_arc`].
pub struct MeteredStore<S: ?Sized = dyn JobStore> {
    inner: Arc<S>,
    metrics: RunMetrics,
}

impl<S: ?Sized + fmt::Debug> fmt::Debug for MeteredStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteredStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: JobStore> MeteredStore<S> {
    /// Wraps `store`, timing its calls into `metrics`.
    pub fn new(store: S, metrics: RunMetrics) -> Self {
        MeteredStore {
            inner: Arc::new(store),
            metrics,
        }
    }
}

impl<S: JobStore + ?Sized> MeteredStore<S> {
    /// Wraps a shared store (such as the `Arc<dyn JobStore>` a scheduler is given).
    pub fn from_arc(store: Arc<S>, metrics: RunMetrics) -> Self {
        MeteredStore {
            inner: store,
            metrics,
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    async fn timed<T>(&self, op: &'static str, call: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = call.await;
        self.metrics.record_store_call(op, start.elapsed());
        out
    }
}

#[async_trait]
impl<S: JobStore + ?Sized> JobStore for MeteredStore<S> {
    async fn start(&self, alias: &str) -> Result<(), Error> {
        self.timed("start", self.inner.start(alias)).await
    }

    async fn shutdown(&self) -> Result<(), Error> {
        self.timed("shutdown", self.inner.shutdown()).await
    }

    fn set_change_listener(&self, listener: ChangeListener) {
        self.inner.set_change_listener(listener);
    }

    fn run_history(&self) -> Option<Arc<dyn RunHistory>> {
        self.inner.run_history()
    }

    fn is_persistent(&self) -> bool {
        self.inner.is_persistent()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        self.timed("add_job", self.inner.add_job(job, replace_existing))
            .await
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        self.timed("add_jobs", self.inner.add_jobs(jobs, replace_existing))
            .await
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        self.timed("update_job", self.inner.update_job(job)).await
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        self.timed("remove_job", self.inner.remove_job(id)).await
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        self.timed("remove_all_jobs", self.inner.remove_all_jobs())
            .await
    }

    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        self.timed("lookup_job", self.inner.lookup_job(id)).await
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        self.timed("get_all_jobs", self.inner.get_all_jobs()).await
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        self.timed("get_next_run_time", self.inner.get_next_run_time())
            .await
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        self.timed(
            "acquire_due_jobs",
            self.inner.acquire_due_jobs(scheduler_id, now, limit, lease),
        )
        .await
    }

    async fn acquire_due_jobs_preferring(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
        hint: apscheduler_core::ClaimHint<'_>,
    ) -> Result<Acquired, Error> {
        // Timed as a claim: it is one, with a preference.
        self.timed(
            "acquire_due_jobs",
            self.inner
                .acquire_due_jobs_preferring(scheduler_id, now, limit, lease, hint),
        )
        .await
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        self.timed(
            "extend_leases",
            self.inner.extend_leases(scheduler_id, ids, now, lease),
        )
        .await
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        self.timed(
            "release_jobs",
            self.inner.release_jobs(scheduler_id, releases),
        )
        .await
    }

    fn records_with_release(&self) -> bool {
        self.inner.records_with_release()
    }

    async fn release_jobs_recorded(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
        records: &[apscheduler_core::RunRecord],
    ) -> Result<Released, Error> {
        self.timed(
            "release_jobs",
            self.inner
                .release_jobs_recorded(scheduler_id, releases, records),
        )
        .await
    }
}

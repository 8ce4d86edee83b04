//! [`RunMetrics`]: counts what the run history records, as a [`RunObserver`], into a
//! Prometheus recorder of its own or the global one.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use apscheduler_core::{JobStore, RunObserver, RunOutcome, RunRecord};
use chrono::{DateTime, Utc};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::{
    with_buckets, MeteredStore, MetricsOptions, BACKFILLED_TOTAL, CALENDAR_EXCLUDED_TOTAL,
    FIRE_LATENESS_SECONDS, JOBS, JOB_FAILURE_STREAK, LAST_SUCCESS_TIMESTAMP_SECONDS,
    MAIL_FAILURES_TOTAL, MAIL_SENT_TOTAL, MISSED_TOTAL, OTHER_JOBS, RETRIES_PENDING, RETRIES_TOTAL,
    RUNS_CANCELLED_TOTAL, RUNS_IN_FLIGHT, RUNS_TERMINATED_TOTAL, RUNS_TOTAL, RUN_DURATION_SECONDS,
    STORE_ROUND_TRIP_SECONDS,
};

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
    /// [`HISTOGRAM_BUCKETS`](super::HISTOGRAM_BUCKETS)), read with
    /// [`render`](RunMetrics::render). The recorder is not installed as the global one:
    /// several of these live side by side.
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

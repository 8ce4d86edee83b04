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
//!
//! The metric names, buckets and options are here; [`RunMetrics`] lives in
//! `run_metrics.rs`, [`MeteredStore`] in `metered_store.rs`.
//!
//! [`JobStore`]: apscheduler_core::JobStore
//! [`RunObserver`]: apscheduler_core::RunObserver

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

mod metered_store;
mod run_metrics;

pub use metered_store::MeteredStore;
pub use run_metrics::RunMetrics;

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

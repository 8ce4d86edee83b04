//! The Prometheus metrics of `apscheduler_http::metrics`: records fed to the observer
//! come out of `render()` as a real Prometheus parser reads them.

use std::time::Duration;

use apscheduler_core::{ClaimHint, JobRelease, JobStore, RunObserver, RunOutcome, RunRecord};
use apscheduler_http::metrics::{
    MeteredStore, MetricsOptions, RunMetrics, FIRE_LATENESS_BUCKETS, RUN_DURATION_BUCKETS,
};
use apscheduler_store_memory::MemoryJobStore;
use apscheduler_testkit::store::{at, interval_trigger, sample_job};
use chrono::{DateTime, TimeZone, Utc};
use prometheus_parse::{Scrape, Value};

fn t(seconds: f64) -> DateTime<Utc> {
    let base = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    base + chrono::Duration::microseconds((seconds * 1e6).round() as i64)
}

fn record(run_id: &str, job_id: &str, outcome: RunOutcome) -> RunRecord {
    RunRecord {
        run_id: run_id.to_owned(),
        job_id: job_id.to_owned(),
        scheduled_at: t(0.0),
        started_at: None,
        finished_at: None,
        outcome,
        exit_code: None,
        http_status: None,
        output: String::new(),
        message: None,
        node: "node-1".to_owned(),
        attempt: 1,
        backfill: false,
        due_at: None,
    }
}

/// A run as the recorder reports it: `running` (its start is when the record was
/// written, later than the real start), then ended.
fn run(
    m: &RunMetrics,
    run_id: &str,
    job_id: &str,
    scheduled: f64,
    lateness: f64,
    duration: f64,
    outcome: RunOutcome,
) {
    let mut r = record(run_id, job_id, RunOutcome::Running);
    r.scheduled_at = t(scheduled);
    r.started_at = Some(t(scheduled + lateness + 0.3));
    m.observe(&r);
    r.started_at = Some(t(scheduled + lateness));
    r.finished_at = Some(t(scheduled + lateness + duration));
    r.outcome = outcome;
    m.observe(&r);
}

fn missed(m: &RunMetrics, run_id: &str, job_id: &str, scheduled: f64) {
    let mut r = record(run_id, job_id, RunOutcome::Missed);
    r.scheduled_at = t(scheduled);
    r.finished_at = Some(t(scheduled + 900.0));
    r.message = Some("late".to_owned());
    m.observe(&r);
}

fn scrape(m: &RunMetrics) -> Scrape {
    let text = m.render().expect("a prometheus recorder renders");
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition")
}

/// The value of the sample `name` whose labels are exactly `labels`.
fn value<'a>(s: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'a Value> {
    s.samples
        .iter()
        .find(|x| {
            x.metric == name
                && x.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))
        })
        .map(|x| &x.value)
}

fn number(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(s, name, labels) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        other => panic!("{name}{labels:?}: {other:?}"),
    }
}

fn counter(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(s, name, labels) {
        Some(Value::Counter(v)) => *v,
        other => panic!("{name}{labels:?} is not a counter: {other:?}"),
    }
}

fn gauge(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(s, name, labels) {
        Some(Value::Gauge(v)) => *v,
        other => panic!("{name}{labels:?} is not a gauge: {other:?}"),
    }
}

/// Checks a histogram's buckets, count and sum against the observed `values`.
fn assert_histogram(s: &Scrape, name: &str, bounds: &[f64], values: &[f64]) {
    let Some(Value::Histogram(buckets)) = value(s, name, &[]) else {
        panic!("{name} is not a histogram: {:?}", value(s, name, &[]));
    };
    assert_eq!(
        buckets.len(),
        bounds.len() + 1,
        "{name}: the buckets and +Inf"
    );
    for b in buckets {
        let expected = values.iter().filter(|v| **v <= b.less_than).count();
        assert_eq!(b.count, expected as f64, "{name} le={}", b.less_than);
    }
    assert!(buckets.iter().any(|b| b.less_than == f64::INFINITY));
    assert_eq!(
        number(s, &format!("{name}_count"), &[]),
        values.len() as f64
    );
    let sum: f64 = values.iter().sum();
    let got = number(s, &format!("{name}_sum"), &[]);
    assert!((got - sum).abs() < 1e-6, "{name}_sum {got} != {sum}");
}

#[test]
fn counters_gauges_and_histograms_match_the_records_fed() {
    let m = RunMetrics::prometheus(MetricsOptions::default());
    // (job, lateness, duration, outcome)
    let runs = [
        ("alpha", 0.002, 1.5, RunOutcome::Success),
        ("alpha", 0.5, 3.0, RunOutcome::Success),
        ("alpha", 0.02, 20.0, RunOutcome::Failure),
        ("beta", 2.0, 0.2, RunOutcome::Success),
        ("beta", 0.0, 400.0, RunOutcome::Failure),
        ("beta", 0.007, 100.0, RunOutcome::Timeout),
    ];
    for (i, (job, lateness, duration, outcome)) in runs.iter().enumerate() {
        let scheduled = 60.0 * i as f64;
        run(
            &m,
            &format!("run-{i}"),
            job,
            scheduled,
            *lateness,
            *duration,
            *outcome,
        );
    }
    missed(&m, "run-m1", "alpha", 1000.0);
    missed(&m, "run-m2", "beta", 2000.0);
    m.set_job_counts(7, 2);

    let s = scrape(&m);
    let runs_total =
        |job, outcome| counter(&s, "aps_runs_total", &[("job", job), ("outcome", outcome)]);
    assert_eq!(runs_total("alpha", "success"), 2.0);
    assert_eq!(runs_total("alpha", "failure"), 1.0);
    assert_eq!(runs_total("alpha", "missed"), 1.0);
    assert_eq!(runs_total("beta", "success"), 1.0);
    assert_eq!(runs_total("beta", "failure"), 1.0);
    assert_eq!(runs_total("beta", "timeout"), 1.0);
    assert_eq!(runs_total("beta", "missed"), 1.0);
    let all: f64 = s
        .samples
        .iter()
        .filter(|x| x.metric == "aps_runs_total")
        .map(|x| match x.value {
            Value::Counter(v) => v,
            _ => panic!("not a counter"),
        })
        .sum();
    assert_eq!(
        all, 8.0,
        "one per ended or missed record, none for `running`"
    );
    assert!(value(
        &s,
        "aps_runs_total",
        &[("job", "alpha"), ("outcome", "running")]
    )
    .is_none());

    assert_eq!(counter(&s, "aps_missed_total", &[("job", "alpha")]), 1.0);
    assert_eq!(counter(&s, "aps_missed_total", &[("job", "beta")]), 1.0);

    assert_eq!(gauge(&s, "aps_jobs", &[("state", "scheduled")]), 7.0);
    assert_eq!(gauge(&s, "aps_jobs", &[("state", "paused")]), 2.0);
    assert_eq!(gauge(&s, "aps_runs_in_flight", &[]), 0.0);

    // Newest success: alpha's second run (scheduled at 60 s, 0.5 s late, 3 s long).
    let alpha_last = t(60.0 + 0.5 + 3.0).timestamp_micros() as f64 / 1e6;
    let beta_last = t(180.0 + 2.0 + 0.2).timestamp_micros() as f64 / 1e6;
    let got = gauge(
        &s,
        "aps_last_success_timestamp_seconds",
        &[("job", "alpha")],
    );
    assert!((got - alpha_last).abs() < 1e-3, "{got} != {alpha_last}");
    let got = gauge(&s, "aps_last_success_timestamp_seconds", &[("job", "beta")]);
    assert!((got - beta_last).abs() < 1e-3, "{got} != {beta_last}");

    let durations: Vec<f64> = runs.iter().map(|r| r.2).collect();
    assert_histogram(
        &s,
        "aps_run_duration_seconds",
        RUN_DURATION_BUCKETS,
        &durations,
    );
    // Lateness from the ended records' real starts, not the `running` records'.
    let lateness: Vec<f64> = runs.iter().map(|r| r.1).collect();
    assert_histogram(
        &s,
        "aps_fire_lateness_seconds",
        FIRE_LATENESS_BUCKETS,
        &lateness,
    );

    // Every metric is described.
    for name in [
        "aps_runs_total",
        "aps_missed_total",
        "aps_run_duration_seconds",
        "aps_fire_lateness_seconds",
        "aps_jobs",
        "aps_runs_in_flight",
        "aps_last_success_timestamp_seconds",
    ] {
        assert!(
            s.docs.contains_key(name),
            "no # HELP for {name}: {:?}",
            s.docs
        );
    }
}

#[test]
fn mails_are_counted_sent_or_failed_from_zero() {
    let m = RunMetrics::prometheus(MetricsOptions::default());
    let s = scrape(&m);
    assert_eq!(counter(&s, "aps_mail_sent_total", &[]), 0.0);
    assert_eq!(counter(&s, "aps_mail_failures_total", &[]), 0.0);
    assert!(s.docs.contains_key("aps_mail_sent_total"));
    assert!(s.docs.contains_key("aps_mail_failures_total"));
    m.record_mail(true);
    m.record_mail(false);
    m.record_mail(false);
    let s = scrape(&m);
    assert_eq!(counter(&s, "aps_mail_sent_total", &[]), 1.0);
    assert_eq!(counter(&s, "aps_mail_failures_total", &[]), 2.0);
}

#[test]
fn fire_times_a_calendar_excluded_are_counted_by_job_and_calendar() {
    let m = RunMetrics::prometheus(MetricsOptions::default());
    for (run_id, job, calendar) in [
        ("a", "daily", "holidays"),
        ("b", "daily", "holidays"),
        ("c", "daily", "weekend"),
        ("d", "hourly", "holidays"),
    ] {
        let mut r = record(run_id, job, RunOutcome::Missed);
        r.message = Some(apscheduler_engine::excluded_message(calendar));
        m.observe(&r);
    }
    // A fire time missed for lateness is not counted as excluded.
    missed(&m, "e", "daily", 10.0);
    let s = scrape(&m);
    for (job, calendar, n) in [
        ("daily", "holidays", 2.0),
        ("daily", "weekend", 1.0),
        ("hourly", "holidays", 1.0),
    ] {
        assert_eq!(
            counter(
                &s,
                "aps_calendar_excluded_total",
                &[("job", job), ("calendar", calendar)]
            ),
            n,
            "{job} {calendar}"
        );
    }
    assert_eq!(counter(&s, "aps_missed_total", &[("job", "daily")]), 4.0);
    assert!(s.docs.contains_key("aps_calendar_excluded_total"));
}

#[test]
fn an_older_success_does_not_move_the_last_success_back() {
    let m = RunMetrics::prometheus(MetricsOptions::default());
    run(&m, "new", "j", 100.0, 0.0, 1.0, RunOutcome::Success);
    run(&m, "old", "j", 10.0, 0.0, 1.0, RunOutcome::Success);
    run(&m, "failed", "j", 200.0, 0.0, 1.0, RunOutcome::Failure);
    let s = scrape(&m);
    let got = gauge(&s, "aps_last_success_timestamp_seconds", &[("job", "j")]);
    assert!((got - t(101.0).timestamp() as f64).abs() < 1e-3);
}

#[test]
fn in_flight_rises_on_running_and_falls_at_the_end() {
    let m = RunMetrics::prometheus(MetricsOptions::default());
    let in_flight = |m: &RunMetrics| gauge(&scrape(m), "aps_runs_in_flight", &[]);
    assert_eq!(in_flight(&m), 0.0, "present before any run");

    let mut a = record("a", "job", RunOutcome::Running);
    a.started_at = Some(t(0.0));
    let mut b = record("b", "job", RunOutcome::Running);
    b.started_at = Some(t(0.0));
    m.observe(&a);
    assert_eq!(in_flight(&m), 1.0);
    m.observe(&b);
    // A repeated `running` record of the same run is one run.
    m.observe(&b);
    assert_eq!(in_flight(&m), 2.0);

    a.outcome = RunOutcome::Success;
    a.finished_at = Some(t(1.0));
    m.observe(&a);
    assert_eq!(in_flight(&m), 1.0);

    // An end this observer never saw start (a previous life's run, interrupted) does
    // not take the gauge below what is really in flight.
    let mut old = record("old", "job", RunOutcome::Interrupted);
    old.started_at = Some(t(0.0));
    old.finished_at = Some(t(5.0));
    m.observe(&old);
    assert_eq!(in_flight(&m), 1.0);

    b.outcome = RunOutcome::Failure;
    b.finished_at = Some(t(2.0));
    m.observe(&b);
    assert_eq!(in_flight(&m), 0.0);
    let s = scrape(&m);
    assert_eq!(
        counter(
            &s,
            "aps_runs_total",
            &[("job", "job"), ("outcome", "interrupted")]
        ),
        1.0
    );
}

#[test]
fn a_waiting_retry_is_counted_scheduled_and_pending_until_it_starts() {
    let m = RunMetrics::prometheus(MetricsOptions::default());
    let pending = |m: &RunMetrics| gauge(&scrape(m), "aps_retries_pending", &[]);
    assert_eq!(pending(&m), 0.0, "present before any retry");
    let mut retry = record("r2", "job", RunOutcome::Running);
    retry.attempt = 2;
    retry.due_at = Some(t(10.0));
    m.observe(&retry);
    // Queued twice (a rewrite) is one retry.
    m.observe(&retry);
    // A buffered fire time waits too, but is no retry.
    let mut buffered = record("b1", "job", RunOutcome::Running);
    buffered.due_at = Some(t(0.0));
    m.observe(&buffered);
    let s = scrape(&m);
    assert_eq!(counter(&s, "aps_retries_total", &[("job", "job")]), 1.0);
    assert_eq!(gauge(&s, "aps_retries_pending", &[]), 1.0);
    assert_eq!(
        gauge(&s, "aps_runs_in_flight", &[]),
        0.0,
        "waiting is not running"
    );

    retry.started_at = Some(t(10.0));
    m.observe(&retry);
    assert_eq!(pending(&m), 0.0);
    assert_eq!(gauge(&scrape(&m), "aps_runs_in_flight", &[]), 1.0);
    retry.outcome = RunOutcome::Success;
    retry.finished_at = Some(t(11.0));
    m.observe(&retry);
    let s = scrape(&m);
    assert_eq!(counter(&s, "aps_retries_total", &[("job", "job")]), 1.0);
    assert_eq!(gauge(&s, "aps_runs_in_flight", &[]), 0.0);

    // A retry taken over from a dead node was counted where it was scheduled.
    let mut taken = record("r3", "job", RunOutcome::Running);
    taken.attempt = 3;
    taken.due_at = Some(t(20.0));
    taken.message = Some("taken over from node dead/1".to_owned());
    m.observe(&taken);
    let s = scrape(&m);
    assert_eq!(counter(&s, "aps_retries_total", &[("job", "job")]), 1.0);
    assert_eq!(gauge(&s, "aps_retries_pending", &[]), 1.0);
}

#[test]
fn jobs_past_the_label_cap_are_counted_under_other() {
    let m = RunMetrics::prometheus(MetricsOptions { max_job_labels: 2 });
    for (i, job) in ["a", "b", "c", "d", "a", "c"].iter().enumerate() {
        run(
            &m,
            &format!("r{i}"),
            job,
            i as f64,
            0.0,
            1.0,
            RunOutcome::Failure,
        );
    }
    missed(&m, "m1", "e", 0.0);
    run(&m, "s1", "d", 50.0, 0.0, 1.0, RunOutcome::Success);
    let s = scrape(&m);
    let failures = |job| {
        counter(
            &s,
            "aps_runs_total",
            &[("job", job), ("outcome", "failure")],
        )
    };
    assert_eq!(failures("a"), 2.0);
    assert_eq!(failures("b"), 1.0);
    assert_eq!(failures("_other"), 3.0, "c twice and d");
    for job in ["c", "d", "e"] {
        assert!(
            s.samples.iter().all(|x| x.labels.get("job") != Some(job)),
            "job {job} past the cap has no label of its own"
        );
    }
    assert_eq!(counter(&s, "aps_missed_total", &[("job", "_other")]), 1.0);
    assert!(value(
        &s,
        "aps_last_success_timestamp_seconds",
        &[("job", "_other")]
    )
    .is_some());
}

#[test]
fn two_prometheus_instances_do_not_share_counts() {
    let one = RunMetrics::prometheus(MetricsOptions::default());
    let two = RunMetrics::prometheus(MetricsOptions::default());
    run(&one, "r1", "j", 0.0, 0.0, 1.0, RunOutcome::Failure);
    run(&one, "r2", "j", 1.0, 0.0, 1.0, RunOutcome::Failure);
    run(&two, "r3", "j", 0.0, 0.0, 1.0, RunOutcome::Failure);
    let failures = |m: &RunMetrics| {
        counter(
            &scrape(m),
            "aps_runs_total",
            &[("job", "j"), ("outcome", "failure")],
        )
    };
    assert_eq!(failures(&one), 2.0);
    assert_eq!(failures(&two), 1.0);
    // Clones share their instance's counts.
    run(&two.clone(), "r4", "j", 2.0, 0.0, 1.0, RunOutcome::Failure);
    assert_eq!(failures(&two), 2.0);
    assert_eq!(failures(&one), 2.0);
}

#[test]
fn the_global_variant_renders_nothing_of_its_own() {
    // No global recorder is installed in this test binary: emitting is a no-op.
    let m = RunMetrics::global(MetricsOptions::default());
    run(&m, "r", "j", 0.0, 0.0, 1.0, RunOutcome::Failure);
    m.set_job_counts(1, 0);
    assert!(m.render().is_none());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn metered_store_times_each_call_by_method() {
    let m = RunMetrics::prometheus(MetricsOptions::default());
    let store = MeteredStore::new(MemoryJobStore::new(), m.clone());
    runtime().block_on(async {
        store.start("default").await.unwrap();
        store
            .add_job(sample_job("one", Some(at(10)), interval_trigger(60)), false)
            .await
            .unwrap();
        store
            .add_jobs(
                vec![
                    sample_job("two", Some(at(20)), interval_trigger(60)),
                    sample_job("three", None, interval_trigger(60)),
                ],
                false,
            )
            .await
            .unwrap();
        assert!(store.lookup_job("one").await.unwrap().is_some());
        assert!(store.lookup_job("nope").await.unwrap().is_none());
        assert_eq!(store.get_all_jobs().await.unwrap().len(), 3);
        assert!(store.get_next_run_time().await.unwrap().is_some());
        let acquired = store
            .acquire_due_jobs("s", at(15).with_timezone(&Utc), 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(acquired.jobs.len(), 1);
        let hint = ClaimHint {
            partitions: 1,
            owned: &[0],
        };
        let preferring = store
            .acquire_due_jobs_preferring(
                "s",
                at(15).with_timezone(&Utc),
                10,
                Duration::from_secs(30),
                hint,
            )
            .await
            .unwrap();
        assert!(preferring.jobs.is_empty(), "the one due job is leased");
        let mut one = acquired.jobs[0].clone();
        one.next_run_time = Some(at(70));
        let released = store
            .release_jobs("s", vec![JobRelease::Update(one)])
            .await
            .unwrap();
        assert!(released.is_complete());
        store
            .release_jobs_recorded("s", Vec::new(), &[])
            .await
            .unwrap();
        store.remove_job("two").await.unwrap();
        assert!(
            store.remove_job("two").await.is_err(),
            "errors are forwarded"
        );
    });
    assert!(!store.is_persistent());
    assert_eq!(store.capabilities(), MemoryJobStore::new().capabilities());
    assert!(
        store.run_history().is_some(),
        "the memory store's history is forwarded"
    );

    let s = scrape(&m);
    let count = |op| number(&s, "aps_store_round_trip_seconds_count", &[("op", op)]);
    assert_eq!(count("start"), 1.0);
    assert_eq!(
        count("add_job"),
        1.0,
        "add_jobs is one call, not forwarded to add_job"
    );
    assert_eq!(count("add_jobs"), 1.0);
    assert_eq!(count("lookup_job"), 2.0);
    assert_eq!(count("get_all_jobs"), 1.0);
    assert_eq!(count("get_next_run_time"), 1.0);
    assert_eq!(
        count("acquire_due_jobs"),
        2.0,
        "a partition-aware claim is timed as a claim"
    );
    assert_eq!(
        count("release_jobs"),
        2.0,
        "a release with run records is timed as a release"
    );
    assert_eq!(count("remove_job"), 2.0, "failed calls are timed too");
    for op in [
        "update_job",
        "acquire_due_jobs_preferring",
        "release_jobs_recorded",
    ] {
        assert!(
            value(&s, "aps_store_round_trip_seconds_count", &[("op", op)]).is_none(),
            "no {op} label"
        );
    }
    let Some(Value::Histogram(buckets)) =
        value(&s, "aps_store_round_trip_seconds", &[("op", "lookup_job")])
    else {
        panic!("aps_store_round_trip_seconds is a histogram");
    };
    assert_eq!(buckets.last().map(|b| b.count), Some(2.0));
    assert!(s.docs.contains_key("aps_store_round_trip_seconds"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metered_memory_store_passes_the_conformance_suite() {
    let m = RunMetrics::prometheus(MetricsOptions::default());
    apscheduler_testkit::store::run_all(|| {
        let m = m.clone();
        async move { MeteredStore::new(MemoryJobStore::new(), m) }
    })
    .await;
    let s = scrape(&m);
    for op in [
        "add_job",
        "acquire_due_jobs",
        "release_jobs",
        "get_next_run_time",
    ] {
        assert!(
            number(&s, "aps_store_round_trip_seconds_count", &[("op", op)]) > 0.0,
            "{op} was timed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metered_dyn_store_passes_the_conformance_suite() {
    let m = RunMetrics::prometheus(MetricsOptions::default());
    apscheduler_testkit::store::run_all(|| {
        let m = m.clone();
        async move {
            let store: std::sync::Arc<dyn JobStore> = std::sync::Arc::new(MemoryJobStore::new());
            MeteredStore::from_arc(store, m)
        }
    })
    .await;
}

#[test]
fn runs_cancelled_or_killed_by_a_newer_fire_time_are_counted_by_job() {
    let m = RunMetrics::prometheus(MetricsOptions::default());
    let mut r = record("c1", "polite", RunOutcome::Failure);
    r.message = Some(
        "cancelled by the fire time of 2030-01-01T00:01:00+00:00 (overlap = cancel_other): \
         the process group got SIGTERM, then SIGKILL after the 1s grace"
            .to_owned(),
    );
    m.observe(&r);
    let mut r = record("k1", "hard", RunOutcome::Failure);
    r.message = Some(
        "cancelled by the fire time of 2030-01-01T00:01:00+00:00 (overlap = terminate_other): \
         the process group got SIGKILL (overlap = terminate_other)"
            .to_owned(),
    );
    m.observe(&r);
    let mut r = record("f1", "hard", RunOutcome::Failure);
    r.message = Some("exit status 1".to_owned());
    m.observe(&r);
    let s = scrape(&m);
    assert_eq!(
        counter(&s, "aps_runs_cancelled_total", &[("job", "polite")]),
        1.0
    );
    assert_eq!(
        counter(&s, "aps_runs_terminated_total", &[("job", "hard")]),
        1.0
    );
    assert!(value(&s, "aps_runs_cancelled_total", &[("job", "hard")]).is_none());
}

#[test]
fn the_failure_streak_gauge_follows_the_counted_streak() {
    use apscheduler_core::StreakChange;
    let m = RunMetrics::prometheus(MetricsOptions::default());
    m.streak(StreakChange::Counted, "flaky", 2, None);
    // Notifications do not move it.
    m.streak(StreakChange::Failing, "flaky", 7, None);
    let s = scrape(&m);
    assert_eq!(
        gauge(&s, "aps_job_failure_streak", &[("job", "flaky")]),
        2.0
    );
    m.streak(StreakChange::Counted, "flaky", 0, None);
    let s = scrape(&m);
    assert_eq!(
        gauge(&s, "aps_job_failure_streak", &[("job", "flaky")]),
        0.0
    );
}

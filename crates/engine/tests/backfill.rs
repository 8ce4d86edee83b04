//! Backfill through the public API: the plan (dry run), runs recorded with
//! `backfill: true`, fire times that already succeeded skipped, the rate, and requests
//! refused whole with an error naming the field.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::{
    ErrorKind, ManualClock, Overlap, RunHistory, RunOutcome, RunQuery, RunRecord,
};
use apscheduler_engine::{
    AsyncScheduler, BackfillRequest, Engine, HistoryOptions, InlineExecutor, JobSpec,
};
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
}

struct Harness {
    scheduler: AsyncScheduler,
    history: Arc<MemoryRunHistory>,
    ran: Arc<Mutex<Vec<DateTime<Utc>>>>,
}

/// A scheduler at 12:00 (its loop not driven: only backfills run) with an
/// every-minute job `minutely`.
async fn harness() -> Harness {
    let clock = Arc::new(ManualClock::new(at(12, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let engine = Engine::builder()
        .clock(clock)
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .run_history(history.clone(), HistoryOptions::default())
        .build();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let seen = ran.clone();
    engine.register_task("work", move |ctx| {
        seen.lock()
            .unwrap()
            .push(ctx.scheduled_run_time.with_timezone(&Utc));
        Ok(json!(null))
    });
    engine.start(false).await.unwrap();
    let scheduler = AsyncScheduler::from_engine(engine).unwrap();
    scheduler
        .add_job(
            JobSpec::task("work")
                .id("minutely")
                .trigger_args("cron", json!({"minute": "*"})),
        )
        .await
        .unwrap();
    Harness {
        scheduler,
        history,
        ran,
    }
}

impl Harness {
    async fn records(&self) -> Vec<RunRecord> {
        self.scheduler
            .engine()
            .flush_history(Duration::from_secs(5))
            .await;
        let mut runs = self
            .history
            .query_runs(&RunQuery {
                job_id: Some("minutely".into()),
                limit: 10_000,
                ..RunQuery::default()
            })
            .await
            .unwrap();
        runs.sort_by_key(|r| r.scheduled_at);
        runs
    }

    /// Waits (generously) until `n` records have ended.
    async fn ended(&self, n: usize) -> Vec<RunRecord> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let records = self.records().await;
            let ended: Vec<_> = records
                .into_iter()
                .filter(|r| r.outcome != RunOutcome::Running)
                .collect();
            if ended.len() >= n || Instant::now() > deadline {
                return ended;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn minutes(from: DateTime<Utc>, n: i64) -> Vec<DateTime<Utc>> {
    (0..n)
        .map(|i| from + chrono::Duration::minutes(i))
        .collect()
}

fn fast(from: DateTime<Utc>, to: DateTime<Utc>) -> BackfillRequest {
    BackfillRequest {
        rate_per_sec: 1000.0,
        ..BackfillRequest::new(from, to)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_lists_the_fire_times_and_runs_nothing() {
    let h = harness().await;
    let report = h
        .scheduler
        .backfill(
            "minutely",
            &BackfillRequest {
                dry_run: true,
                ..BackfillRequest::new(at(10, 0), at(11, 0))
            },
        )
        .await
        .unwrap();
    assert_eq!(report.to_run, minutes(at(10, 0), 60));
    assert!(report.dry_run && report.already_succeeded.is_empty());
    assert_eq!(report.overlap, Overlap::Skip);
    assert_eq!(report.estimated_seconds, 6.0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.records().await.is_empty());
    assert!(h.ran.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_runs_each_fire_time_once_and_a_second_one_runs_none() {
    let h = harness().await;
    let report = h
        .scheduler
        .backfill("minutely", &fast(at(10, 0), at(11, 0)))
        .await
        .unwrap();
    assert_eq!(report.to_run.len(), 60);
    let records = h.ended(60).await;
    assert_eq!(records.len(), 60, "{records:?}");
    assert!(records
        .iter()
        .all(|r| r.outcome == RunOutcome::Success && r.backfill));
    assert_eq!(
        records.iter().map(|r| r.scheduled_at).collect::<Vec<_>>(),
        minutes(at(10, 0), 60)
    );
    let mut ran = h.ran.lock().unwrap().clone();
    ran.sort();
    assert_eq!(
        ran,
        minutes(at(10, 0), 60),
        "each fire time ran once, as itself"
    );

    let again = h
        .scheduler
        .backfill("minutely", &fast(at(10, 0), at(11, 0)))
        .await
        .unwrap();
    assert!(again.to_run.is_empty(), "{again:?}");
    assert_eq!(again.already_succeeded.len(), 60);

    // A wider range runs only the part that has not succeeded.
    let wider = h
        .scheduler
        .backfill("minutely", &fast(at(9, 30), at(11, 0)))
        .await
        .unwrap();
    assert_eq!(wider.to_run, minutes(at(9, 30), 30));
    assert_eq!(h.ended(90).await.len(), 90);

    // Unless asked to run them again.
    let rerun = h
        .scheduler
        .backfill(
            "minutely",
            &BackfillRequest {
                rerun_succeeded: true,
                dry_run: true,
                ..fast(at(10, 0), at(10, 10))
            },
        )
        .await
        .unwrap();
    assert_eq!(rerun.to_run.len(), 10);
    // The job's own schedule is untouched.
    let job = h.scheduler.get_job("minutely").await.unwrap().unwrap();
    assert_eq!(
        job.job().next_run_time.map(|t| t.with_timezone(&Utc)),
        Some(at(12, 0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_start_at_the_configured_rate() {
    let h = harness().await;
    let began = Instant::now();
    h.scheduler
        .backfill(
            "minutely",
            &BackfillRequest {
                rate_per_sec: 20.0,
                ..BackfillRequest::new(at(10, 0), at(10, 21))
            },
        )
        .await
        .unwrap();
    assert_eq!(h.ended(21).await.len(), 21);
    // 21 runs at 20/s: the last starts 1 s after the first. Only the lower bound is
    // tight; a loaded machine may take longer.
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(950), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_whole_naming_the_field() {
    let h = harness().await;
    let s = &h.scheduler;
    let refused = |e: &apscheduler_core::Error, kind: ErrorKind, field: &str| {
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.to_string().contains(field), "{e} does not name {field}");
    };
    refused(
        &s.backfill("minutely", &fast(at(11, 0), at(10, 0)))
            .await
            .unwrap_err(),
        ErrorKind::InvalidInput,
        "field 'to'",
    );
    refused(
        &s.backfill("minutely", &fast(at(10, 0), at(10, 0)))
            .await
            .unwrap_err(),
        ErrorKind::InvalidInput,
        "field 'to'",
    );
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let request = BackfillRequest {
            rate_per_sec: rate,
            ..BackfillRequest::new(at(10, 0), at(11, 0))
        };
        refused(
            &s.backfill("minutely", &request).await.unwrap_err(),
            ErrorKind::InvalidInput,
            "field 'rate_per_sec'",
        );
    }
    // A day of minutes is more than the maximum of 1000 asked for here...
    let unbounded = BackfillRequest {
        max_fire_times: 1000,
        ..fast(at(0, 0) - chrono::Duration::days(1), at(0, 0))
    };
    let e = s.backfill("minutely", &unbounded).await.unwrap_err();
    refused(&e, ErrorKind::InvalidInput, "field 'to'");
    assert!(e.to_string().contains("more than 1000 fire times"), "{e}");
    // ... and accepted with `force`.
    let forced = BackfillRequest {
        force: true,
        dry_run: true,
        ..unbounded
    };
    assert_eq!(
        s.backfill("minutely", &forced).await.unwrap().to_run.len(),
        1440
    );
    refused(
        &s.backfill("nope", &fast(at(10, 0), at(11, 0)))
            .await
            .unwrap_err(),
        ErrorKind::NotFound,
        "nope",
    );
    // A job whose trigger starts at 09:00 cannot be backfilled from 08:00.
    s.add_job(JobSpec::task("work").id("late-start").trigger_args(
        "cron",
        json!({"minute": "*", "start_date": "2026-12-01T09:00:00+00:00"}),
    ))
    .await
    .unwrap();
    refused(
        &s.backfill("late-start", &fast(at(8, 0), at(10, 0)))
            .await
            .unwrap_err(),
        ErrorKind::InvalidInput,
        "field 'from'",
    );
    // Nothing of any refused request ran.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.records().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_history_a_backfill_must_rerun_everything() {
    let engine = Engine::builder()
        .clock(Arc::new(ManualClock::new(at(12, 0))))
        .executor("default", Arc::new(InlineExecutor::new()))
        .build();
    engine.register_task("work", |_| Ok(json!(null)));
    engine.start(false).await.unwrap();
    engine
        .add_job(
            JobSpec::task("work")
                .id("minutely")
                .trigger_args("cron", json!({"minute": "*"})),
        )
        .await
        .unwrap();
    let e = engine
        .backfill("minutely", &fast(at(10, 0), at(11, 0)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidState);
    assert!(e.to_string().contains("rerun_succeeded"), "{e}");
    let report = engine
        .backfill(
            "minutely",
            &BackfillRequest {
                rerun_succeeded: true,
                dry_run: true,
                ..fast(at(10, 0), at(11, 0))
            },
        )
        .await
        .unwrap();
    assert_eq!(report.to_run.len(), 60);
}

#[test]
fn the_sync_front_end_backfills_too() {
    let history = Arc::new(MemoryRunHistory::new());
    let scheduler = apscheduler_engine::BackgroundScheduler::from_builder(
        Engine::builder()
            .clock(Arc::new(ManualClock::new(at(12, 0))))
            .run_history(history.clone(), HistoryOptions::default()),
    )
    .unwrap();
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let overlapped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (r, o) = (running.clone(), overlapped.clone());
    scheduler.register_task("work", move |_| {
        use std::sync::atomic::Ordering::SeqCst;
        if r.fetch_add(1, SeqCst) > 0 {
            o.store(true, SeqCst);
        }
        std::thread::sleep(Duration::from_millis(20));
        r.fetch_sub(1, SeqCst);
        Ok(json!(null))
    });
    scheduler.start(false).unwrap();
    scheduler
        .add_job(
            JobSpec::task("work")
                .id("minutely")
                .trigger_args("cron", json!({"minute": "*"})),
        )
        .unwrap();
    // A thread pool runs them, each for 20 ms: under the job's `skip` (max_instances
    // 1) the backfill waits for each run's end instead of skipping the next one.
    let report = scheduler
        .backfill("minutely", &fast(at(10, 0), at(10, 5)))
        .unwrap();
    assert_eq!(report.to_run.len(), 5);
    let deadline = Instant::now() + Duration::from_secs(60);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ended = loop {
        let runs = rt
            .block_on(history.query_runs(&RunQuery::default()))
            .unwrap();
        let ended = runs
            .iter()
            .filter(|r| r.outcome == RunOutcome::Success && r.backfill)
            .count();
        if ended == 5 || Instant::now() > deadline {
            break ended;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(ended, 5);
    assert!(
        !overlapped.load(std::sync::atomic::Ordering::SeqCst),
        "two runs overlapped"
    );

    // `allow_all` lets them overlap.
    let request = BackfillRequest {
        overlap: Some(Overlap::AllowAll),
        ..fast(at(11, 0), at(11, 5))
    };
    scheduler.backfill("minutely", &request).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !overlapped.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(overlapped.load(std::sync::atomic::Ordering::SeqCst));
    scheduler.shutdown(true).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_stops_when_its_job_is_removed_or_the_scheduler_shuts_down() {
    let slow = |from| BackfillRequest {
        rate_per_sec: 20.0,
        ..BackfillRequest::new(from, from + chrono::Duration::minutes(100))
    };
    let h = harness().await;
    h.scheduler
        .backfill("minutely", &slow(at(0, 0)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.scheduler.remove_job("minutely").await.unwrap();
    // The job is looked up once a second: give it that, and as long again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = h.ran.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.ran.lock().unwrap().len(),
        stopped,
        "runs went on after the removal"
    );
    assert!(stopped < 100, "{stopped}");

    let h = harness().await;
    h.scheduler
        .backfill("minutely", &slow(at(0, 0)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.scheduler.shutdown(true).await.unwrap();
    let stopped = h.ran.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.ran.lock().unwrap().len(),
        stopped,
        "runs went on after shutdown"
    );
    assert!(stopped < 100, "{stopped}");
}

/// The memory history, whose first write of backfill `running` records waits until
/// the test opens its gate: the window between the backfill's check for a free
/// instance and its submission, held open.
#[derive(Debug)]
struct GatedHistory {
    inner: MemoryRunHistory,
    reached: tokio::sync::Semaphore,
    gate: tokio::sync::Semaphore,
}

#[apscheduler_core::async_trait]
impl RunHistory for GatedHistory {
    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), apscheduler_core::Error> {
        if records
            .iter()
            .any(|r| r.backfill && r.outcome == RunOutcome::Running)
        {
            self.reached.add_permits(1);
            if let Ok(permit) = self.gate.acquire().await {
                permit.forget();
            }
        }
        self.inner.record_runs(records).await
    }
    async fn record_starts(
        &self,
        records: &[RunRecord],
    ) -> Result<Vec<String>, apscheduler_core::Error> {
        self.inner.record_starts(records).await
    }
    async fn query_runs(
        &self,
        query: &RunQuery,
    ) -> Result<Vec<RunRecord>, apscheduler_core::Error> {
        self.inner.query_runs(query).await
    }
    async fn prune_job_runs(
        &self,
        job_id: &str,
        keep: usize,
    ) -> Result<u64, apscheduler_core::Error> {
        self.inner.prune_job_runs(job_id, keep).await
    }
    async fn prune_runs_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<u64, apscheduler_core::Error> {
        self.inner.prune_runs_before(before).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_run_whose_instance_the_job_took_first_waits_for_it() {
    let history = Arc::new(GatedHistory {
        inner: MemoryRunHistory::new(),
        reached: tokio::sync::Semaphore::new(0),
        gate: tokio::sync::Semaphore::new(0),
    });
    let clock = Arc::new(ManualClock::new(at(12, 0)));
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .run_history(history.clone(), HistoryOptions::default())
        .build();
    // The first run (the job's own fire time) holds the job's one instance until the
    // test lets it go.
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let first = Mutex::new(Some((started_tx, release_rx)));
    engine.register_task("work", move |_| {
        if let Some((started, release)) = first.lock().unwrap().take() {
            started.send(()).unwrap();
            release.recv().unwrap();
        }
        Ok(json!(null))
    });
    engine.start(false).await.unwrap();
    let scheduler = AsyncScheduler::from_engine(engine.clone()).unwrap();
    scheduler
        .add_job(
            JobSpec::task("work")
                .id("minutely")
                .trigger_args("cron", json!({"minute": "*"})),
        )
        .await
        .unwrap();
    scheduler.pause_job("minutely").await.unwrap();

    // The backfill finds the instance free and stops before its submission ...
    let report = scheduler
        .backfill("minutely", &fast(at(10, 0), at(10, 1)))
        .await
        .unwrap();
    assert_eq!(report.to_run.len(), 1);
    history.reached.acquire().await.unwrap().forget();
    // ... the job's own fire time of 12:01 takes the instance ...
    scheduler.resume_job("minutely").await.unwrap();
    clock.set(at(12, 1));
    engine.process_jobs().await;
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    // ... the backfill's submission is refused: its run waits, and starts once the
    // instance is free.
    history.gate.add_permits(1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    release_tx.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let backfilled = loop {
        let runs = history.query_runs(&RunQuery::default()).await.unwrap();
        let backfilled: Vec<RunOutcome> = runs
            .iter()
            .filter(|r| r.backfill && r.outcome != RunOutcome::Running)
            .map(|r| r.outcome)
            .collect();
        if !backfilled.is_empty() || Instant::now() > deadline {
            break backfilled;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(backfilled, [RunOutcome::Success]);
    scheduler.shutdown(true).await.unwrap();
}

//! A year of a once-a-minute cron job through the real `AsyncScheduler` (main loop,
//! memory store, async executor) on a `VirtualClock` in a paused tokio runtime: every
//! fire time runs once, in order, none missed, without waiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler::core::Clock;
use apscheduler::prelude::*;
use chrono::{DateTime, Utc};

const MINUTES_IN_2026: usize = 365 * 24 * 60;

/// Each run's scheduled time and the clock's reading inside the run.
type Seen = Arc<Mutex<Vec<(DateTime<Utc>, DateTime<Utc>)>>>;

#[tokio::test(start_paused = true)]
async fn a_year_of_a_once_a_minute_job_runs_on_virtual_time() {
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let clock = Arc::new(VirtualClock::starting_at(start));
    let scheduler =
        AsyncScheduler::from_builder(Engine::builder().clock(clock.clone()).timezone(Tz::UTC))
            .unwrap();
    let ran: Arc<Mutex<Vec<DateTime<Utc>>>> = Arc::default();
    let missed = Arc::new(Mutex::new(0usize));
    let sink = ran.clone();
    scheduler.register_async_task("tick", move |ctx| {
        let sink = sink.clone();
        async move {
            sink.lock()
                .unwrap()
                .push(ctx.scheduled_run_time.with_timezone(&Utc));
            Ok(json!(null))
        }
    });
    let count = missed.clone();
    scheduler.add_listener(
        move |_| *count.lock().unwrap() += 1,
        EVENT_JOB_MISSED | EVENT_JOB_ERROR,
    );
    scheduler
        .add_job(JobSpec::task("tick").trigger_args("cron", json!({"minute": "*"})))
        .await
        .unwrap();
    scheduler.start(false).await.unwrap();
    // Just short of the last minute's end: the year's 525,600th fire time is
    // 2026-12-31 23:59.
    tokio::time::sleep(Duration::from_secs(MINUTES_IN_2026 as u64 * 60 - 30)).await;
    scheduler.shutdown(true).await.unwrap();

    let ran = ran.lock().unwrap();
    assert_eq!(ran.len(), MINUTES_IN_2026, "runs in the year");
    for (i, t) in ran.iter().enumerate() {
        assert_eq!(*t, start + chrono::Duration::minutes(i as i64), "run {i}");
    }
    assert_eq!(*missed.lock().unwrap(), 0, "missed or failed runs");
    assert_eq!(
        clock.now(),
        start + chrono::Duration::seconds(MINUTES_IN_2026 as i64 * 60 - 30)
    );
}

/// A sync task runs on tokio's blocking pool, and tokio moves paused time on only once it
/// returned: each run sees its own fire time, however long it takes in real time.
#[tokio::test(start_paused = true)]
async fn sync_tasks_run_on_virtual_time_too() {
    let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    let clock = Arc::new(VirtualClock::starting_at(start));
    let scheduler =
        AsyncScheduler::from_builder(Engine::builder().clock(clock.clone()).timezone(Tz::UTC))
            .unwrap();
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let task_clock = clock.clone();
    scheduler.register_task("slow", move |ctx| {
        // Real time passes; virtual time must not.
        std::thread::sleep(Duration::from_millis(2));
        sink.lock()
            .unwrap()
            .push((ctx.scheduled_run_time.with_timezone(&Utc), task_clock.now()));
        Ok(json!(null))
    });
    scheduler
        .add_job(JobSpec::task("slow").trigger_args("interval", json!({"hours": 1})))
        .await
        .unwrap();
    scheduler.start(false).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7 * 24 * 3600 + 30)).await;
    scheduler.shutdown(true).await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 7 * 24, "hourly runs in a week");
    for (i, (scheduled, now)) in seen.iter().enumerate() {
        let expected = start + chrono::Duration::hours(i as i64 + 1);
        assert_eq!(*scheduled, expected, "run {i}");
        assert_eq!(*now, expected, "the clock in run {i}");
    }
}

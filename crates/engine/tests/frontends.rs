//! The front-ends in real time: few tests, generous timeouts, no exact timing asserted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::event;
use apscheduler_core::ManualClock;
use apscheduler_engine::{
    AsyncScheduler, BackgroundScheduler, BlockingScheduler, DrivenScheduler, Engine, JobChanges,
    JobSpec, SchedulerState,
};
use chrono::Utc;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn background_runs_interval_jobs_and_shuts_down() {
    let scheduler = BackgroundScheduler::new().unwrap();
    let (tx, rx) = mpsc::channel();
    scheduler
        .add_job(
            JobSpec::closure(move |_| {
                let _ = tx.send(());
                Ok(json!(null))
            })
            .trigger_args("interval", json!({"seconds": 0.05})),
        )
        .unwrap();
    scheduler.start(false).unwrap();
    for _ in 0..3 {
        rx.recv_timeout(PATIENCE).expect("job ran");
    }
    scheduler.shutdown(true).unwrap();
    assert_eq!(scheduler.state(), SchedulerState::Stopped);
}

fn slow_job(scheduler: &BackgroundScheduler) -> (mpsc::Receiver<()>, Arc<AtomicBool>) {
    let (started_tx, started) = mpsc::channel();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    scheduler
        .add_job(JobSpec::closure(move |_| {
            let _ = started_tx.send(());
            std::thread::sleep(Duration::from_millis(400));
            f.store(true, Ordering::SeqCst);
            Ok(json!(null))
        }))
        .unwrap();
    (started, finished)
}

#[test]
fn shutdown_wait_true_waits_for_running_jobs() {
    let scheduler = BackgroundScheduler::new().unwrap();
    let (started, finished) = slow_job(&scheduler);
    scheduler.start(false).unwrap();
    started.recv_timeout(PATIENCE).unwrap();
    scheduler.shutdown(true).unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "shutdown(wait=true) returned before the job ended"
    );
}

#[test]
fn shutdown_wait_false_returns_at_once() {
    let scheduler = BackgroundScheduler::new().unwrap();
    let (started, finished) = slow_job(&scheduler);
    scheduler.start(false).unwrap();
    started.recv_timeout(PATIENCE).unwrap();
    scheduler.shutdown(false).unwrap();
    assert!(
        !finished.load(Ordering::SeqCst),
        "shutdown(wait=false) waited for the job"
    );
}

#[test]
fn modify_to_an_earlier_time_is_honoured_at_once() {
    let scheduler = BackgroundScheduler::new().unwrap();
    let (tx, rx) = mpsc::channel();
    scheduler
        .add_job(
            JobSpec::closure(move |_| {
                let _ = tx.send(());
                Ok(json!(null))
            })
            .id("later")
            .trigger_args("interval", json!({"hours": 1})),
        )
        .unwrap();
    scheduler.start(false).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // let the loop go to sleep for an hour
    let soon = Utc::now().with_timezone(&scheduler.engine().timezone())
        + chrono::Duration::milliseconds(100);
    scheduler
        .modify_job("later", JobChanges::new().next_run_time(Some(soon)))
        .unwrap();
    rx.recv_timeout(PATIENCE)
        .expect("the earlier time was honoured");
    scheduler.shutdown(false).unwrap();
}

#[test]
fn blocking_start_returns_after_shutdown() {
    let scheduler = Arc::new(BlockingScheduler::new().unwrap());
    let (tx, rx) = mpsc::channel();
    scheduler
        .add_job(JobSpec::closure(move |_| {
            let _ = tx.send(());
            Ok(json!(null))
        }))
        .unwrap();
    let s = scheduler.clone();
    let stopper = std::thread::spawn(move || {
        rx.recv_timeout(PATIENCE).expect("job ran");
        s.shutdown(true).unwrap();
    });
    scheduler.start(false).unwrap(); // blocks until the stopper shuts it down
    stopper.join().unwrap();
    assert_eq!(scheduler.state(), SchedulerState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_scheduler_runs_async_jobs() {
    let scheduler = AsyncScheduler::new().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    scheduler.add_listener(
        move |e| {
            let _ = tx.send(e.retval().cloned());
        },
        event::EVENT_JOB_EXECUTED,
    );
    scheduler
        .add_job(
            JobSpec::closure_async(move |_ctx| {
                let r = r.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Ok(json!(r.fetch_add(1, Ordering::SeqCst)))
                }
            })
            .trigger_args("interval", json!({"seconds": 0.05})),
        )
        .await
        .unwrap();
    scheduler.start(false).await.unwrap();
    for _ in 0..2 {
        tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .unwrap()
            .unwrap();
    }
    scheduler.shutdown(true).await.unwrap();
    assert!(runs.load(Ordering::SeqCst) >= 2);
}

#[test]
fn driven_scheduler_reports_next_wakeup_and_runs_what_is_due() {
    // In whole microseconds, as fire times are kept: the interval's first fire time is
    // then exactly 30 s ahead.
    let start = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let clock = Arc::new(ManualClock::new(start));
    let scheduler = DrivenScheduler::from_builder(
        Engine::builder()
            .clock(clock.clone())
            .timezone(chrono_tz::UTC),
    )
    .unwrap();
    let hooks = Arc::new(AtomicUsize::new(0));
    let h = hooks.clone();
    scheduler.set_wakeup_hook(move || {
        h.fetch_add(1, Ordering::SeqCst);
    });
    scheduler.register_task("tick", |_| Ok(json!(null)));
    scheduler.start(false).unwrap();
    let before = hooks.load(Ordering::SeqCst);
    scheduler
        .add_job(JobSpec::task("tick").trigger_args("interval", json!({"seconds": 30})))
        .unwrap();
    assert!(
        hooks.load(Ordering::SeqCst) > before,
        "adding a job calls the wake-up hook"
    );
    assert_eq!(scheduler.run_due(), Some(Duration::from_secs(30)));
    assert!(scheduler.next_wakeup().is_some());
    // A job for later than the next call does not call the hook; an earlier one does.
    let armed = hooks.load(Ordering::SeqCst);
    scheduler
        .add_job(JobSpec::task("tick").trigger_args("interval", json!({"seconds": 60})))
        .unwrap();
    assert_eq!(
        hooks.load(Ordering::SeqCst),
        armed,
        "a later job needs no call"
    );
    scheduler
        .add_job(JobSpec::task("tick").trigger_args("interval", json!({"seconds": 10})))
        .unwrap();
    assert!(hooks.load(Ordering::SeqCst) > armed, "an earlier job does");
    assert_eq!(scheduler.run_due(), Some(Duration::from_secs(10)));
    clock.advance(chrono::Duration::seconds(10));
    assert_eq!(scheduler.run_due(), Some(Duration::from_secs(10)));
    scheduler.shutdown(true).unwrap();
}

/// Dropping a front-end inside a tokio runtime (a background scheduler in a web
/// application) must not panic, whether it was shut down or not, on a multi-thread and
/// on a current-thread runtime.
#[test]
fn front_ends_can_be_dropped_inside_a_tokio_runtime() {
    for multi_thread in [true, false] {
        let rt = if multi_thread {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .unwrap();
        rt.block_on(async {
            let scheduler = apscheduler_engine::BackgroundScheduler::new().unwrap();
            scheduler.start(false).unwrap();
            scheduler.shutdown(true).unwrap();
            drop(scheduler);

            let running = apscheduler_engine::BackgroundScheduler::new().unwrap();
            running.start(false).unwrap();
            drop(running);

            let never_started = apscheduler_engine::BlockingScheduler::new().unwrap();
            drop(never_started);

            let driven = apscheduler_engine::DrivenScheduler::new().unwrap();
            driven.start(false).unwrap();
            drop(driven);
        });
    }
}

/// The handle `add_job` returns says where the job stands: pending before start,
/// scheduled, paused, or removed when its trigger had nothing left.
#[test]
fn add_job_handles_show_the_job_status() {
    use apscheduler_engine::{BackgroundScheduler, JobSpec, JobStatus};
    let scheduler = BackgroundScheduler::new().unwrap();
    scheduler.register_task("noop", |_| Ok(serde_json::json!(null)));
    let every = || JobSpec::task("noop").trigger_args("interval", serde_json::json!({"hours": 1}));
    let pending = scheduler.add_job(every().id("p")).unwrap();
    assert_eq!(pending.status(), JobStatus::Pending);
    assert!(pending.to_string().ends_with(", pending)"), "{pending}");
    scheduler.start(false).unwrap();
    let scheduled = scheduler.add_job(every().id("s")).unwrap();
    assert_eq!(scheduled.status(), JobStatus::Scheduled);
    let paused = scheduler
        .add_job(every().id("z").next_run_time(None))
        .unwrap();
    assert_eq!(paused.status(), JobStatus::Paused);
    assert!(paused.to_string().ends_with(", paused)"), "{paused}");
    let gone = scheduler
        .add_job(JobSpec::task("noop").id("gone").trigger_args(
            "interval",
            serde_json::json!({"seconds": 10, "start_date": "2024-01-01 00:00:00", "end_date": "2024-01-02 00:00:00"}),
        ))
        .unwrap();
    assert_eq!(gone.status(), JobStatus::Removed);
    assert!(gone.to_string().ends_with(", removed)"), "{gone}");
    scheduler.shutdown(true).unwrap();
}

/// The async front-end has the thread-based front-ends' job API: the same names, the
/// same arguments (no store aliases), handles with the same statuses, `print_jobs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_front_end_has_the_same_job_api() {
    use apscheduler_engine::JobStatus;
    let scheduler = AsyncScheduler::new().unwrap();
    scheduler.register_task("noop", |_| Ok(json!(null)));
    let every = || JobSpec::task("noop").trigger_args("interval", json!({"hours": 1}));
    let pending = scheduler.add_job(every().id("p")).await.unwrap();
    assert_eq!(pending.status(), JobStatus::Pending);
    assert!(pending.to_string().ends_with(", pending)"), "{pending}");
    assert!(scheduler
        .format_jobs(None)
        .await
        .unwrap()
        .contains("Pending jobs:"));
    scheduler.start(false).await.unwrap();
    assert!(scheduler.running());
    let scheduled = scheduler.add_job(every().id("s")).await.unwrap();
    assert_eq!(scheduled.status(), JobStatus::Scheduled);
    let renamed = scheduler
        .modify_job("s", JobChanges::new().name("renamed"))
        .await
        .unwrap();
    assert_eq!(&*renamed.name, "renamed");
    let paused = renamed.pause().await.unwrap();
    assert_eq!(paused.status(), JobStatus::Paused);
    let resumed = scheduler.resume_job("s").await.unwrap().unwrap();
    assert_eq!(resumed.status(), JobStatus::Scheduled);
    let cron = scheduler
        .reschedule_job("s", "cron", json!({"minute": "*/5"}))
        .await
        .unwrap()
        .unwrap();
    assert!(
        cron.trigger.to_string().starts_with("cron["),
        "{}",
        cron.trigger
    );
    let gone = scheduler
        .add_job(JobSpec::task("noop").id("gone").trigger_args(
            "interval",
            json!({"seconds": 10, "start_date": "2024-01-01 00:00:00", "end_date": "2024-01-02 00:00:00"}),
        ))
        .await
        .unwrap();
    assert_eq!(gone.status(), JobStatus::Removed);
    let listed: Vec<String> = scheduler
        .get_jobs(None)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id.to_string())
        .collect();
    // By next run time: `s` fires every 5 minutes, `p` hourly.
    assert_eq!(listed, ["s", "p"]);
    assert!(scheduler.get_job("p").await.unwrap().is_some());
    scheduler.print_jobs(None).await.unwrap();
    assert!(scheduler
        .format_jobs(None)
        .await
        .unwrap()
        .contains("Jobstore default:"));
    scheduler.remove_job("p").await.unwrap();
    scheduler
        .scheduled_job("interval", json!({"hours": 2}))
        .id("decorated")
        .register("decorated_task", |_ctx| async { Ok(json!(null)) })
        .await
        .unwrap();
    assert!(scheduler.get_job("decorated").await.unwrap().is_some());
    scheduler.remove_all_jobs(None).await.unwrap();
    assert!(scheduler.get_jobs(None).await.unwrap().is_empty());
    scheduler.shutdown(true).await.unwrap();
}

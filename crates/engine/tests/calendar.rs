//! Exclusion calendars in the engine, under an injected clock: an excluded fire time
//! is recorded `missed` ("excluded by calendar NAME") with `EVENT_JOB_MISSED` and does
//! not run; `next_allowed` moves it to the end of the excluded period; listings show
//! the next run time with exclusions applied.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::event::{Event, EVENT_JOB_MISSED};
use apscheduler_core::{ErrorKind, ManualClock, RunHistory, RunOutcome, RunQuery, RunRecord};
use apscheduler_engine::{next_allowed_run_time, Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use apscheduler_triggers::{CalendarAction, ExclusionCalendar, NamedCalendar};
use chrono::{DateTime, NaiveDate, TimeZone, Utc, Weekday};
use serde_json::json;

/// 2026-12-`day` at `h:m` UTC (the 24th is a Thursday).
fn dec(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, h, m, 0).unwrap()
}

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
    history: Arc<MemoryRunHistory>,
    rt: tokio::runtime::Runtime,
    ran: Arc<Mutex<Vec<DateTime<Utc>>>>,
    missed: Arc<AtomicUsize>,
}

impl Harness {
    fn new(now: DateTime<Utc>) -> Self {
        let clock = Arc::new(ManualClock::new(now));
        let history = Arc::new(MemoryRunHistory::new());
        let engine = Engine::builder()
            .clock(clock.clone())
            .timezone(chrono_tz::UTC)
            .executor("default", Arc::new(InlineExecutor::new()))
            .scheduler_id("node-1")
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
        let missed = Arc::new(AtomicUsize::new(0));
        let count = missed.clone();
        engine.add_listener(
            move |e: &Event| {
                if e.code() == EVENT_JOB_MISSED {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            },
            EVENT_JOB_MISSED,
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(engine.start(false)).unwrap();
        Harness {
            engine,
            clock,
            history,
            rt,
            ran,
            missed,
        }
    }

    fn process(&self, t: DateTime<Utc>) {
        self.clock.set(t);
        self.rt.block_on(self.engine.process_jobs());
        // Listeners run on the dispatcher's thread: wait for them before counting.
        self.engine.flush_events();
    }

    fn runs(&self, job: &str) -> Vec<RunRecord> {
        self.rt.block_on(async {
            self.engine.flush_history(Duration::from_secs(5)).await;
            let mut runs = self
                .history
                .query_runs(&RunQuery {
                    job_id: Some(job.into()),
                    ..RunQuery::default()
                })
                .await
                .unwrap();
            runs.sort_by_key(|r| r.scheduled_at);
            runs
        })
    }

    fn next_run_time(&self, job: &str) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let job = self
            .rt
            .block_on(self.engine.get_job(job, None))
            .unwrap()
            .unwrap();
        (
            job.next_run_time.map(|t| t.with_timezone(&Utc)),
            next_allowed_run_time(&job).map(|t| t.with_timezone(&Utc)),
        )
    }
}

fn holidays() -> NamedCalendar {
    NamedCalendar {
        name: "holidays".into(),
        calendar: ExclusionCalendar::new(chrono_tz::UTC)
            .dates([NaiveDate::from_ymd_opt(2026, 12, 24).unwrap()]),
    }
}

#[test]
fn a_fire_time_on_a_holiday_is_recorded_missed_and_the_job_runs_the_next_day() {
    let h = Harness::new(dec(23, 10, 0));
    h.rt.block_on(
        h.engine.add_job(
            JobSpec::task("work")
                .id("daily")
                .trigger_args("cron", json!({"hour": 9, "minute": 0}))
                .calendar(holidays()),
        ),
    )
    .unwrap();
    // Stored: the excluded fire time (the loop wakes for it); listed: the next one
    // that runs.
    assert_eq!(
        h.next_run_time("daily"),
        (Some(dec(24, 9, 0)), Some(dec(25, 9, 0)))
    );

    h.process(dec(24, 9, 0));
    let runs = h.runs("daily");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0].outcome, runs[0].scheduled_at, runs[0].started_at),
        (RunOutcome::Missed, dec(24, 9, 0), None)
    );
    assert_eq!(
        runs[0].message.as_deref(),
        Some("excluded by calendar holidays")
    );
    assert_eq!(
        apscheduler_engine::excluded_calendar(runs[0].message.as_deref().unwrap()),
        Some("holidays")
    );
    assert!(
        h.ran.lock().unwrap().is_empty(),
        "an excluded fire time ran"
    );
    assert_eq!(h.missed.load(Ordering::SeqCst), 1);
    assert_eq!(
        h.next_run_time("daily"),
        (Some(dec(25, 9, 0)), Some(dec(25, 9, 0)))
    );

    h.process(dec(25, 9, 0));
    let runs = h.runs("daily");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(
        (runs[1].outcome, runs[1].scheduled_at),
        (RunOutcome::Success, dec(25, 9, 0))
    );
    assert_eq!(*h.ran.lock().unwrap(), vec![dec(25, 9, 0)]);
    assert_eq!(h.missed.load(Ordering::SeqCst), 1);
}

#[test]
fn overdue_fire_times_coalesce_among_those_the_calendar_allows() {
    // Every hour; the engine comes back after four of them, one excluded (10:00-11:00).
    let h = Harness::new(dec(21, 7, 30));
    let calendar = NamedCalendar {
        name: "maintenance".into(),
        calendar: ExclusionCalendar::new(chrono_tz::UTC)
            .window("10:00-11:00")
            .unwrap(),
    };
    h.rt.block_on(
        h.engine.add_job(
            JobSpec::task("work")
                .id("hourly")
                .trigger_args("cron", json!({"minute": 0}))
                .misfire_grace_time(None)
                .calendar(calendar),
        ),
    )
    .unwrap();
    h.process(dec(21, 11, 30));
    let runs = h.runs("hourly");
    let summary: Vec<(RunOutcome, DateTime<Utc>)> =
        runs.iter().map(|r| (r.outcome, r.scheduled_at)).collect();
    assert_eq!(
        summary,
        vec![
            (RunOutcome::Missed, dec(21, 10, 0)),
            (RunOutcome::Success, dec(21, 11, 0)),
        ],
        "{runs:?}"
    );
    // Coalesced: one run for 08:00, 09:00 and 11:00, as its last fire time.
    assert_eq!(*h.ran.lock().unwrap(), vec![dec(21, 11, 0)]);
}

#[test]
fn next_allowed_moves_an_excluded_fire_time_to_the_end_of_the_window() {
    let h = Harness::new(dec(21, 8, 0));
    let calendar = NamedCalendar {
        name: "office".into(),
        calendar: ExclusionCalendar::new(chrono_tz::UTC)
            .window("09:00-12:00")
            .unwrap(),
    };
    h.rt.block_on(
        h.engine.add_job(
            JobSpec::task("work")
                .id("report")
                .trigger_args("cron", json!({"hour": 10, "minute": 0}))
                .calendar(calendar)
                .calendar_action(CalendarAction::NextAllowed),
        ),
    )
    .unwrap();
    assert_eq!(
        h.next_run_time("report"),
        (Some(dec(21, 12, 0)), Some(dec(21, 12, 0)))
    );
    h.process(dec(21, 10, 0));
    assert!(
        h.runs("report").is_empty(),
        "ran inside the excluded window"
    );
    h.process(dec(21, 12, 0));
    let runs = h.runs("report");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0].outcome, runs[0].scheduled_at),
        (RunOutcome::Success, dec(21, 12, 0))
    );
    assert_eq!(h.missed.load(Ordering::SeqCst), 0);
    assert_eq!(
        h.next_run_time("report"),
        (Some(dec(22, 12, 0)), Some(dec(22, 12, 0)))
    );
}

#[test]
fn a_job_its_calendar_never_lets_run_is_refused() {
    let h = Harness::new(dec(21, 8, 0));
    let always = NamedCalendar {
        name: "always".into(),
        calendar: ExclusionCalendar::new(chrono_tz::UTC).weekdays([
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]),
    };
    let e =
        h.rt.block_on(
            h.engine.add_job(
                JobSpec::task("work")
                    .id("never")
                    .trigger_args("interval", json!({"hours": 1}))
                    .calendar(always),
            ),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("job never would never run"), "{e}");
    let e =
        h.rt.block_on(
            h.engine.add_job(
                JobSpec::task("work")
                    .trigger_args("interval", json!({"hours": 1}))
                    .calendar_action(CalendarAction::NextAllowed),
            ),
        )
        .unwrap_err();
    assert!(e.to_string().contains("calendar_action"), "{e}");
}

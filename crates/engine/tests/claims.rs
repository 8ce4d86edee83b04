//! A claimed fire time is started only once the store applied the release that moves
//! its job past it (the cluster's "at most once"), under an injected clock: a release
//! the store reports lost (another scheduler claimed the job after this one's lease
//! expired) starts nothing here, and a release the store did not confirm starts
//! nothing until its retry: applied then, within the grace, its fire time starts;
//! otherwise it is recorded `missed`, saying why. And `max_instances` across the
//! nodes sharing a history: a fire time blocked only by another node's run waits for
//! that run's end to be written, and is skipped only if it does not come.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::event::{self, Event};
use apscheduler_core::{
    JobStore as _, ManualClock, RunHistory as _, RunOutcome, RunQuery, RunRecord,
};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, Utc};
use serde_json::json;

mod common;
mod faulty_store;
use common::{at, running, wait_for};
use faulty_store::{Fault, Faulty};

/// A scheduler `id` on `store` and `history` (with `options`), running jobs inline, and
/// the count of runs of its task `count`.
fn counting_node(
    id: &str,
    clock: &Arc<ManualClock>,
    store: Arc<Faulty>,
    history: &Arc<MemoryRunHistory>,
    options: HistoryOptions,
) -> (Engine, Arc<AtomicUsize>) {
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", store)
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id(id)
        .run_history(history.clone(), options)
        .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    engine.register_task("count", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(json!(null))
    });
    (engine, runs)
}

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
    store: Arc<Faulty>,
    history: Arc<MemoryRunHistory>,
    runs: Arc<AtomicUsize>,
    rt: tokio::runtime::Runtime,
}

impl Harness {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(at(9, 59, 0)));
        let store = Faulty::new(false);
        let history = Arc::new(MemoryRunHistory::new());
        let options = HistoryOptions::default();
        let (engine, runs) = counting_node("node-1", &clock, store.clone(), &history, options);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(engine.start(false)).unwrap();
        rt.block_on(
            engine.add_job(JobSpec::task("count").id("job").trigger_args(
                "interval",
                json!({"minutes": 1, "start_date": "2024-01-15 09:59:00"}),
            )),
        )
        .unwrap();
        let h = Harness {
            engine,
            clock,
            store,
            history,
            runs,
            rt,
        };
        // 9:59:00 runs normally.
        h.process(at(9, 59, 0));
        assert_eq!(h.runs.load(Ordering::SeqCst), 1);
        h
    }

    fn process(&self, t: DateTime<Utc>) {
        self.clock.set(t);
        self.rt.block_on(self.engine.process_jobs());
    }

    fn outcomes(&self) -> Vec<(DateTime<Utc>, RunOutcome)> {
        self.rt.block_on(async {
            let mut runs: Vec<_> = job_records(&self.engine, &self.history)
                .await
                .into_iter()
                .filter(|r| r.outcome != RunOutcome::Running)
                .map(|r| (r.scheduled_at, r.outcome))
                .collect();
            runs.sort_by_key(|(t, _)| *t);
            runs
        })
    }
}

/// An engine built without `.lease(...)` claims for 5 s: what the store is asked for,
/// and what it then holds (a second scheduler finds the job leased until then).
#[test]
fn the_default_lease_is_five_seconds() {
    let h = Harness::new();
    // Keep the lease: the release of 10:00:00 fails, so the claim's lease stands.
    h.store.fault.lock().unwrap().replace(Fault::Unconfirmed);
    h.process(at(10, 0, 0));
    let leases = h.store.leases.lock().unwrap().clone();
    assert!(leases.len() >= 2, "the engine claimed: {leases:?}");
    assert!(
        leases.iter().all(|l| *l == Duration::from_secs(5)),
        "the leases the engine asked for: {leases:?}"
    );
    // Another scheduler finds the job leased to node-1 just before 10:00:05, and free
    // from then on.
    let claim = |t: DateTime<Utc>| {
        h.rt.block_on(
            h.store
                .inner
                .acquire_due_jobs("node-2", t, 10, Duration::from_millis(1)),
        )
        .unwrap()
        .jobs
        .len()
    };
    let just_before = at(10, 0, 5) - chrono::Duration::milliseconds(1);
    assert_eq!(claim(just_before), 0, "the lease ended before 10:00:05");
    assert_eq!(claim(at(10, 0, 5)), 1, "the lease lasted past 10:00:05");
}

#[test]
fn a_release_lost_to_another_scheduler_starts_nothing_here() {
    let h = Harness::new();
    h.store.fault.lock().unwrap().replace(Fault::TakenOver);
    h.process(at(10, 0, 0));
    assert_eq!(
        h.runs.load(Ordering::SeqCst),
        1,
        "10:00:00 was node-2's to start once it claimed the job; node-1 started it too"
    );
    // node-2's state stands: the job's next fire time is the one it stored.
    let job =
        h.rt.block_on(h.engine.get_job("job", None))
            .unwrap()
            .unwrap();
    assert_eq!(
        job.next_run_time.map(|t| t.with_timezone(&Utc)),
        Some(at(10, 1, 0))
    );
    // node-2 records its own run; node-1's record of 10:00:00 (written before its
    // release) says it did not start it here, and why.
    assert_eq!(
        h.outcomes(),
        [
            (at(9, 59, 0), RunOutcome::Success),
            (at(10, 0, 0), RunOutcome::Missed)
        ]
    );
    let message =
        h.rt.block_on(h.history.query_runs(&RunQuery {
            outcome: Some(RunOutcome::Missed),
            ..RunQuery::default()
        }))
        .unwrap()[0]
            .message
            .clone()
            .unwrap();
    assert!(
        message.starts_with("not started here: another scheduler claimed the job"),
        "{message}"
    );
    // And node-1 goes on with the next fire time.
    h.process(at(10, 1, 0));
    assert_eq!(h.runs.load(Ordering::SeqCst), 2);
}

/// The message of the `missed` record of the job's fire time `t`.
fn missed_message(h: &Harness, t: DateTime<Utc>) -> String {
    h.rt.block_on(job_records(&h.engine, &h.history))
        .into_iter()
        .find(|r| r.scheduled_at == t && r.outcome == RunOutcome::Missed)
        .and_then(|r| r.message)
        .unwrap_or_else(|| panic!("no missed record of {t}"))
}

/// The job's run records (`running` ones too), by fire time.
fn all_outcomes(h: &Harness) -> Vec<(DateTime<Utc>, RunOutcome)> {
    h.rt.block_on(async {
        let mut runs: Vec<_> = job_records(&h.engine, &h.history)
            .await
            .into_iter()
            .map(|r| (r.scheduled_at, r.outcome))
            .collect();
        runs.sort_by_key(|(t, _)| *t);
        runs
    })
}

/// A store whose claim panics (a bug in it, or in a third-party store crate) fails the
/// pass as a store that errs does: the loop goes on, retries after the backoff, and the
/// fire time then runs.
#[test]
fn a_store_that_panics_in_a_pass_is_retried_like_a_failing_one() {
    let h = Harness::new();
    h.store.claim_panics.store(true, Ordering::SeqCst);
    h.clock.set(at(10, 0, 0));
    let wait = h.rt.block_on(h.engine.process_jobs());
    assert_eq!(
        wait,
        Some(Duration::from_millis(500)),
        "the store's backoff"
    );
    assert_eq!(h.runs.load(Ordering::SeqCst), 1);
    h.process(at(10, 0, 0) + chrono::Duration::milliseconds(500));
    assert_eq!(
        h.runs.load(Ordering::SeqCst),
        2,
        "10:00:00 ran after the retry"
    );
    h.process(at(10, 1, 0));
    assert_eq!(h.runs.load(Ordering::SeqCst), 3);
}

/// The store backoff: a store whose pass fails is looked at again 0.5 s later, then
/// every second while it stays down (so the first run after it returns comes within
/// about a second, inside the default 1 s grace); a pass that succeeds starts the
/// backoff over.
#[test]
fn a_failing_store_is_retried_after_half_a_second_then_every_second() {
    let h = Harness::new();
    let pass = |t: DateTime<Utc>| {
        h.clock.set(t);
        h.rt.block_on(h.engine.process_jobs())
            .expect("a wait after the pass")
    };
    h.store.claims_failing.store(4, Ordering::SeqCst);
    let mut t = at(9, 59, 30);
    let mut waits = Vec::new();
    for _ in 0..4 {
        let wait = pass(t);
        waits.push(wait);
        t += chrono::Duration::from_std(wait).unwrap();
    }
    let ms = Duration::from_millis;
    assert_eq!(waits, [ms(500), ms(1000), ms(1000), ms(1000)]);
    // Back: the next wait leads to the job's next fire time.
    assert_eq!(pass(t), (at(10, 0, 0) - t).to_std().unwrap());
    // Down again: the backoff starts over.
    h.store.claims_failing.store(1, Ordering::SeqCst);
    assert_eq!(pass(t + chrono::Duration::seconds(1)), ms(500));
}

/// A shutdown that cannot wait for a pass stalled in its release (over 5 s) records the
/// pass's claimed fire time as not started (`missed`, saying why), not as a run it
/// interrupted: it never ran. Real time: about 6 s.
#[test]
fn a_fire_time_claimed_by_a_pass_the_shutdown_cuts_short_is_recorded_not_started() {
    let h = Harness::new();
    h.store
        .fault
        .lock()
        .unwrap()
        .replace(Fault::Slow(Duration::from_secs(6)));
    h.clock.set(at(10, 0, 0));
    h.rt.block_on(async {
        let engine = h.engine.clone();
        let pass = tokio::spawn(async move { engine.process_jobs().await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        h.engine.shutdown(true).await.unwrap();
        pass.await.unwrap();
    });
    assert_eq!(
        h.runs.load(Ordering::SeqCst),
        1,
        "10:00:00 ran after the shutdown"
    );
    let message = missed_message(&h, at(10, 0, 0));
    assert!(
        message.contains("the scheduler shut down before the run started here"),
        "{message}"
    );
    assert_eq!(
        all_outcomes(&h),
        [
            (at(9, 59, 0), RunOutcome::Success),
            (at(10, 0, 0), RunOutcome::Missed),
        ]
    );
}

#[test]
fn an_unconfirmed_release_holds_its_fire_time_and_starts_it_once_the_retry_applies() {
    let h = Harness::new();
    h.store.fault.lock().unwrap().replace(Fault::Unconfirmed);
    h.process(at(10, 0, 0));
    assert_eq!(
        h.runs.load(Ordering::SeqCst),
        1,
        "10:00:00 was started although the store did not confirm its claim"
    );
    // It waits, still `running` in the history, neither started nor given up.
    assert_eq!(
        all_outcomes(&h),
        [
            (at(9, 59, 0), RunOutcome::Success),
            (at(10, 0, 0), RunOutcome::Running),
        ]
    );
    // The next pass, within the grace (1 s), retries the release; it applies, so the
    // first attempt had not: 10:00:00 is this node's, and starts.
    let before = h.store.releases.load(Ordering::SeqCst);
    h.process(at(10, 0, 0) + chrono::Duration::milliseconds(500));
    assert!(h.store.releases.load(Ordering::SeqCst) > before);
    assert_eq!(h.runs.load(Ordering::SeqCst), 2);
    assert_eq!(
        h.outcomes(),
        [
            (at(9, 59, 0), RunOutcome::Success),
            (at(10, 0, 0), RunOutcome::Success),
        ]
    );
    // And 10:01:00 runs once.
    h.process(at(10, 1, 0));
    assert_eq!(h.runs.load(Ordering::SeqCst), 3);
}

#[test]
fn an_unconfirmed_release_confirmed_after_the_grace_records_the_fire_time_missed() {
    let h = Harness::new();
    h.store.fault.lock().unwrap().replace(Fault::Unconfirmed);
    h.process(at(10, 0, 0));
    // The store answers again only 5 s later, past the 1 s grace.
    h.process(at(10, 0, 5));
    assert_eq!(h.runs.load(Ordering::SeqCst), 1);
    let message = missed_message(&h, at(10, 0, 0));
    assert!(
        message.contains("confirmed its claim only after the misfire grace time"),
        "{message}"
    );
    h.process(at(10, 1, 0));
    assert_eq!(h.runs.load(Ordering::SeqCst), 2);
}

#[test]
fn an_unconfirmed_release_that_had_applied_records_the_fire_time_missed() {
    let h = Harness::new();
    h.store
        .fault
        .lock()
        .unwrap()
        .replace(Fault::AppliedUnconfirmed);
    h.process(at(10, 0, 0));
    h.process(at(10, 0, 0) + chrono::Duration::milliseconds(500));
    // The retry finds the lease gone (the first attempt ended it): nobody may start
    // 10:00:00 now, and it is recorded so.
    assert_eq!(h.runs.load(Ordering::SeqCst), 1);
    let message = missed_message(&h, at(10, 0, 0));
    assert!(
        message.contains("the retried release found the lease gone"),
        "{message}"
    );
    h.process(at(10, 1, 0));
    assert_eq!(h.runs.load(Ordering::SeqCst), 2);
}

#[test]
fn a_shutdown_records_the_fire_times_of_an_unconfirmed_release() {
    let h = Harness::new();
    h.store.fault.lock().unwrap().replace(Fault::Unconfirmed);
    h.process(at(10, 0, 0));
    h.rt.block_on(h.engine.shutdown(true)).unwrap();
    assert_eq!(h.runs.load(Ordering::SeqCst), 1);
    let message = missed_message(&h, at(10, 0, 0));
    assert!(
        message.contains("did not confirm its claim before the scheduler shut down"),
        "{message}"
    );
}

/// A node `me/1` of a cluster (a shared store, a history another node `other/2` writes
/// too) whose job `job` (every minute from 10:00:00, `max_instances` 1, misfire grace
/// `grace` seconds) is due at the clock's 10:00:00 while `other/2` has a run of it in
/// flight. Returns the engine, the clock, the history, the count of runs started here
/// and the events' names.
async fn blocked_elsewhere(
    grace: f64,
) -> (
    Engine,
    Arc<ManualClock>,
    Arc<MemoryRunHistory>,
    Arc<AtomicUsize>,
    Arc<Mutex<Vec<String>>>,
) {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = Faulty::new(true);
    let history = Arc::new(MemoryRunHistory::new());
    history
        .record_runs(&[running("r-other", "job", "other/2")])
        .await
        .unwrap();
    let options = HistoryOptions {
        cluster_max_instances: true,
        ..HistoryOptions::default()
    };
    let (engine, runs) = counting_node("me/1", &clock, store, &history, options);
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = events.clone();
    engine.add_listener(
        move |e: &Event| sink.lock().unwrap().push(e.name().to_string()),
        event::EVENT_JOB_MAX_INSTANCES | event::EVENT_JOB_MISSED,
    );
    engine.start(false).await.unwrap();
    engine
        .add_job(
            JobSpec::task("count")
                .id("job")
                .trigger_args(
                    "interval",
                    json!({"minutes": 1, "start_date": "2024-01-15 10:00:00"}),
                )
                .max_instances(1)
                .misfire_grace_time(Some(Duration::from_secs_f64(grace))),
        )
        .await
        .unwrap();
    (engine, clock, history, runs, events)
}

/// The records of the job `job`, once what `engine` queued is written.
async fn job_records(engine: &Engine, history: &MemoryRunHistory) -> Vec<RunRecord> {
    engine.flush_history(Duration::from_secs(5)).await;
    history
        .query_runs(&RunQuery {
            job_id: Some("job".into()),
            ..RunQuery::default()
        })
        .await
        .unwrap()
}

/// The records of `job`'s fire time 10:00:00 on this node, once written.
async fn records_here(engine: &Engine, history: &MemoryRunHistory) -> Vec<RunRecord> {
    job_records(engine, history)
        .await
        .into_iter()
        .filter(|r| r.node == "me/1" && r.scheduled_at == at(10, 0, 0))
        .collect()
}

/// Waits until this node recorded the fire time `missed`.
async fn wait_skipped(engine: &Engine, history: &MemoryRunHistory) {
    let skipped = async || {
        records_here(engine, history)
            .await
            .iter()
            .any(|r| r.outcome == RunOutcome::Missed)
    };
    wait_for("the skip", skipped).await;
}

/// other/2's run of 09:59:00, ended.
fn other_run_ended() -> RunRecord {
    let mut ended = running("r-other", "job", "other/2");
    ended.outcome = RunOutcome::Success;
    ended.finished_at = Some(at(9, 59, 30));
    ended
}

/// Waits until this node started the fire time 10:00:00; checks it recorded it
/// `success`, with no event of a skip or a miss, and shuts `engine` down.
async fn starts_and_succeeds(
    engine: Engine,
    history: &MemoryRunHistory,
    runs: &AtomicUsize,
    events: &Mutex<Vec<String>>,
) {
    wait_for("the fire time's start", async || {
        runs.load(Ordering::SeqCst) == 1
    })
    .await;
    let records = records_here(&engine, history).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Success, "{records:#?}");
    engine.flush_events();
    assert!(events.lock().unwrap().is_empty(), "{:?}", events.lock());
    engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_time_blocked_only_by_another_nodes_run_starts_once_that_runs_end_is_written() {
    let (engine, _clock, history, runs, events) = blocked_elsewhere(30.0).await;
    engine.process_jobs().await;
    // The wait is at least a poll long, whatever the machine's load.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "started beside other/2's run"
    );
    // other/2's run ends, and its end reaches the history.
    history.record_runs(&[other_run_ended()]).await.unwrap();
    starts_and_succeeds(engine, &history, &runs, &events).await;
}

/// Two nodes' fire times once held each other back until both were skipped: a later
/// fire time, claimed by another node while this one waits, counts this one's
/// `running` record, and this one counted the later one's. A waiting fire time waits
/// only for the runs it found after its claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_fire_time_does_not_wait_for_a_run_claimed_after_it() {
    let (engine, _clock, history, runs, events) = blocked_elsewhere(30.0).await;
    engine.process_jobs().await;
    // third/3 claims the next fire time after this node's release: it found this
    // node's `running` record and waits in turn, its own `running` record written.
    let mut later = running("r-later", "job", "third/3");
    later.scheduled_at = at(10, 1, 0);
    history.record_runs(&[later]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "started beside other/2's run"
    );
    history.record_runs(&[other_run_ended()]).await.unwrap();
    starts_and_succeeds(engine, &history, &runs, &events).await;
}

/// A node that wrote its `running` record of a fire time and died before its release
/// never started it: the node that claims the fire time after the lease does not wait
/// for that record (it would otherwise skip the fire time it takes over until the dead
/// node's time-out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_record_of_the_same_fire_time_does_not_hold_it_back() {
    let (engine, _clock, history, runs, events) = blocked_elsewhere(30.0).await;
    // other/2's run of 09:59:00 ends; its record of 10:00:00 stays `running`.
    let mut taken = running("r-dead", "job", "other/2");
    taken.scheduled_at = at(10, 0, 0);
    history
        .record_runs(&[other_run_ended(), taken])
        .await
        .unwrap();
    engine.process_jobs().await;
    starts_and_succeeds(engine, &history, &runs, &events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_time_still_blocked_by_another_nodes_run_after_a_second_is_skipped() {
    let (engine, _clock, history, runs, events) = blocked_elsewhere(30.0).await;
    let began = std::time::Instant::now();
    engine.process_jobs().await;
    wait_skipped(&engine, &history).await;
    // Sleeps never end early: ten polls of 100 ms come first.
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "skipped after {:?}",
        began.elapsed()
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let records = records_here(&engine, &history).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let message = records[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains(
            "maximum number of running instances reached (1, 1 of them on other nodes: other/2)"
        ),
        "{message}"
    );
    engine.flush_events();
    assert_eq!(*events.lock().unwrap(), ["EVENT_JOB_MAX_INSTANCES"]);
    engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_fire_time_is_skipped_once_past_its_misfire_grace() {
    let (engine, clock, history, runs, _events) = blocked_elsewhere(0.5).await;
    engine.process_jobs().await;
    // The clock passes the grace while it waits (other/2's run goes on).
    clock.set(at(10, 0, 0) + chrono::Duration::seconds(1));
    let began = std::time::Instant::now();
    wait_skipped(&engine, &history).await;
    assert!(
        began.elapsed() < Duration::from_millis(900),
        "waited {:?}: the grace did not end the wait",
        began.elapsed()
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_records_the_fire_times_still_waiting() {
    let (engine, _clock, history, runs, _events) = blocked_elsewhere(30.0).await;
    engine.process_jobs().await;
    engine.shutdown(true).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let records = records_here(&engine, &history).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Missed, "{records:#?}");
    let message = records[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains("shut down while the fire time waited"),
        "{message}"
    );
}

//! The run contract ([`RunStore`]'s `# Behavior`): one check per rule, each on a fresh,
//! empty, started store.
//!
//! Leases are judged on the store's clock, which on a loopback server is this
//! machine's clock: the checks take their times from it. A check about an expired
//! lease grants a short one and waits past it (the wait only has to be long enough
//! for the lease to be over, so a slow machine cannot make it fail); every other lease
//! is [`LEASE`], far longer than any check.

use std::sync::Arc;

use apscheduler_core::{
    EndReply, Held, NewRun, Overlap, Run, RunEnd, RunKey, RunOrigin, RunOutcome, RunRules,
    RunState, RunStore, StartReply, Swept, MISSED_LATE, SKIPPED_AT_MAX, SKIPPED_BEHIND_BUFFERED,
};
use chrono::SubsecRound;

use super::helpers::*;
use super::*;

mod admission;
mod ending;
mod pass;

pub use admission::{
    check_batches, check_buffered_runs, check_grace, check_max_instances, check_stop_requests,
    check_takeover_grace,
};
pub use ending::{check_ending_is_taken_over, check_unrecorded_end};
pub use pass::{check_end_and_release, check_end_release_and_start};

/// A lease a check lets expire.
const SHORT: Duration = Duration::from_millis(300);

/// Waits until a lease of [`SHORT`] granted before this call has expired.
async fn past_short_lease() {
    tokio::time::sleep(SHORT + Duration::from_millis(50)).await;
}

/// Now on this machine, to the microsecond (what every store keeps).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Rules with `max_instances`, `overlap`, no grace limit and no recovery.
pub fn run_rules(max_instances: u32, overlap: Overlap) -> RunRules {
    RunRules {
        max_instances,
        overlap,
        grace_until: None,
        recover: false,
        batch: None,
    }
}

/// A new `Claimed` first run of `job_id` for `fire_time`.
pub fn claimed_run(job_id: &str, fire_time: DateTime<Utc>, rules: RunRules) -> NewRun {
    NewRun {
        key: RunKey::first(job_id, fire_time),
        state: RunState::Claimed,
        rules,
        origin: RunOrigin::Scheduled,
    }
}

/// Adds job `id` due a second ago, claims it for `holder` and releases it (paused) with
/// one `Claimed` run per fire time in `fires` (seconds before now), leased for `lease`.
async fn released(
    store: &dyn RunStore,
    holder: &str,
    id: &str,
    fires: &[i64],
    rules: RunRules,
    lease: Duration,
) -> Vec<Run> {
    let due = now() - chrono::Duration::seconds(1);
    let job = sample_job(id, Some(due.with_timezone(&Tz::UTC)), interval_trigger(60));
    add(store, job.clone()).await;
    let claimed = claim_for(store, holder, now(), 10, LEASE).await;
    assert!(claimed.iter().any(|j| &*j.id == id), "claim of {id}");
    let runs = fires
        .iter()
        .map(|s| claimed_run(id, due - chrono::Duration::seconds(*s), rules))
        .collect();
    let paused = Job {
        next_run_time: None,
        ..job
    };
    let released = store
        .release_with_runs(holder, vec![(JobRelease::Update(paused), runs)], lease)
        .await
        .expect("release_with_runs");
    assert!(released.jobs.is_complete(), "release of {id}");
    released.runs
}

async fn start(store: &dyn RunStore, holder: &str, run: &Run, lease: Duration) -> StartReply {
    let mut replies = store
        .start_runs(holder, &[run.held()], now(), lease)
        .await
        .expect("start_runs");
    replies.pop().expect("one reply per run")
}

async fn end(
    store: &dyn RunStore,
    holder: &str,
    run: &Held,
    outcome: RunOutcome,
    retry_at: Option<DateTime<Utc>>,
) -> EndReply {
    let end = RunEnd {
        run: run.clone(),
        outcome,
        retry_at,
        recorded: true,
    };
    let mut replies = store
        .end_runs(holder, vec![end], LEASE)
        .await
        .expect("end_runs");
    replies.pop().expect("one reply per end")
}

async fn row(store: &dyn RunStore, run: &Run) -> Run {
    store
        .lookup_run(&run.id)
        .await
        .expect("lookup_run")
        .unwrap_or_else(|| panic!("run {} is kept", run.id))
}

fn is_started(reply: &StartReply) -> bool {
    matches!(reply, StartReply::Started { .. })
}

/// A release creates its runs in the same step, `Claimed` and leased to the caller;
/// a release that is not applied (another scheduler's claim) creates none; a run's id
/// is its key's.
pub async fn check_release_creates_runs(store: &dyn RunStore) {
    const CHECK: &str = "check_release_creates_runs";
    let runs = released(
        store,
        "a",
        "job",
        &[0, 1],
        run_rules(1, Overlap::Skip),
        LEASE,
    )
    .await;
    assert_eq!(runs.len(), 2, "{CHECK}: two runs created");
    for run in &runs {
        assert_eq!(run.state, RunState::Claimed, "{CHECK}: state");
        assert_eq!(&*run.holder, "a", "{CHECK}: holder");
        assert_eq!(*run.id, run.key.id(), "{CHECK}: id");
        assert!(run.lease_until > now(), "{CHECK}: a live lease");
        assert_eq!(row(store, run).await, *run, "{CHECK}: the stored row");
    }
    let job = lookup(store, "job").await;
    let stranger = store
        .release_with_runs(
            "b",
            vec![(
                JobRelease::Update(job),
                vec![claimed_run("job", now(), run_rules(1, Overlap::Skip))],
            )],
            LEASE,
        )
        .await
        .expect("release_with_runs");
    assert_eq!(stranger.jobs.lost.len(), 1, "{CHECK}: a stranger's release");
    assert!(
        stranger.runs.is_empty(),
        "{CHECK}: a stranger's release made runs"
    );
    assert_eq!(
        store.runs_of_job("job").await.expect("runs_of_job").len(),
        2,
        "{CHECK}: runs of the job"
    );
}

/// A run's key is unique: a release (or a run by hand) naming the key of a run that
/// ended creates nothing, so that fire time never runs twice.
pub async fn check_keys_are_unique(store: &dyn RunStore) {
    const CHECK: &str = "check_keys_are_unique";
    let runs = released(store, "a", "job", &[0], run_rules(1, Overlap::Skip), LEASE).await;
    assert!(
        is_started(&start(store, "a", &runs[0], LEASE).await),
        "{CHECK}: start"
    );
    end(store, "a", &runs[0].held(), RunOutcome::Success, None).await;
    // The same fire time comes round again (the job was set back by hand).
    let job = Job {
        next_run_time: Some(now().with_timezone(&Tz::UTC)),
        ..lookup(store, "job").await
    };
    store.update_job(job.clone()).await.expect("update_job");
    assert_eq!(
        ids(&claim_for(store, "b", now(), 10, LEASE).await),
        ["job"],
        "{CHECK}"
    );
    let again = NewRun {
        key: runs[0].key.clone(),
        ..claimed_run("job", now(), run_rules(1, Overlap::Skip))
    };
    let released = store
        .release_with_runs(
            "b",
            vec![(JobRelease::Update(job), vec![again.clone()])],
            LEASE,
        )
        .await
        .expect("release_with_runs");
    assert!(released.jobs.is_complete(), "{CHECK}: the release applied");
    assert!(
        released.runs.is_empty(),
        "{CHECK}: an ended run's key made again"
    );
    let by_hand = store
        .insert_runs("b", vec![again], LEASE)
        .await
        .expect("insert_runs");
    assert!(
        by_hand.is_empty(),
        "{CHECK}: an ended run's key made again by hand"
    );
    assert!(
        matches!(row(store, &runs[0]).await.state, RunState::Ended { .. }),
        "{CHECK}: the ended run"
    );
}

/// Only the holder, with the run's fence, starts a run, and only while its lease is
/// live; a repeated start answers `Started` again with the same time; a started run is
/// never started by anyone else.
pub async fn check_start_needs_the_lease(store: &dyn RunStore) {
    const CHECK: &str = "check_start_needs_the_lease";
    let rules = run_rules(2, Overlap::Skip);
    let runs = released(store, "a", "job", &[0, 1], rules, LEASE).await;
    let run = &runs[0];
    assert_eq!(
        start(store, "b", run, LEASE).await,
        StartReply::Refused,
        "{CHECK}: another node's start"
    );
    let stale = Run {
        fence: run.fence - 1,
        ..run.clone()
    };
    assert_eq!(
        start(store, "a", &stale, LEASE).await,
        StartReply::Refused,
        "{CHECK}: a start with an old fence"
    );
    let first = start(store, "a", run, LEASE).await;
    assert!(is_started(&first), "{CHECK}: the holder's start: {first:?}");
    assert_eq!(
        start(store, "a", run, LEASE).await,
        first,
        "{CHECK}: repeated"
    );
    assert_eq!(
        start(store, "b", run, LEASE).await,
        StartReply::Refused,
        "{CHECK}: another node's start of a started run"
    );

    // An expired lease: the holder cannot start any more.
    let short = released(store, "a", "other", &[0], rules, SHORT).await;
    past_short_lease().await;
    assert_eq!(
        start(store, "a", &short[0], LEASE).await,
        StartReply::Refused,
        "{CHECK}: a start after the lease expired"
    );
    assert!(
        row(store, &short[0]).await.state.is_unstarted(),
        "{CHECK}: unstarted"
    );
}

/// A sweep takes a run whose lease expired: an unstarted one with a greater fence (the
/// old holder's writes are refused from then on), a started one becomes `Interrupting`
/// (never unstarted), the sweeper's to record and end `Interrupted`, taken over again
/// if that sweeper stops renewing it; runs with live leases are left alone.
pub async fn check_sweep_takes_expired_runs(store: &dyn RunStore) {
    const CHECK: &str = "check_sweep_takes_expired_runs";
    let rules = run_rules(5, Overlap::Skip);
    let live = released(store, "a", "live", &[0], rules, LEASE).await;
    let runs = released(store, "a", "job", &[0, 1], rules, SHORT).await;
    let started = start(store, "a", &runs[1], SHORT).await;
    assert!(is_started(&started), "{CHECK}: start: {started:?}");
    past_short_lease().await;

    let swept = store.sweep_runs("b", LEASE, 100).await.expect("sweep_runs");
    assert_eq!(swept.taken.len(), 1, "{CHECK}: taken: {:?}", swept.taken);
    let taken = &swept.taken[0];
    assert_eq!(taken.id, runs[0].id, "{CHECK}: the unstarted run is taken");
    assert_eq!(&*taken.holder, "b", "{CHECK}: new holder");
    assert!(taken.fence > runs[1].fence, "{CHECK}: a greater fence");
    assert_eq!(taken.state, RunState::Claimed, "{CHECK}: still claimed");
    assert_eq!(swept.interrupted.len(), 1, "{CHECK}: interrupted");
    assert_eq!(swept.interrupted[0].id, runs[1].id, "{CHECK}: which");
    let interrupting = &swept.interrupted[0];
    assert!(
        matches!(interrupting.state, RunState::Interrupting { .. }),
        "{CHECK}: the started run is being interrupted: {interrupting:?}"
    );
    assert_eq!(
        (&*interrupting.holder, interrupting.fence > runs[1].fence),
        ("b", true),
        "{CHECK}: the sweeper's, with a greater fence"
    );
    assert_eq!(
        row(store, &runs[1]).await,
        *interrupting,
        "{CHECK}: its row"
    );
    assert_eq!(row(store, &live[0]).await, live[0], "{CHECK}: a live run");

    assert_eq!(
        start(store, "a", &runs[0], LEASE).await,
        StartReply::Refused,
        "{CHECK}: the old holder's start"
    );
    let renewed = store
        .renew_runs("a", &[runs[0].held(), runs[1].held()], LEASE)
        .await
        .expect("renew_runs");
    assert_eq!(renewed.lost.len(), 2, "{CHECK}: the old holder's renewal");
    assert_eq!(
        end(store, "a", &runs[1].held(), RunOutcome::Success, None).await,
        EndReply::Refused,
        "{CHECK}: the end of an interrupted run"
    );
    assert!(
        is_started(&start(store, "b", taken, LEASE).await),
        "{CHECK}: the new holder starts it"
    );
    assert_eq!(
        end(store, "b", &interrupting.held(), RunOutcome::Success, None).await,
        EndReply::Refused,
        "{CHECK}: an interrupted run ends only interrupted"
    );
    for _ in 0..2 {
        assert_eq!(
            end(
                store,
                "b",
                &interrupting.held(),
                RunOutcome::Interrupted,
                None
            )
            .await,
            EndReply::Ended(None),
            "{CHECK}: the sweeper ends it interrupted (a repeated end answers the same)"
        );
    }
    assert!(
        matches!(
            row(store, &runs[1]).await.state,
            RunState::Interrupted { .. }
        ),
        "{CHECK}: interrupted"
    );
    let again = store.sweep_runs("c", LEASE, 100).await.expect("sweep_runs");
    assert_eq!(again, Swept::default(), "{CHECK}: a second sweep");
}

/// A sweeper that stops renewing a run it is interrupting has it taken over by the
/// next sweep, to record and end.
pub async fn check_interrupting_is_taken_over(store: &dyn RunStore) {
    const CHECK: &str = "check_interrupting_is_taken_over";
    let runs = released(store, "a", "job", &[0], run_rules(1, Overlap::Skip), LEASE).await;
    assert!(
        is_started(&start(store, "a", &runs[0], SHORT).await),
        "{CHECK}: start"
    );
    past_short_lease().await;
    let first = store.sweep_runs("b", SHORT, 100).await.expect("sweep_runs");
    assert_eq!(first.interrupted.len(), 1, "{CHECK}: the first sweep");
    past_short_lease().await;
    let second = store.sweep_runs("c", LEASE, 100).await.expect("sweep_runs");
    assert_eq!(second.interrupted.len(), 1, "{CHECK}: taken over");
    let run = &second.interrupted[0];
    assert!(
        matches!(run.state, RunState::Interrupting { .. }) && &*run.holder == "c",
        "{CHECK}: {run:?}"
    );
    assert_eq!(
        end(
            store,
            "b",
            &first.interrupted[0].held(),
            RunOutcome::Interrupted,
            None
        )
        .await,
        EndReply::Refused,
        "{CHECK}: the first sweeper's end"
    );
    assert_eq!(
        end(store, "c", &run.held(), RunOutcome::Interrupted, None).await,
        EndReply::Ended(None),
        "{CHECK}: the second's"
    );
    let none = store.sweep_runs("d", LEASE, 100).await.expect("sweep_runs");
    assert_eq!(none.taken.len(), 0, "{CHECK}: no rerun without recover");
}

/// An interrupted run of a `recover` job gets a run again, `Claimed` by the sweeper,
/// with the next rerun number and no grace limit.
pub async fn check_recover_runs_again(store: &dyn RunStore) {
    const CHECK: &str = "check_recover_runs_again";
    let rules = RunRules {
        recover: true,
        grace_until: Some(now() + chrono::Duration::hours(1)),
        ..run_rules(1, Overlap::Skip)
    };
    let runs = released(store, "a", "job", &[0], rules, LEASE).await;
    assert!(
        is_started(&start(store, "a", &runs[0], SHORT).await),
        "{CHECK}: start"
    );
    past_short_lease().await;
    let swept = store.sweep_runs("b", LEASE, 100).await.expect("sweep_runs");
    assert_eq!(swept.interrupted.len(), 1, "{CHECK}: interrupted");
    assert_eq!(swept.taken.len(), 1, "{CHECK}: the run again");
    let rerun = &swept.taken[0];
    assert_eq!(rerun.key, runs[0].key.rerun(), "{CHECK}: key");
    assert_eq!(rerun.origin, RunOrigin::Rerun, "{CHECK}: origin");
    assert_eq!(rerun.rules.grace_until, None, "{CHECK}: no grace limit");
    assert!(
        is_started(&start(store, "b", rerun, LEASE).await),
        "{CHECK}: runs"
    );
}

/// An end needs the holder and the run's current fence; a failed attempt's retry is
/// created in the same step, `Waiting` until its due time and held by the caller, and
/// a repeated end answers the same retry; a run again of the fire time retries apart.
pub async fn check_end_and_retry(store: &dyn RunStore) {
    const CHECK: &str = "check_end_and_retry";
    let runs = released(
        store,
        "a",
        "job",
        &[1, 0],
        run_rules(2, Overlap::Skip),
        LEASE,
    )
    .await;
    assert!(
        is_started(&start(store, "a", &runs[0], LEASE).await),
        "{CHECK}: start"
    );
    let stale = Held {
        fence: runs[0].fence + 100,
        ..runs[0].held()
    };
    let failure = RunOutcome::Failure;
    assert_eq!(
        end(store, "a", &stale, failure, None).await,
        EndReply::Refused,
        "{CHECK}"
    );
    assert_eq!(
        end(store, "b", &runs[0].held(), failure, None).await,
        EndReply::Refused,
        "{CHECK}: another node's end"
    );
    let due = now() + chrono::Duration::hours(1);
    let EndReply::Ended(Some(retry)) = end(store, "a", &runs[0].held(), failure, Some(due)).await
    else {
        panic!("{CHECK}: the end created no retry");
    };
    assert_eq!(retry.key, runs[0].key.retry(), "{CHECK}: retry key");
    assert_eq!(
        retry.state,
        RunState::Waiting { due_at: Some(due) },
        "{CHECK}"
    );
    assert_eq!(
        (&*retry.holder, retry.origin),
        ("a", RunOrigin::Retry),
        "{CHECK}"
    );
    assert!(retry.fence > runs[1].fence, "{CHECK}: a new fence");
    assert_eq!(
        end(store, "a", &runs[0].held(), failure, Some(due)).await,
        EndReply::Ended(Some(retry.clone())),
        "{CHECK}: a repeated end"
    );
    assert_eq!(
        start(store, "a", &retry, LEASE).await,
        StartReply::Waiting { due_at: Some(due) },
        "{CHECK}: a retry before its time"
    );
    assert!(
        matches!(
            row(store, &runs[0]).await.state,
            RunState::Ended {
                outcome: RunOutcome::Failure,
                ..
            }
        ),
        "{CHECK}: the failed attempt's row"
    );
    // A run that never started can be ended by its holder too (an unknown task).
    let EndReply::Ended(None) = end(store, "a", &runs[1].held(), RunOutcome::Error, None).await
    else {
        panic!("{CHECK}: the end of a claimed run");
    };
    // The failed fire time run again (a backfill's rerun) gets a retry of its own.
    let again = NewRun {
        key: runs[0].key.rerun(),
        origin: RunOrigin::Backfill,
        ..claimed_run("job", runs[0].key.fire_time, run_rules(2, Overlap::Skip))
    };
    let made = store
        .insert_runs("a", vec![again], LEASE)
        .await
        .expect("insert_runs");
    assert_eq!(made.len(), 1, "{CHECK}: the run again");
    assert!(
        is_started(&start(store, "a", &made[0], LEASE).await),
        "{CHECK}: the run again's start"
    );
    let EndReply::Ended(Some(its_retry)) =
        end(store, "a", &made[0].held(), failure, Some(due)).await
    else {
        panic!("{CHECK}: the run again's end created no retry");
    };
    assert_eq!(its_retry.key, made[0].key.retry(), "{CHECK}: its retry key");
    assert_ne!(its_retry.key, retry.key, "{CHECK}: two retries, one key");
}

/// A job released as removed while it has a live run stays (paused) until the step
/// that ends its last live run, which removes it.
pub async fn check_finished_job_waits_for_its_runs(store: &dyn RunStore) {
    const CHECK: &str = "check_finished_job_waits_for_its_runs";
    let runs = released(store, "a", "job", &[0], run_rules(1, Overlap::Skip), LEASE).await;
    assert!(
        is_started(&start(store, "a", &runs[0], LEASE).await),
        "{CHECK}: start"
    );
    // The job's last fire time comes, is claimed, and its trigger is exhausted.
    let due = now();
    let job = Job {
        next_run_time: Some(due.with_timezone(&Tz::UTC)),
        ..lookup(store, "job").await
    };
    store.update_job(job).await.expect("update_job");
    assert_eq!(
        ids(&claim_for(store, "a", due, 10, LEASE).await),
        ["job"],
        "{CHECK}"
    );
    let released = store
        .release_with_runs("a", vec![(JobRelease::Remove("job".into()), vec![])], LEASE)
        .await
        .expect("release_with_runs");
    assert!(released.jobs.is_complete(), "{CHECK}: the removal applied");
    let kept = store.lookup_job("job").await.expect("lookup_job");
    assert!(kept.is_some_and(|j| j.is_paused()), "{CHECK}: kept, paused");
    end(store, "a", &runs[0].held(), RunOutcome::Success, None).await;
    assert!(
        store.lookup_job("job").await.expect("lookup_job").is_none(),
        "{CHECK}: removed with its last run's end"
    );
}

/// A run started by hand is created for an existing job, once per key; none for a job
/// that does not exist.
pub async fn check_insert_runs(store: &dyn RunStore) {
    const CHECK: &str = "check_insert_runs";
    add(store, sample_job("job", None, interval_trigger(60))).await;
    let now = now();
    let new = NewRun {
        origin: RunOrigin::RunNow,
        ..claimed_run("job", now, run_rules(1, Overlap::Skip))
    };
    let missing = NewRun {
        key: RunKey::first("missing", now),
        ..new.clone()
    };
    let made = store
        .insert_runs("a", vec![new.clone(), missing], LEASE)
        .await
        .expect("insert_runs");
    assert_eq!(made.len(), 1, "{CHECK}: {made:?}");
    assert_eq!(made[0].origin, RunOrigin::RunNow, "{CHECK}: origin");
    let again = store
        .insert_runs("b", vec![new], LEASE)
        .await
        .expect("insert_runs");
    assert!(again.is_empty(), "{CHECK}: a second run with the same key");
    assert!(
        is_started(&start(store, "a", &made[0], LEASE).await),
        "{CHECK}: runs"
    );
}

/// Fences only grow per job: each created run and each takeover gets a greater one.
pub async fn check_fences_grow(store: &dyn RunStore) {
    const CHECK: &str = "check_fences_grow";
    let runs = released(
        store,
        "a",
        "job",
        &[2, 1, 0],
        run_rules(3, Overlap::Skip),
        SHORT,
    )
    .await;
    assert!(
        runs.windows(2).all(|w| w[0].fence < w[1].fence),
        "{CHECK}: {runs:?}"
    );
    past_short_lease().await;
    let swept = store.sweep_runs("b", LEASE, 100).await.expect("sweep_runs");
    let mut fences: Vec<u64> = swept.taken.iter().map(|r| r.fence).collect();
    fences.sort_unstable();
    fences.dedup();
    assert_eq!(fences.len(), 3, "{CHECK}: one fence each: {fences:?}");
    assert!(
        fences[0] > runs[2].fence,
        "{CHECK}: greater than any before"
    );
}

/// Concurrent sweepers never take the same run.
pub async fn check_concurrent_sweepers(store: Arc<dyn RunStore>) {
    const CHECK: &str = "check_concurrent_sweepers";
    let fires: Vec<i64> = (0..20).collect();
    released(
        &*store,
        "a",
        "job",
        &fires,
        run_rules(1, Overlap::Skip),
        SHORT,
    )
    .await;
    past_short_lease().await;
    let sweepers: Vec<_> = ["b", "c", "d"]
        .into_iter()
        .map(|name| {
            let store = store.clone();
            tokio::spawn(async move { store.sweep_runs(name, LEASE, 100).await })
        })
        .collect();
    let mut taken = Vec::new();
    for sweeper in sweepers {
        let swept = sweeper.await.expect("sweeper task").expect("sweep_runs");
        taken.extend(swept.taken.into_iter().map(|r| r.id));
    }
    taken.sort();
    let all = taken.len();
    taken.dedup();
    assert_eq!((all, taken.len()), (20, 20), "{CHECK}: each run taken once");
}

/// Runs every run check, each against a fresh store from `make`.
///
/// # Panics
/// On the first check that fails.
pub async fn run_runs<S, F, Fut>(make: F)
where
    S: RunStore + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    macro_rules! run {
        ($($check:ident),* $(,)?) => {$(
            let store = make().await;
            store.start("default").await.expect("start the store");
            $check(&store).await;
            store.shutdown().await.expect(concat!(stringify!($check), ": shutdown"));
        )*};
    }
    run!(
        check_release_creates_runs,
        check_keys_are_unique,
        check_start_needs_the_lease,
        check_sweep_takes_expired_runs,
        check_interrupting_is_taken_over,
        check_recover_runs_again,
        check_grace,
        check_takeover_grace,
        check_max_instances,
        check_batches,
        check_buffered_runs,
        check_stop_requests,
        check_end_and_retry,
        check_unrecorded_end,
        check_ending_is_taken_over,
        check_finished_job_waits_for_its_runs,
        check_insert_runs,
        check_fences_grow,
        check_end_and_release,
        check_end_release_and_start,
    );
    let store = make().await;
    store.start("default").await.expect("start the store");
    let store: Arc<dyn RunStore> = Arc::new(store);
    check_concurrent_sweepers(store.clone()).await;
    store
        .shutdown()
        .await
        .expect("check_concurrent_sweepers: shutdown");
}

//! The start's decisions: the grace time, `max_instances`, buffered fire times and
//! the stop requests of `cancel_other`.

use super::*;

/// A `Claimed` run started after its `grace_until` is answered missed and becomes
/// `Missing`, live until its holder (which recorded the miss) ends it `Missed`; a
/// repeated start answers the same; a holder that stops renewing a `Missing` run has it
/// taken over by a sweep, to record and end. A retry's `Waiting` run has no grace limit.
pub async fn check_grace(store: &dyn RunStore) {
    const CHECK: &str = "check_grace";
    let late = RunRules {
        grace_until: Some(now() - chrono::Duration::seconds(1)),
        ..run_rules(1, Overlap::Skip)
    };
    let runs = released(store, "a", "job", &[1, 0], late, LEASE).await;
    assert_eq!(
        start(store, "a", &runs[0], LEASE).await,
        StartReply::Ended {
            outcome: RunOutcome::Missed,
            reason: MISSED_LATE.to_owned()
        },
        "{CHECK}: a late start"
    );
    let missing = |run: &Run| matches!(run.state, RunState::Missing { .. });
    assert!(missing(&row(store, &runs[0]).await), "{CHECK}: the row");
    // A repeated start (the first answer lost) answers `Ended` again.
    let repeated = start(store, "a", &runs[0], LEASE).await;
    assert!(
        matches!(
            repeated,
            StartReply::Ended {
                outcome: RunOutcome::Missed,
                ..
            }
        ),
        "{CHECK}: a repeated start: {repeated:?}"
    );
    assert_eq!(
        end(store, "a", &runs[0].held(), RunOutcome::Success, None).await,
        EndReply::Refused,
        "{CHECK}: a missed run ended with another outcome"
    );
    assert_eq!(
        end(store, "a", &runs[0].held(), RunOutcome::Missed, None).await,
        EndReply::Ended(None),
        "{CHECK}: the holder's end"
    );
    let ended = row(store, &runs[0]).await;
    assert!(
        matches!(
            ended.state,
            RunState::Ended {
                outcome: RunOutcome::Missed,
                ..
            }
        ),
        "{CHECK}: ended: {ended:?}"
    );
    // The second run's holder stops renewing once its start found it missed.
    assert!(
        matches!(
            start(store, "a", &runs[1], SHORT).await,
            StartReply::Ended { .. }
        ),
        "{CHECK}: the second run's start"
    );
    past_short_lease().await;
    let swept = store.sweep_runs("b", LEASE, 100).await.expect("sweep_runs");
    assert!(
        swept.taken.is_empty() && swept.interrupted.is_empty(),
        "{CHECK}: a missed run is neither run nor interrupted: {swept:?}"
    );
    let [taken] = swept.missed.as_slice() else {
        panic!("{CHECK}: the sweep takes the missed run over: {swept:?}");
    };
    assert!(
        missing(taken) && &*taken.holder == "b" && taken.fence > runs[1].fence,
        "{CHECK}: taken over: {taken:?}"
    );
    assert_eq!(
        end(store, "a", &runs[1].held(), RunOutcome::Missed, None).await,
        EndReply::Refused,
        "{CHECK}: the old holder's end"
    );
    assert_eq!(
        end(store, "b", &taken.held(), RunOutcome::Missed, None).await,
        EndReply::Ended(None),
        "{CHECK}: the sweeper's end"
    );
    let none = store.sweep_runs("c", LEASE, 100).await.expect("sweep_runs");
    assert_eq!(none, Swept::default(), "{CHECK}: nothing left to sweep");
}

/// `max_instances` counts `Started` runs with a live lease only: at the limit a `skip`
/// job's run ends skipped; once the started run's lease expired, it no longer counts.
pub async fn check_max_instances(store: &dyn RunStore) {
    const CHECK: &str = "check_max_instances";
    let runs = released(
        store,
        "a",
        "job",
        &[2, 1, 0],
        run_rules(1, Overlap::Skip),
        LEASE,
    )
    .await;
    assert!(
        is_started(&start(store, "a", &runs[0], SHORT).await),
        "{CHECK}: first"
    );
    assert_eq!(
        start(store, "a", &runs[1], LEASE).await,
        StartReply::Ended {
            outcome: RunOutcome::Missed,
            reason: SKIPPED_AT_MAX.to_owned()
        },
        "{CHECK}: at max_instances"
    );
    past_short_lease().await;
    assert!(
        is_started(&start(store, "a", &runs[2], LEASE).await),
        "{CHECK}: a started run with an expired lease counted"
    );
}

/// `buffer_one`: at the limit one run waits (answered `Waiting` again while the job is
/// at the limit), a third is skipped, and the waiting one starts once the first ends.
/// `buffer_all`: every run waits and they start in fire-time order.
pub async fn check_buffered_runs(store: &dyn RunStore) {
    const CHECK: &str = "check_buffered_runs";
    let buffered = StartReply::Waiting { due_at: None };
    let runs = released(
        store,
        "a",
        "one",
        &[3, 2, 1, 0],
        run_rules(1, Overlap::BufferOne),
        LEASE,
    )
    .await;
    assert!(
        is_started(&start(store, "a", &runs[0], LEASE).await),
        "{CHECK}: first"
    );
    assert_eq!(
        start(store, "a", &runs[1], LEASE).await,
        buffered,
        "{CHECK}: buffered"
    );
    assert!(
        matches!(
            start(store, "a", &runs[2], LEASE).await,
            StartReply::Ended { .. }
        ),
        "{CHECK}: a second buffered run is skipped"
    );
    assert_eq!(
        start(store, "a", &runs[1], LEASE).await,
        buffered,
        "{CHECK}: still"
    );
    end(store, "a", &runs[0].held(), RunOutcome::Success, None).await;
    // A later fire time does not start ahead of the buffered one (another scheduler's,
    // which learns of the room at its next pass): it is skipped.
    assert_eq!(
        start(store, "a", &runs[3], LEASE).await,
        StartReply::Ended {
            outcome: RunOutcome::Missed,
            reason: SKIPPED_BEHIND_BUFFERED.to_owned()
        },
        "{CHECK}: a later fire time while one is buffered"
    );
    assert!(
        is_started(&start(store, "a", &runs[1], LEASE).await),
        "{CHECK}: after"
    );

    let all = released(
        store,
        "a",
        "all",
        &[3, 2, 1],
        run_rules(1, Overlap::BufferAll),
        LEASE,
    )
    .await;
    assert!(
        is_started(&start(store, "a", &all[0], LEASE).await),
        "{CHECK}: all first"
    );
    assert_eq!(
        start(store, "a", &all[1], LEASE).await,
        buffered,
        "{CHECK}: all 2"
    );
    assert_eq!(
        start(store, "a", &all[2], LEASE).await,
        buffered,
        "{CHECK}: all 3"
    );
    end(store, "a", &all[0].held(), RunOutcome::Success, None).await;
    assert_eq!(
        start(store, "a", &all[2], LEASE).await,
        buffered,
        "{CHECK}: a later buffered run started before an older one"
    );
    assert!(
        is_started(&start(store, "a", &all[1], LEASE).await),
        "{CHECK}: in order"
    );
}

/// At the limit, a `cancel_other` job's run waits and asks the started runs to stop:
/// their holders see [`Run::stop_requested`] at their next renewal.
pub async fn check_stop_requests(store: &dyn RunStore) {
    const CHECK: &str = "check_stop_requests";
    let runs = released(
        store,
        "a",
        "job",
        &[1, 0],
        run_rules(1, Overlap::CancelOther),
        LEASE,
    )
    .await;
    assert!(
        is_started(&start(store, "a", &runs[0], LEASE).await),
        "{CHECK}: first"
    );
    let renewed = store
        .renew_runs("a", &[runs[0].held()], LEASE)
        .await
        .expect("renew_runs");
    assert!(
        !renewed.held[0].stop_requested,
        "{CHECK}: nothing asked yet"
    );
    assert_eq!(
        start(store, "a", &runs[1], LEASE).await,
        StartReply::Waiting { due_at: None },
        "{CHECK}: the newer run waits"
    );
    let renewed = store
        .renew_runs("a", &[runs[0].held()], LEASE)
        .await
        .expect("renew_runs");
    assert!(renewed.held[0].stop_requested, "{CHECK}: asked to stop");
}

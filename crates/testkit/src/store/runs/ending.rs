//! An end sent before its record ([`RunEnd::recorded`] false): the run is `Ending`,
//! live and no longer an instance of its job, until the end with its record written.

use super::*;

/// An end without `recorded` leaves the run `Ending`: it is renewed, it no longer
/// counts toward `max_instances`, its retry is created once, a repeated end answers
/// the same, and the recorded end (same outcome) ends it.
pub async fn check_unrecorded_end(store: &dyn RunStore) {
    const CHECK: &str = "check_unrecorded_end";
    let runs = released(
        store,
        "a",
        "job",
        &[2, 1],
        run_rules(1, Overlap::Skip),
        LEASE,
    )
    .await;
    assert!(
        is_started(&start(store, "a", &runs[0], LEASE).await),
        "{CHECK}: the first start"
    );
    let retry_at = now() + chrono::Duration::hours(1);
    let early = |outcome, recorded| RunEnd {
        run: runs[0].held(),
        outcome,
        retry_at: Some(retry_at),
        recorded,
    };
    let mut replies = store
        .end_runs("a", vec![early(RunOutcome::Failure, false)], LEASE)
        .await
        .expect("end_runs");
    let Some(EndReply::Ended(Some(retry))) = replies.pop() else {
        panic!("{CHECK}: the early end answers its retry: {replies:?}");
    };
    assert!(
        matches!(
            row(store, &runs[0]).await.state,
            RunState::Ending {
                outcome: RunOutcome::Failure,
                ..
            }
        ),
        "{CHECK}: ending"
    );
    assert!(
        is_started(&start(store, "a", &runs[1], LEASE).await),
        "{CHECK}: an ending run is not an instance of its job"
    );
    let again = store
        .end_runs("a", vec![early(RunOutcome::Failure, false)], LEASE)
        .await
        .expect("end_runs");
    assert_eq!(
        again,
        vec![EndReply::Ended(Some(retry.clone()))],
        "{CHECK}: a repeated early end"
    );
    let renewed = store
        .renew_runs("a", &[runs[0].held()], LEASE)
        .await
        .expect("renew_runs");
    assert_eq!(renewed.held.len(), 1, "{CHECK}: renewed: {renewed:?}");
    let other = store
        .end_runs("a", vec![early(RunOutcome::Success, true)], LEASE)
        .await
        .expect("end_runs");
    assert_eq!(
        other,
        vec![EndReply::Refused],
        "{CHECK}: an end with another outcome"
    );
    let recorded = store
        .end_runs("a", vec![early(RunOutcome::Failure, true)], LEASE)
        .await
        .expect("end_runs");
    assert_eq!(
        recorded,
        vec![EndReply::Ended(Some(retry))],
        "{CHECK}: the recorded end"
    );
    assert!(
        matches!(
            row(store, &runs[0]).await.state,
            RunState::Ended {
                outcome: RunOutcome::Failure,
                ..
            }
        ),
        "{CHECK}: ended"
    );
}

/// A holder that stops renewing an `Ending` run has it taken over by a sweep, which
/// reports its former holder; only the sweeper ends it then.
pub async fn check_ending_is_taken_over(store: &dyn RunStore) {
    const CHECK: &str = "check_ending_is_taken_over";
    let runs = released(store, "a", "job", &[0], run_rules(1, Overlap::Skip), LEASE).await;
    assert!(
        is_started(&start(store, "a", &runs[0], LEASE).await),
        "{CHECK}: start"
    );
    let end = |holder: &Run, recorded| RunEnd {
        run: holder.held(),
        outcome: RunOutcome::Success,
        retry_at: None,
        recorded,
    };
    let replies = store
        .end_runs("a", vec![end(&runs[0], false)], SHORT)
        .await
        .expect("end_runs");
    assert_eq!(
        replies,
        vec![EndReply::Ended(None)],
        "{CHECK}: the early end"
    );
    past_short_lease().await;
    let swept = store.sweep_runs("b", LEASE, 100).await.expect("sweep_runs");
    let [taken] = swept.ending.as_slice() else {
        panic!("{CHECK}: one ending run taken over: {swept:?}");
    };
    assert!(
        &*taken.holder == "b"
            && taken.fence > runs[0].fence
            && matches!(taken.state, RunState::Ending { .. }),
        "{CHECK}: {taken:?}"
    );
    assert!(
        swept.taken.is_empty() && swept.interrupted.is_empty(),
        "{CHECK}: not run again, not interrupted: {swept:?}"
    );
    assert_eq!(
        swept.interrupted_from.get(&taken.key).map(|h| &**h),
        Some("a"),
        "{CHECK}: its former holder"
    );
    let late = store
        .end_runs("a", vec![end(&runs[0], true)], LEASE)
        .await
        .expect("end_runs");
    assert_eq!(
        late,
        vec![EndReply::Refused],
        "{CHECK}: the old holder's end"
    );
    let by_sweeper = store
        .end_runs("b", vec![end(taken, true)], LEASE)
        .await
        .expect("end_runs");
    assert_eq!(
        by_sweeper,
        vec![EndReply::Ended(None)],
        "{CHECK}: the sweeper's"
    );
    assert!(
        matches!(
            row(store, &runs[0]).await.state,
            RunState::Ended {
                outcome: RunOutcome::Success,
                ..
            }
        ),
        "{CHECK}: ended"
    );
}

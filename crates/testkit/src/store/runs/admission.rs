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
/// `buffer_all`: every run waits and they start in fire-time order. A `skip` fire
/// time does not start ahead of a buffered run of its job (a backfill's).
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

    let (skip, all) = (
        run_rules(1, Overlap::Skip),
        run_rules(1, Overlap::BufferAll),
    );
    let mixed = runs_of(store, "mixed", &[(3, skip), (2, all), (1, skip)]).await;
    assert!(
        is_started(&start(store, "a", &mixed[0], LEASE).await),
        "{CHECK}: mixed first"
    );
    assert_eq!(
        start(store, "a", &mixed[1], LEASE).await,
        buffered,
        "{CHECK}: a backfill's run at the limit"
    );
    end(store, "a", &mixed[0].held(), RunOutcome::Success, None).await;
    assert_eq!(
        start(store, "a", &mixed[2], LEASE).await,
        StartReply::Ended {
            outcome: RunOutcome::Missed,
            reason: SKIPPED_BEHIND_BUFFERED.to_owned()
        },
        "{CHECK}: a skip fire time while a backfill's run is buffered"
    );
    assert!(
        is_started(&start(store, "a", &mixed[1], LEASE).await),
        "{CHECK}: the buffered run after"
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

/// Adds job `id` (unscheduled) and creates its runs: one per `(seconds before now,
/// rules)`, `Claimed` and leased to `a`.
async fn runs_of(store: &dyn RunStore, id: &str, fires: &[(i64, RunRules)]) -> Vec<Run> {
    add(store, sample_job(id, None, interval_trigger(60))).await;
    let new = fires
        .iter()
        .map(|(s, rules)| {
            let fire = (now() - chrono::Duration::seconds(*s)).trunc_subsecs(6);
            claimed_run(id, fire, *rules)
        })
        .collect();
    let made = store
        .insert_runs("a", new, LEASE)
        .await
        .expect("insert_runs");
    assert_eq!(made.len(), fires.len(), "runs of {id}: {made:?}");
    made
}

async fn start_all(store: &dyn RunStore, runs: &[Run]) -> Vec<StartReply> {
    let held: Vec<Held> = runs.iter().map(Run::held).collect();
    store
        .start_runs("a", &held, now(), LEASE)
        .await
        .expect("start_runs")
}

/// A batch ([`RunRules::batch`]: the fire times one release of a job with `coalesce`
/// off runs in one instance, in turn): a start call that starts one of its runs starts
/// the others it is asked for, past `max_instances`, and a batch's started runs count
/// as one instance; a run of it past its grace is still missed (and the next one
/// starts the batch); a run of it asked in a later call is judged on its own.
pub async fn check_batches(store: &dyn RunStore) {
    const CHECK: &str = "check_batches";
    let batch = |id: i64, max: u32| RunRules {
        batch: DateTime::from_timestamp(1_700_000_000 + id, 0),
        ..run_rules(max, Overlap::Skip)
    };
    let started = |reply: &StartReply| matches!(reply, StartReply::Started { .. });
    let skipped = StartReply::Ended {
        outcome: RunOutcome::Missed,
        reason: SKIPPED_AT_MAX.to_owned(),
    };

    // Three fire times in one call, `max_instances` 2: one instance.
    let three = runs_of(
        store,
        "batch",
        &[(5, batch(1, 2)), (4, batch(1, 2)), (3, batch(1, 2))],
    )
    .await;
    let replies = start_all(store, &three).await;
    assert!(
        replies.iter().all(started),
        "{CHECK}: a batch's start: {replies:?}"
    );
    // A repeated start (its answer lost) answers the same.
    let again = start_all(store, &three[2..]).await;
    assert!(started(&again[0]), "{CHECK}: a repeated start: {again:?}");
    let single = |s: i64| {
        claimed_run(
            "batch",
            (now() - chrono::Duration::seconds(s)).trunc_subsecs(6),
            run_rules(2, Overlap::Skip),
        )
    };
    let next = store
        .insert_runs("a", vec![single(2), single(1)], LEASE)
        .await
        .expect("insert_runs");
    let replies = start_all(store, &next[..1]).await;
    assert!(
        started(&replies[0]),
        "{CHECK}: a second instance beside the batch: {replies:?}"
    );
    assert_eq!(
        start_all(store, &next[1..]).await,
        vec![skipped.clone()],
        "{CHECK}: a third instance"
    );

    // One run of a batch per call: the second is another instance, at max.
    let apart = runs_of(store, "apart", &[(5, batch(2, 1)), (4, batch(2, 1))]).await;
    assert!(
        started(&start_all(store, &apart[..1]).await[0]),
        "{CHECK}: apart, the first"
    );
    assert_eq!(
        start_all(store, &apart[1..]).await,
        vec![skipped],
        "{CHECK}: apart, the second"
    );

    // The first past its grace: missed; the next starts the batch, the last joins it.
    let late = RunRules {
        grace_until: Some(now() - chrono::Duration::seconds(1)),
        ..batch(3, 1)
    };
    let graced = runs_of(
        store,
        "graced",
        &[(5, late), (4, batch(3, 1)), (3, batch(3, 1))],
    )
    .await;
    let replies = start_all(store, &graced).await;
    assert_eq!(
        replies[0],
        StartReply::Ended {
            outcome: RunOutcome::Missed,
            reason: MISSED_LATE.to_owned()
        },
        "{CHECK}: the late one"
    );
    assert!(
        started(&replies[1]) && started(&replies[2]),
        "{CHECK}: the others: {replies:?}"
    );
}

/// A `Claimed` run a sweep takes over has its grace time again, counted from the
/// takeover: the fire time of a holder that died after claiming it starts on the
/// sweeper, though its grace ran out while the dead holder's lease lasted.
pub async fn check_takeover_grace(store: &dyn RunStore) {
    const CHECK: &str = "check_takeover_grace";
    // Its grace ends before its holder's short lease does.
    let rules = RunRules {
        grace_until: Some(now() + chrono::Duration::milliseconds(100)),
        ..run_rules(1, Overlap::Skip)
    };
    let runs = released(store, "a", "job", &[60], rules, SHORT).await;
    let grace = rules.grace_until.expect("a grace") - runs[0].key.fire_time;
    past_short_lease().await;
    let before = now();
    let swept = store.sweep_runs("b", LEASE, 100).await.expect("sweep_runs");
    let [taken] = swept.taken.as_slice() else {
        panic!("{CHECK}: the sweep takes the claimed run: {swept:?}");
    };
    assert!(
        taken.rules.grace_until.is_some_and(|g| g >= before + grace),
        "{CHECK}: its grace ({grace}) counts from the takeover ({before}): {taken:?}"
    );
    assert_eq!(
        row(store, taken).await.rules,
        taken.rules,
        "{CHECK}: its row"
    );
    let reply = start(store, "b", taken, LEASE).await;
    assert!(
        is_started(&reply),
        "{CHECK}: the sweeper starts it past its first grace: {reply:?}"
    );
}

//! [`RunStore::end_and_release`]: a pass's ends and releases in one step.

use super::*;

/// One step ends the runs it names (with their retries) and releases the jobs the
/// caller holds with their new runs, as the two operations would one after the other;
/// a job the caller does not hold is lost, with no run. The runs created start as
/// [`RunStore::start_runs`] starts them. With
/// a dozen jobs, so that a store that splits a step by partition (Redis Cluster) has
/// several parts to answer for.
pub async fn check_end_and_release(store: &dyn RunStore) {
    const CHECK: &str = "check_end_and_release";
    const JOBS: usize = 12;
    let first = released(store, "a", "one", &[0], run_rules(1, Overlap::Skip), LEASE).await;
    assert!(
        is_started(&start(store, "a", &first[0], LEASE).await),
        "{CHECK}: start"
    );
    let due = now() - chrono::Duration::seconds(1);
    // `four` is claimed by `a` and kept: another caller's release of it is lost.
    let four = sample_job(
        "four",
        Some(due.with_timezone(&Tz::UTC)),
        interval_trigger(60),
    );
    add(store, four.clone()).await;
    for i in 0..JOBS {
        let job = sample_job(
            &format!("many-{i}"),
            Some(due.with_timezone(&Tz::UTC)),
            interval_trigger(60),
        );
        add(store, job).await;
    }
    let claimed = claim_for(store, "a", now(), 100, LEASE).await;
    assert!(
        claimed.iter().any(|j| &*j.id == "four"),
        "{CHECK}: the claim of four"
    );
    let mut claimed: Vec<Job> = claimed
        .into_iter()
        .filter(|j| &*j.id != "one" && &*j.id != "four")
        .collect();
    claimed.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(claimed.len(), JOBS, "{CHECK}: the claim");
    let retry_at = now() + chrono::Duration::hours(1);
    let ends = vec![RunEnd {
        run: first[0].held(),
        outcome: RunOutcome::Failure,
        retry_at: Some(retry_at),
        recorded: true,
    }];
    let releases = claimed
        .into_iter()
        .map(|job| {
            let run = claimed_run(&job.id, due, run_rules(1, Overlap::Skip));
            let paused = Job {
                next_run_time: None,
                ..job
            };
            (JobRelease::Update(paused), vec![run])
        })
        .collect();
    let step = store
        .end_and_release("a", ends, releases, LEASE)
        .await
        .expect("end_and_release");
    let [EndReply::Ended(Some(retry))] = &step.ended[..] else {
        panic!("{CHECK}: the end and its retry: {:?}", step.ended);
    };
    assert_eq!(
        retry.state,
        RunState::Waiting {
            due_at: Some(retry_at)
        },
        "{CHECK}: the retry"
    );
    assert!(step.released.jobs.is_complete(), "{CHECK}: the releases");
    assert_eq!(step.released.runs.len(), JOBS, "{CHECK}: the runs created");
    for run in &step.released.runs {
        assert_eq!(run.state, RunState::Claimed, "{CHECK}: {} created", run.id);
    }
    // The released jobs are no longer the caller's: a job due now is claimed at once,
    // even by a claim of fewer jobs than were released.
    let late = sample_job(
        "late",
        Some(due.with_timezone(&Tz::UTC)),
        interval_trigger(60),
    );
    add(store, late).await;
    let claimed = claim_for(store, "a", now(), 3, LEASE).await;
    assert!(
        claimed.iter().any(|j| &*j.id == "late"),
        "{CHECK}: a job added after the release, claimed: {:?}",
        claimed.iter().map(|j| &j.id).collect::<Vec<_>>()
    );
    // Started in one step, every part answering for its runs.
    let handles: Vec<Held> = step.released.runs.iter().map(Run::held).collect();
    let replies = store
        .start_runs("a", &handles, now(), LEASE)
        .await
        .expect("start_runs");
    assert_eq!(replies.len(), JOBS, "{CHECK}: one start per run created");
    for (run, reply) in step.released.runs.iter().zip(&replies) {
        assert!(
            is_started(reply),
            "{CHECK}: {} not started: {reply:?}",
            run.id
        );
        assert!(
            matches!(row(store, run).await.state, RunState::Started { .. }),
            "{CHECK}: {} is started in the store",
            run.id
        );
    }
    // Renewed and ended in one step each, every part answering for its runs.
    let renewed = store
        .renew_runs("a", &handles, LEASE)
        .await
        .expect("renew_runs");
    assert_eq!(
        (renewed.held.len(), renewed.lost.len()),
        (JOBS, 0),
        "{CHECK}: renewals"
    );
    let ends = handles
        .iter()
        .map(|h| RunEnd {
            run: h.clone(),
            outcome: RunOutcome::Success,
            retry_at: None,
            recorded: true,
        })
        .collect();
    let replies = store.end_runs("a", ends, LEASE).await.expect("end_runs");
    assert!(
        replies.iter().all(|r| *r == EndReply::Ended(None)),
        "{CHECK}: ends: {replies:?}"
    );
    assert!(
        matches!(
            row(store, &first[0]).await.state,
            RunState::Ended {
                outcome: RunOutcome::Failure,
                ..
            }
        ),
        "{CHECK}: the ended run's row"
    );
    // A job the caller does not hold: lost, no run; its end and start are refused.
    let job = four;
    let stale = RunEnd {
        run: first[0].held(),
        outcome: RunOutcome::Success,
        retry_at: None,
        recorded: true,
    };
    let run = claimed_run("four", due, run_rules(1, Overlap::Skip));
    let step = store
        .end_and_release(
            "b",
            vec![stale],
            vec![(JobRelease::Update(job), vec![run])],
            LEASE,
        )
        .await
        .expect("end_and_release");
    assert_eq!(step.ended, [EndReply::Refused], "{CHECK}: another's end");
    assert!(
        !step.released.jobs.is_complete() && step.released.runs.is_empty(),
        "{CHECK}: another's release"
    );
}

/// [`RunStore::end_release_and_start`]: the runs a pass's step created are started in
/// a second step that sees the first's writes: a job whose run the first step ended
/// starts its new run, a job whose run is still started (at `max_instances` 1, `skip`)
/// has its new run missed; a release the caller does not hold creates and starts
/// nothing.
pub async fn check_end_release_and_start(store: &dyn RunStore) {
    const CHECK: &str = "check_end_release_and_start";
    let due = now() - chrono::Duration::seconds(1);
    let jobs: Vec<Job> = ["ers-0", "ers-1"]
        .iter()
        .map(|id| sample_job(id, Some(due.with_timezone(&Tz::UTC)), interval_trigger(60)))
        .collect();
    for job in &jobs {
        add(store, job.clone()).await;
    }
    // Released still due, so that the caller claims them again below.
    let pass = |fire: DateTime<Utc>| {
        jobs.iter()
            .map(|job| {
                let run = claimed_run(&job.id, fire, run_rules(1, Overlap::Skip));
                (JobRelease::Update(job.clone()), vec![run])
            })
            .collect::<Vec<_>>()
    };
    let claimed = claim_for(store, "a", now(), 100, LEASE).await;
    assert!(
        jobs.iter().all(|j| claimed.iter().any(|c| c.id == j.id)),
        "{CHECK}: the claim"
    );
    let both = store
        .end_release_and_start("a", Vec::new(), pass(due), now(), LEASE)
        .await
        .expect("end_release_and_start");
    let first = both.step.released.runs;
    let starts = both.starts.expect("the starts");
    assert_eq!((first.len(), starts.len()), (2, 2), "{CHECK}: {starts:?}");
    for (run, reply) in first.iter().zip(&starts) {
        assert!(
            is_started(reply),
            "{CHECK}: {} not started: {reply:?}",
            run.id
        );
        assert!(
            matches!(row(store, run).await.state, RunState::Started { .. }),
            "{CHECK}: {} is started in the store",
            run.id
        );
    }

    // The first job's run ends in the same call as its next release.
    let claimed = claim_for(store, "a", now(), 100, LEASE).await;
    assert!(
        jobs.iter().all(|j| claimed.iter().any(|c| c.id == j.id)),
        "{CHECK}: the second claim"
    );
    let end = RunEnd {
        run: first[0].held(),
        outcome: RunOutcome::Success,
        retry_at: None,
        recorded: true,
    };
    let later = due + chrono::Duration::milliseconds(500);
    let both = store
        .end_release_and_start("a", vec![end], pass(later), now(), LEASE)
        .await
        .expect("end_release_and_start");
    assert_eq!(both.step.ended, [EndReply::Ended(None)], "{CHECK}: the end");
    let runs = &both.step.released.runs;
    let starts = both.starts.expect("the starts");
    assert_eq!(runs.len(), 2, "{CHECK}: the runs created");
    for (run, reply) in runs.iter().zip(&starts) {
        if run.key.job_id == first[0].key.job_id {
            assert!(
                is_started(reply),
                "{CHECK}: {} (its job's run ended first) not started: {reply:?}",
                run.id
            );
        } else {
            assert!(
                matches!(
                    reply,
                    StartReply::Ended {
                        outcome: RunOutcome::Missed,
                        ..
                    }
                ),
                "{CHECK}: {} (its job at max_instances) answered {reply:?}",
                run.id
            );
        }
    }

    // Not the caller's claim: lost, nothing created or started.
    let both = store
        .end_release_and_start(
            "b",
            Vec::new(),
            pass(later + chrono::Duration::seconds(1)),
            now(),
            LEASE,
        )
        .await
        .expect("end_release_and_start");
    assert!(
        !both.step.released.jobs.is_complete() && both.step.released.runs.is_empty(),
        "{CHECK}: another's release"
    );
    assert_eq!(
        both.starts.expect("the starts"),
        [],
        "{CHECK}: another's starts"
    );
}

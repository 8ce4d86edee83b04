//! Leases: claims, expiry, releases, extensions.

use super::helpers::*;
use super::*;

/// A claimed job is not returned again, to the same or another scheduler, until it is
/// released, and `get_next_run_time` does not report its run time while the lease is
/// held; jobs added after the claim are claimable; claimed jobs can still be looked up.
///
/// On a store with [`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)
/// a leased job counts at the later of its run time and its lease's end on the store's
/// clock: the run times here (in 2100) are later than any lease taken today, so
/// `get_next_run_time` shows the claimed jobs' run times there.
pub async fn check_claimed_job_not_returned(store: &dyn JobStore) {
    const CHECK: &str = "check_claimed_job_not_returned";
    assert_empty(store, CHECK).await;
    let leased_shown = store.capabilities().store_clock;
    add(store, sample_job("a", Some(at(0)), interval_trigger(60))).await;
    add(store, sample_job("b", Some(at(1)), interval_trigger(60))).await;
    add(store, sample_job("d", Some(at(20)), interval_trigger(60))).await;
    let lease = Duration::from_secs(3600);

    let claimed = claim_for(store, "s1", utc(10), 10, lease).await;
    assert_eq!(ids(&claimed), ["a", "b"], "{CHECK}: first claim");
    if store.capabilities().shared {
        // The holder's own live leases were stranded (see the JobStore contract): its
        // next claim takes the jobs back.
        let again = claim_for(store, "s1", utc(11), 10, lease).await;
        assert_eq!(
            ids(&again),
            ["a", "b"],
            "{CHECK}: the holder's stranded claims"
        );
    } else {
        assert!(
            claim_for(store, "s1", utc(11), 10, lease).await.is_empty(),
            "{CHECK}: the holder got its claimed jobs again"
        );
    }
    assert!(
        claim_for(store, "s2", utc(12), 10, lease).await.is_empty(),
        "{CHECK}: another scheduler got claimed jobs"
    );
    assert_eq!(
        next_run_time(store).await,
        Some(utc(if leased_shown { 0 } else { 20 })),
        "{CHECK}: get_next_run_time reported a claimed job's run time"
    );
    assert_eq!(
        lookup(store, "a").await.next_run_time,
        Some(at(0)),
        "{CHECK}: lookup of a claimed job"
    );

    add(store, sample_job("c", Some(at(5)), interval_trigger(60))).await;
    assert_eq!(
        ids(&claim_for(store, "s2", utc(12), 10, lease).await),
        ["c"],
        "{CHECK}: a job added after the claim"
    );

    // s1 releases a with a later run time: claimable again at that time only.
    release(
        store,
        "s1",
        vec![JobRelease::Update(rescheduled(&claimed[0], Some(at(15))))],
    )
    .await;
    // b (run time 1) and c (5) are still leased.
    assert_eq!(
        next_run_time(store).await,
        Some(utc(if leased_shown { 1 } else { 15 })),
        "{CHECK}: released run time"
    );
    // s3: s2 still holds c, which a shared store would give back to s2.
    assert!(
        claim_for(store, "s3", utc(14), 10, lease).await.is_empty(),
        "{CHECK}: a released job was claimed before its new run time"
    );
    let again = claim_for(store, "s3", utc(16), 10, lease).await;
    assert_eq!(
        ids(&again),
        ["a"],
        "{CHECK}: the released job is claimable when due"
    );
    assert_eq!(
        again[0].next_run_time,
        Some(at(15)),
        "{CHECK}: the released run time"
    );

    release(store, "s1", vec![JobRelease::Remove(claimed[1].id.clone())]).await;
    assert!(is_absent(store, "b").await, "{CHECK}: released with Remove");
    // c (5) and a (15) are still leased.
    assert_eq!(
        next_run_time(store).await,
        Some(utc(if leased_shown { 5 } else { 20 })),
        "{CHECK}: only d is unclaimed"
    );
}

/// Lets `length` of lease time pass from `since`: on a store whose leases run on its own
/// clock ([`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)),
/// real time, as the `now` a caller passes does not age them; elsewhere nothing (the
/// check passes a later `now`).
async fn let_lease_time_pass(store: &dyn JobStore, since: std::time::Instant, length: Duration) {
    if store.capabilities().store_clock {
        let until = since + length;
        tokio::time::sleep(until.saturating_duration_since(std::time::Instant::now())).await;
    }
}

/// A lease that has expired can be claimed by another scheduler (the holder died); the
/// old holder has then lost it: extending it is `LeaseLost`, and its late release does
/// not overwrite the new holder's claim. The new holder's release is stored.
///
/// On a store with [`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)
/// the lease (1 s) ages in real time, whatever `now` the claimers pass.
pub async fn check_expired_lease(store: &dyn JobStore) {
    const CHECK: &str = "check_expired_lease";
    assert_empty(store, CHECK).await;
    add(store, sample_job("a", Some(at(0)), interval_trigger(60))).await;
    let short = Duration::from_secs(1);

    let claimed_at = std::time::Instant::now();
    let first = claim_for(store, "s1", utc(0), 10, short).await;
    assert_eq!(ids(&first), ["a"], "{CHECK}: first claim");
    assert!(
        claim(store, "s2", at_millis(500).with_timezone(&Utc), 10)
            .await
            .is_empty(),
        "{CHECK}: a live lease was claimed by another scheduler"
    );
    if store.capabilities().store_clock {
        // A caller whose clock is far ahead does not end a lease on the store's clock.
        assert!(
            claim(store, "s2", utc(3600), 10).await.is_empty(),
            "{CHECK}: a lease on the store's clock was taken by a caller whose clock is ahead"
        );
    }
    let_lease_time_pass(store, claimed_at, Duration::from_millis(1300)).await;
    let second = claim(store, "s2", utc(2), 10).await;
    assert_eq!(
        ids(&second),
        ["a"],
        "{CHECK}: the expired lease was not reclaimable"
    );
    assert_eq!(
        second[0].next_run_time,
        Some(at(0)),
        "{CHECK}: reclaimed run time"
    );

    expect_kind(
        store
            .extend_leases("s1", &[first[0].id.clone()], utc(2), LEASE)
            .await,
        ErrorKind::LeaseLost,
        "extend_leases by the holder of an expired, reclaimed lease",
    );

    // The old holder's late release must not overwrite the new claim, and says so.
    let lost = release(
        store,
        "s1",
        vec![JobRelease::Update(rescheduled(&first[0], Some(at(50))))],
    )
    .await;
    assert_eq!(
        lost,
        ["a"],
        "{CHECK}: a release by a scheduler that lost the lease was not reported lost"
    );
    assert_eq!(
        lookup(store, "a").await.next_run_time,
        Some(at(0)),
        "{CHECK}: a release by a scheduler that lost the lease was stored"
    );
    assert!(
        claim(store, "s3", utc(3), 10).await.is_empty(),
        "{CHECK}: a release by a scheduler that lost the lease ended the new holder's lease"
    );

    let lost = release(
        store,
        "s2",
        vec![JobRelease::Update(rescheduled(&second[0], Some(at(50))))],
    )
    .await;
    assert!(
        lost.is_empty(),
        "{CHECK}: the new holder's release reported lost: {lost:?}"
    );
    assert_eq!(
        lookup(store, "a").await.next_run_time,
        Some(at(50)),
        "{CHECK}: new holder's release"
    );
    assert!(
        claim(store, "s3", utc(49), 10).await.is_empty(),
        "{CHECK}: claimed before due"
    );
    assert_eq!(
        ids(&claim(store, "s3", utc(50), 10).await),
        ["a"],
        "{CHECK}: claim when due"
    );
}

/// `release_jobs` with `Update` stores the new state (run time, arguments) and ends the
/// lease: the job is claimable again when due (by any scheduler), and a release with a
/// `None` run time leaves it paused (listed last, never due). `Remove` deletes the job.
/// A job removed while claimed is not re-created by its release.
pub async fn check_release(store: &dyn JobStore) {
    const CHECK: &str = "check_release";
    assert_empty(store, CHECK).await;
    for (id, t) in [("u", 0), ("p", 1), ("r", 2), ("x", 3)] {
        add(store, sample_job(id, Some(at(t)), interval_trigger(60))).await;
    }
    let claimed = claim(store, "s1", utc(5), 10).await;
    assert_eq!(ids(&claimed), ["u", "p", "r", "x"], "{CHECK}: claim");
    store
        .remove_job("x")
        .await
        .expect("remove_job of a claimed job");

    let updated = Job {
        args: Arc::new(vec![json!("run 2")]),
        ..rescheduled(&claimed[0], Some(at(60)))
    };
    let lost = release(
        store,
        "s1",
        vec![
            JobRelease::Update(updated),
            JobRelease::Update(rescheduled(&claimed[1], None)),
            JobRelease::Remove(claimed[2].id.clone()),
            JobRelease::Update(rescheduled(&claimed[3], Some(at(60)))),
        ],
    )
    .await;
    assert_eq!(
        lost,
        ["x"],
        "{CHECK}: the release of a job removed while claimed was not reported lost"
    );

    let u = lookup(store, "u").await;
    assert_eq!(u.next_run_time, Some(at(60)), "{CHECK}: released run time");
    assert_eq!(*u.args, [json!("run 2")], "{CHECK}: released arguments");
    assert_eq!(
        lookup(store, "p").await.next_run_time,
        None,
        "{CHECK}: released as paused"
    );
    assert!(is_absent(store, "r").await, "{CHECK}: released with Remove");
    assert!(
        is_absent(store, "x").await,
        "{CHECK}: a removed job was re-created by its release"
    );
    assert_eq!(
        all_ids(store).await,
        ["u", "p"],
        "{CHECK}: listing after release"
    );
    assert_eq!(
        next_run_time(store).await,
        Some(utc(60)),
        "{CHECK}: next run time after release"
    );

    assert!(
        claim(store, "s2", utc(59), 10).await.is_empty(),
        "{CHECK}: claimed before due"
    );
    assert_eq!(
        ids(&claim(store, "s2", utc(1000), 10).await),
        ["u"],
        "{CHECK}: the released job is claimable by another scheduler when due; paused is not"
    );
}

/// The holder extends its lease (`now + lease` from the extension on), so the job is
/// not claimable where the original lease would have expired; a scheduler that does
/// not hold the lease (never claimed, another holder, expired, or the job is gone) gets
/// `LeaseLost`.
///
/// On a store with [`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)
/// the leases (1 s, extended to 3 s) age in real time, whatever `now` the callers pass.
pub async fn check_extend_leases(store: &dyn JobStore) {
    const CHECK: &str = "check_extend_leases";
    assert_empty(store, CHECK).await;
    add(store, sample_job("a", Some(at(0)), interval_trigger(60))).await;
    add(store, sample_job("b", Some(at(100)), interval_trigger(60))).await;
    let a: [Arc<str>; 1] = ["a".into()];
    let (first, extended) = if store.capabilities().store_clock {
        (Duration::from_secs(1), Duration::from_secs(3))
    } else {
        (Duration::from_secs(5), Duration::from_secs(10))
    };

    let claimed = claim_for(store, "s1", utc(0), 10, first).await;
    assert_eq!(ids(&claimed), ["a"], "{CHECK}: claim");
    let extended_at = std::time::Instant::now();
    store
        .extend_leases("s1", &a, utc(4), extended)
        .await
        .expect("extend_leases by the holder");
    // Past the first lease's end, within the extension.
    let_lease_time_pass(store, extended_at, Duration::from_millis(1500)).await;
    assert!(
        claim(store, "s2", utc(6), 10).await.is_empty(),
        "{CHECK}: the extended lease was ignored"
    );
    expect_kind(
        store.extend_leases("s2", &a, utc(6), LEASE).await,
        ErrorKind::LeaseLost,
        "extend_leases by a scheduler that does not hold the lease",
    );
    expect_kind(
        store
            .extend_leases("s1", &["b".into()], utc(6), LEASE)
            .await,
        ErrorKind::LeaseLost,
        "extend_leases of a job that was never claimed",
    );
    expect_kind(
        store
            .extend_leases("s1", &["ghost".into()], utc(6), LEASE)
            .await,
        ErrorKind::LeaseLost,
        "extend_leases of a missing job",
    );
    let_lease_time_pass(store, extended_at, extended + Duration::from_millis(500)).await;
    expect_kind(
        store.extend_leases("s1", &a, utc(14), LEASE).await,
        ErrorKind::LeaseLost,
        "extend_leases of an expired lease",
    );
    assert_eq!(
        ids(&claim(store, "s2", utc(14), 10).await),
        ["a"],
        "{CHECK}: the extended lease did not expire"
    );
    expect_kind(
        store.extend_leases("s1", &a, utc(15), LEASE).await,
        ErrorKind::LeaseLost,
        "extend_leases after another scheduler took the job over",
    );
    store
        .extend_leases("s2", &a, utc(15), LEASE)
        .await
        .expect("extend_leases by the new holder");
}

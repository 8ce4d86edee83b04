//! Ordering: which jobs are due and in what order, the next run time, listings, removing everything.

use super::helpers::*;
use super::*;

/// `acquire_due_jobs` returns the jobs due at `now` (inclusive), ordered by next run
/// time then id, at most `limit` of them (`limit = 0` claims nothing); paused jobs and
/// jobs due after `now` are not returned.
pub async fn check_due_jobs_order(store: &dyn JobStore) {
    const CHECK: &str = "check_due_jobs_order";
    assert_empty(store, CHECK).await;
    for (id, t) in [
        ("f", Some(20)),
        ("b", Some(10)),
        ("e", Some(30)),
        ("p", None),
        ("a", Some(10)),
        ("d", Some(20)),
        ("c", Some(5)),
    ] {
        add(store, sample_job(id, t.map(at), interval_trigger(60))).await;
    }
    let now = utc(20);

    assert!(
        claim(store, "s1", now, 0).await.is_empty(),
        "{CHECK}: limit 0 claimed jobs"
    );
    let first = claim(store, "s1", now, 3).await;
    assert_eq!(
        ids(&first),
        ["c", "a", "b"],
        "{CHECK}: first claim (limit 3)"
    );
    let times: Vec<_> = first.iter().map(|j| j.next_run_time).collect();
    assert_eq!(
        times,
        [Some(at(5)), Some(at(10)), Some(at(10))],
        "{CHECK}: claimed run times"
    );

    // Each claim by another scheduler: a shared store gives a holder its own claims
    // back (see the JobStore contract).
    let second = claim(store, "s2", now, 10).await;
    assert_eq!(
        ids(&second),
        ["d", "f"],
        "{CHECK}: second claim (jobs due exactly at `now`, ties by id)"
    );
    assert!(
        claim(store, "s3", now, 10).await.is_empty(),
        "{CHECK}: a paused or not yet due job was claimed"
    );
    assert_eq!(
        ids(&claim(store, "s4", utc(30), 10).await),
        ["e"],
        "{CHECK}: e is due at its run time"
    );
}

/// `get_next_run_time` is the earliest run time of the jobs that are not paused (as
/// the same instant, to the microsecond, whatever the job's time zone); `None` when
/// every job is paused or there is none.
pub async fn check_next_run_time(store: &dyn JobStore) {
    const CHECK: &str = "check_next_run_time";
    assert_empty(store, CHECK).await;
    assert_eq!(next_run_time(store).await, None, "{CHECK}: empty store");

    add(store, sample_job("p", None, interval_trigger(10))).await;
    assert_eq!(
        next_run_time(store).await,
        None,
        "{CHECK}: only a paused job"
    );

    add(store, sample_job("a", Some(at(30)), interval_trigger(10))).await;
    add(store, sample_job("b", Some(at(10)), interval_trigger(10))).await;
    assert_eq!(
        next_run_time(store).await,
        Some(utc(10)),
        "{CHECK}: earliest of a and b"
    );

    let b = lookup(store, "b").await;
    store
        .update_job(rescheduled(&b, None))
        .await
        .expect("update_job (pause)");
    assert_eq!(
        next_run_time(store).await,
        Some(utc(30)),
        "{CHECK}: b paused"
    );

    let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
    let precise = (at(5) + chrono::Duration::microseconds(123_456)).with_timezone(&tokyo);
    add(store, sample_job("t", Some(precise), interval_trigger(10))).await;
    assert_eq!(
        next_run_time(store).await,
        Some(precise.with_timezone(&Utc)),
        "{CHECK}: a run time in another zone, with microseconds"
    );

    store.remove_job("t").await.expect("remove_job");
    store.remove_job("a").await.expect("remove_job");
    assert_eq!(
        next_run_time(store).await,
        None,
        "{CHECK}: only a paused job left"
    );
}

/// `get_all_jobs` lists every job by next run time then id, paused jobs last (by id);
/// claimed jobs are listed too.
pub async fn check_get_all_jobs_order(store: &dyn JobStore) {
    const CHECK: &str = "check_get_all_jobs_order";
    assert_empty(store, CHECK).await;
    let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
    for (id, t) in [
        ("z", Some(at(5))),
        ("m", None),
        ("b", Some(at(10))),
        ("a", Some(at(10))),
        ("c", None),
        ("y", Some(at(1).with_timezone(&tokyo))),
        ("x", Some(at(7))),
    ] {
        add(store, sample_job(id, t, interval_trigger(60))).await;
    }
    let expected = ["y", "z", "x", "a", "b", "c", "m"];
    assert_eq!(all_ids(store).await, expected, "{CHECK}: listing order");

    let claimed = claim(store, "s1", utc(7), 10).await;
    assert_eq!(ids(&claimed), ["y", "z", "x"], "{CHECK}: claim");
    assert_eq!(
        all_ids(store).await,
        expected,
        "{CHECK}: claimed jobs must stay listed"
    );
}

/// `remove_all_jobs` removes every job, paused and claimed ones included, and leaves
/// no lease behind: a job added again under the same id is claimable.
pub async fn check_remove_all_jobs(store: &dyn JobStore) {
    const CHECK: &str = "check_remove_all_jobs";
    assert_empty(store, CHECK).await;
    for (id, t) in [("a", Some(1)), ("b", Some(2)), ("c", Some(50)), ("p", None)] {
        add(store, sample_job(id, t.map(at), interval_trigger(60))).await;
    }
    assert_eq!(
        ids(&claim(store, "s1", utc(5), 10).await),
        ["a", "b"],
        "{CHECK}: claim"
    );

    store.remove_all_jobs().await.expect("remove_all_jobs");
    assert!(all_ids(store).await.is_empty(), "{CHECK}: jobs left");
    assert_eq!(
        next_run_time(store).await,
        None,
        "{CHECK}: next run time left"
    );
    assert!(is_absent(store, "a").await, "{CHECK}: a still found");
    assert!(
        claim(store, "s2", utc(100), 10).await.is_empty(),
        "{CHECK}: claimable jobs left"
    );

    add(store, sample_job("a", Some(at(1)), interval_trigger(60))).await;
    assert_eq!(
        ids(&claim(store, "s2", utc(5), 10).await),
        ["a"],
        "{CHECK}: a lease survived remove_all_jobs"
    );
}

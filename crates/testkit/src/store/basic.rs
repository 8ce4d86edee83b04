//! Basic operations: add, look up, replace, remove; conflicts; batches; missing ids.

use super::helpers::*;
use super::*;

/// A job is stored by `add_job`, read back by `lookup_job` and `get_all_jobs`, replaced
/// by `update_job` (a new run time, name, option, or `None` to pause) and deleted by
/// `remove_job`.
pub async fn check_add_lookup_update_remove(store: &dyn JobStore) {
    const CHECK: &str = "check_add_lookup_update_remove";
    assert_empty(store, CHECK).await;
    assert!(
        is_absent(store, "a").await,
        "{CHECK}: lookup of a missing id"
    );

    add(store, sample_job("a", Some(at(10)), interval_trigger(10))).await;
    let job = lookup(store, "a").await;
    assert_eq!(&*job.id, "a", "{CHECK}: id");
    assert_eq!(&*job.name, "noop", "{CHECK}: name");
    assert_eq!(job.task.name(), Some("noop"), "{CHECK}: task");
    assert_eq!(job.next_run_time, Some(at(10)), "{CHECK}: next_run_time");
    assert_eq!(
        job.trigger.to_string(),
        "interval[0:00:10]",
        "{CHECK}: trigger"
    );
    assert_eq!(
        all_ids(store).await,
        ["a"],
        "{CHECK}: get_all_jobs after add"
    );

    let updated = Job {
        name: "renamed".into(),
        coalesce: true,
        next_run_time: Some(at(20)),
        ..job
    };
    store.update_job(updated).await.expect("update_job");
    let job = lookup(store, "a").await;
    assert_eq!(&*job.name, "renamed", "{CHECK}: name after update");
    assert!(job.coalesce, "{CHECK}: coalesce after update");
    assert_eq!(
        job.next_run_time,
        Some(at(20)),
        "{CHECK}: next_run_time after update"
    );
    assert_eq!(
        next_run_time(store).await,
        Some(utc(20)),
        "{CHECK}: next run time after update"
    );
    assert_eq!(
        all_ids(store).await,
        ["a"],
        "{CHECK}: update must not duplicate the job"
    );

    store
        .update_job(rescheduled(&job, None))
        .await
        .expect("update_job (pause)");
    assert_eq!(
        lookup(store, "a").await.next_run_time,
        None,
        "{CHECK}: paused"
    );
    assert_eq!(
        next_run_time(store).await,
        None,
        "{CHECK}: a paused job has no run time"
    );

    store.remove_job("a").await.expect("remove_job");
    assert!(
        is_absent(store, "a").await,
        "{CHECK}: removed job still found"
    );
    assert!(
        all_ids(store).await.is_empty(),
        "{CHECK}: get_all_jobs after remove"
    );
    assert_eq!(
        next_run_time(store).await,
        None,
        "{CHECK}: next run time after remove"
    );
}

/// Adding an id that exists is `Conflict` and leaves the stored job untouched; with
/// `replace_existing` the new job replaces it, including its place in the run time
/// order (the old run time is no longer due).
pub async fn check_conflicts_and_replace(store: &dyn JobStore) {
    const CHECK: &str = "check_conflicts_and_replace";
    assert_empty(store, CHECK).await;
    add(store, sample_job("a", Some(at(10)), interval_trigger(10))).await;

    let second = Job {
        name: "second".into(),
        ..sample_job("a", Some(at(20)), interval_trigger(20))
    };
    expect_kind(
        store.add_job(second.clone(), false).await,
        ErrorKind::Conflict,
        "add_job with an existing id",
    );
    let job = lookup(store, "a").await;
    assert_eq!(
        &*job.name, "noop",
        "{CHECK}: a conflicting add changed the job"
    );
    assert_eq!(
        job.next_run_time,
        Some(at(10)),
        "{CHECK}: a conflicting add changed the job"
    );

    store
        .add_job(second, true)
        .await
        .expect("add_job with replace_existing");
    let job = lookup(store, "a").await;
    assert_eq!(
        &*job.name, "second",
        "{CHECK}: replace_existing did not replace"
    );
    assert_eq!(
        job.next_run_time,
        Some(at(20)),
        "{CHECK}: replaced run time"
    );
    assert_eq!(
        job.trigger.to_string(),
        "interval[0:00:20]",
        "{CHECK}: replaced trigger"
    );
    assert_eq!(
        all_ids(store).await,
        ["a"],
        "{CHECK}: replace must not duplicate the job"
    );
    assert_eq!(
        next_run_time(store).await,
        Some(utc(20)),
        "{CHECK}: the old run time lingers"
    );
    assert!(
        claim(store, "s1", utc(15), 10).await.is_empty(),
        "{CHECK}: the replaced job is due at its old run time"
    );
    assert_eq!(
        ids(&claim(store, "s1", utc(20), 10).await),
        ["a"],
        "{CHECK}: due at the new time"
    );
}

/// `add_jobs` is all or nothing on a conflict, with a stored job or within the batch;
/// with `replace_existing` it replaces and adds.
pub async fn check_add_jobs_all_or_nothing(store: &dyn JobStore) {
    const CHECK: &str = "check_add_jobs_all_or_nothing";
    assert_empty(store, CHECK).await;
    let job = |id: &str, t: i64| sample_job(id, Some(at(t)), interval_trigger(10));
    add(store, job("x", 1)).await;

    expect_kind(
        store.add_jobs(vec![job("y", 2), job("x", 3)], false).await,
        ErrorKind::Conflict,
        "add_jobs with an existing id",
    );
    assert!(
        is_absent(store, "y").await,
        "{CHECK}: add_jobs added part of a conflicting batch"
    );
    assert_eq!(
        lookup(store, "x").await.next_run_time,
        Some(at(1)),
        "{CHECK}: x was changed"
    );

    expect_kind(
        store.add_jobs(vec![job("p", 2), job("p", 3)], false).await,
        ErrorKind::Conflict,
        "add_jobs with the same id twice",
    );
    assert!(
        is_absent(store, "p").await,
        "{CHECK}: add_jobs added part of a conflicting batch"
    );

    store
        .add_jobs(vec![job("y", 2), job("z", 3)], false)
        .await
        .expect("add_jobs");
    assert_eq!(
        all_ids(store).await,
        ["x", "y", "z"],
        "{CHECK}: after add_jobs"
    );

    store
        .add_jobs(vec![job("x", 9), job("w", 4)], true)
        .await
        .expect("add_jobs with replace_existing");
    assert_eq!(
        all_ids(store).await,
        ["y", "z", "w", "x"],
        "{CHECK}: after replacing add_jobs"
    );
    assert_eq!(
        lookup(store, "x").await.next_run_time,
        Some(at(9)),
        "{CHECK}: x not replaced"
    );
}

/// Updating or removing an id that does not exist is `NotFound` (and creates nothing);
/// looking it up is `None`.
pub async fn check_missing_ids(store: &dyn JobStore) {
    const CHECK: &str = "check_missing_ids";
    assert_empty(store, CHECK).await;
    expect_kind(
        store
            .update_job(sample_job("ghost", Some(at(1)), interval_trigger(10)))
            .await,
        ErrorKind::NotFound,
        "update_job of a missing id",
    );
    assert!(
        is_absent(store, "ghost").await,
        "{CHECK}: update_job created a job"
    );
    expect_kind(
        store.remove_job("ghost").await,
        ErrorKind::NotFound,
        "remove_job of a missing id",
    );

    add(store, sample_job("a", Some(at(1)), interval_trigger(10))).await;
    store.remove_job("a").await.expect("remove_job");
    expect_kind(
        store.remove_job("a").await,
        ErrorKind::NotFound,
        "remove_job of a removed id",
    );
    expect_kind(
        store
            .update_job(sample_job("a", Some(at(1)), interval_trigger(10)))
            .await,
        ErrorKind::NotFound,
        "update_job of a removed id",
    );
    assert!(all_ids(store).await.is_empty(), "{CHECK}: store not empty");
}

//! Store families: what persistent stores refuse and memory stores keep.

use super::helpers::*;
use super::*;

/// Persistent stores only (skipped otherwise): a job running a closure, or with a
/// trigger that has no persisted form, is refused with `Serialization` by `add_job`
/// and `update_job`, and nothing is stored or changed.
pub async fn check_persistent_refuses_unserializable(store: &dyn JobStore) {
    const CHECK: &str = "check_persistent_refuses_unserializable";
    if !store.is_persistent() {
        return;
    }
    assert_empty(store, CHECK).await;
    let closure = Job {
        task: closure_task(),
        ..sample_job("closure", Some(at(1)), interval_trigger(10))
    };
    expect_kind(
        store.add_job(closure, false).await,
        ErrorKind::Serialization,
        "add_job of a closure task in a persistent store",
    );
    assert!(
        is_absent(store, "closure").await,
        "{CHECK}: a refused job was stored"
    );
    let unpersistable = sample_job("unpersistable", Some(at(1)), Arc::new(Unpersistable));
    expect_kind(
        store.add_job(unpersistable, false).await,
        ErrorKind::Serialization,
        "add_job with a trigger without a persisted form",
    );
    assert!(
        is_absent(store, "unpersistable").await,
        "{CHECK}: a refused job was stored"
    );

    add(
        store,
        sample_job("named", Some(at(1)), interval_trigger(10)),
    )
    .await;
    let job = lookup(store, "named").await;
    expect_kind(
        store
            .update_job(Job {
                task: closure_task(),
                ..job.clone()
            })
            .await,
        ErrorKind::Serialization,
        "update_job to a closure task",
    );
    expect_kind(
        store
            .update_job(Job {
                trigger: Arc::new(Unpersistable),
                ..job
            })
            .await,
        ErrorKind::Serialization,
        "update_job to a trigger without a persisted form",
    );
    let job = lookup(store, "named").await;
    assert_eq!(
        job.task.name(),
        Some("noop"),
        "{CHECK}: a refused update changed the task"
    );
    assert_eq!(
        job.trigger.to_string(),
        "interval[0:00:10]",
        "{CHECK}: a refused update changed the trigger"
    );
}

/// Non-persistent stores only (skipped otherwise): jobs running closures, with
/// triggers that cannot be persisted, are stored and handed back as they are.
pub async fn check_memory_accepts_closures(store: &dyn JobStore) {
    const CHECK: &str = "check_memory_accepts_closures";
    if store.is_persistent() {
        return;
    }
    assert_empty(store, CHECK).await;
    let job = Job {
        task: closure_task(),
        ..sample_job("closure", Some(at(1)), Arc::new(Unpersistable))
    };
    add(store, job).await;
    let got = lookup(store, "closure").await;
    assert!(
        matches!(got.task, Task::Closure(_)),
        "{CHECK}: task {:?}",
        got.task
    );
    assert_eq!(
        got.trigger.to_string(),
        "unpersistable[]",
        "{CHECK}: trigger"
    );
    let claimed = claim(store, "s1", utc(1), 10).await;
    assert_eq!(ids(&claimed), ["closure"], "{CHECK}: claim");
    assert!(
        matches!(claimed[0].task, Task::Closure(_)),
        "{CHECK}: claimed task"
    );
}

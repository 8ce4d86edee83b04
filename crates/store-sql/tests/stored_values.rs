//! What the tables hold, on every backend: size, nesting and id bounds enforced when a
//! job is written, run times below the microsecond never claimed early, and releases
//! storing every JSON value byte for byte.

mod support;

use std::sync::Arc;

use apscheduler_core::{ErrorKind, Job, JobRelease, JobStore};
use apscheduler_store_sql::SqlJobStore;
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};
use serde_json::json;
use support::{ids, job, on_every_backend, Tables};

on_every_backend!(
    bounds_on_what_is_stored,
    sub_microsecond_run_times_are_never_early,
    releases_round_trip_every_value,
);

/// Jobs the tables cannot hold, or that could not be read back, are refused when
/// written, with the kind that says why, and nothing is stored.
async fn bounds_on_what_is_stored(tables: &Tables) {
    let store = SqlJobStore::builder(tables.url())
        .table_name(tables.table())
        .max_state_bytes(4096)
        .build()
        .unwrap();
    store.start("default").await.unwrap();
    let big = Job {
        args: Arc::new(vec![json!("x".repeat(5000))]),
        ..job("big", 1)
    };
    let err = store.add_job(big, false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    assert!(err.message().contains("4096"), "{err}");
    let mut nested = json!(0);
    for _ in 0..70 {
        nested = json!({ "n": nested });
    }
    let deep = Job {
        kwargs: Arc::new(nested.as_object().unwrap().clone()),
        ..job("deep", 1)
    };
    assert_eq!(
        store.add_job(deep, false).await.unwrap_err().kind(),
        ErrorKind::Serialization
    );
    let long_id = "x".repeat(192);
    let err = store.add_job(job(&long_id, 1), false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("'id'"), "{err}");
    assert_eq!(
        store
            .add_job(job("nul\0id", 1), false)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    // The longest id fits, in any script.
    let longest = "ü".repeat(191);
    store.add_job(job(&longest, 1), false).await.unwrap();
    assert!(store.lookup_job(&longest).await.unwrap().is_some());
    assert!(store.lookup_job(&long_id).await.unwrap().is_none());
    assert_eq!(
        store.remove_job(&long_id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store
            .acquire_due_jobs(&"s".repeat(192), utc(1), 10, LEASE)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    // Batches are all or nothing on these too.
    let err = store
        .add_jobs(vec![job("fine", 1), job(&long_id, 1)], false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(store.lookup_job("fine").await.unwrap().is_none());
    assert_eq!(
        ids(&store.get_all_jobs().await.unwrap()),
        [longest.as_str()]
    );
    store.shutdown().await.unwrap();
}

/// Run times below the microsecond are rounded up in the index column, so a job is
/// never claimed before its exact time, and the exact time comes back.
async fn sub_microsecond_run_times_are_never_early(tables: &Tables) {
    let store = tables.store();
    store.start("default").await.unwrap();
    let t = at(1) + chrono::Duration::nanoseconds(500);
    store
        .add_job(sample_job("a", Some(t), interval_trigger(60)), false)
        .await
        .unwrap();
    let early = store
        .acquire_due_jobs("s1", utc(1), 10, LEASE)
        .await
        .unwrap();
    assert!(early.jobs.is_empty(), "claimed 500 ns early");
    let next = store.get_next_run_time().await.unwrap().unwrap();
    assert!(next >= t, "next run time {next} before {t}");
    let now = utc(1) + chrono::Duration::microseconds(1);
    let due = store.acquire_due_jobs("s1", now, 10, LEASE).await.unwrap();
    assert_eq!(due.jobs.len(), 1);
    assert_eq!(due.jobs[0].next_run_time, Some(t));
    store.shutdown().await.unwrap();
}

/// A release stores arguments of every JSON type (unicode, quotes, control characters,
/// extremes) byte for byte, like `add_job` does, in batches larger than one chunk.
async fn releases_round_trip_every_value(tables: &Tables) {
    use apscheduler_testkit::store::{sample_args, sample_kwargs};
    let store = tables.store();
    store.start("default").await.unwrap();
    let jobs: Vec<Job> = (0..1200).map(|i| job(&format!("j{i:04}"), 1)).collect();
    store.add_jobs(jobs, false).await.unwrap();
    let claimed = store
        .acquire_due_jobs("s1", utc(1), 2000, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.jobs.len(), 1200);
    let (args, kwargs) = (Arc::new(sample_args()), Arc::new(sample_kwargs()));
    let releases = claimed
        .jobs
        .into_iter()
        .map(|j| {
            JobRelease::Update(Job {
                args: args.clone(),
                kwargs: kwargs.clone(),
                name: "ünïcödé 🎉 'q' \"dq\"".into(),
                next_run_time: Some(at(7)),
                ..j
            })
        })
        .collect();
    store.release_jobs("s1", releases).await.unwrap();
    for id in ["j0000", "j0599", "j1199"] {
        let got = store.lookup_job(id).await.unwrap().unwrap();
        assert_eq!(
            serde_json::to_string(&*got.args).unwrap(),
            serde_json::to_string(&*args).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&*got.kwargs).unwrap(),
            serde_json::to_string(&*kwargs).unwrap()
        );
        assert_eq!(&*got.name, "ünïcödé 🎉 'q' \"dq\"");
        assert_eq!(got.next_run_time, Some(at(7)));
    }
    let again = store
        .acquire_due_jobs("s2", utc(7), 2000, LEASE)
        .await
        .unwrap();
    assert_eq!(again.jobs.len(), 1200, "released jobs are claimable again");
    store.shutdown().await.unwrap();
}

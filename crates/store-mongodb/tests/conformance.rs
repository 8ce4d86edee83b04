//! The shared job store conformance suite, against the server at
//! `APS_TEST_MONGODB_URL`, plus checks of several stores (schedulers) on one
//! collection.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use apscheduler_core::{JobRelease, JobStore};
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let Some(db) = common::TestDb::new("conformance") else {
        return;
    };
    apscheduler_testkit::store::run_all(|| {
        let store = db.store();
        async move { store }
    })
    .await;
}

/// Two stores (two clients, as two scheduler processes would have) on one collection
/// claim the same due jobs concurrently: every (job, run time) is handed out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_one_collection() {
    let Some(db) = common::TestDb::new("two_stores_share_one_collection") else {
        return;
    };
    let stores: Vec<Arc<dyn JobStore>> = vec![
        Arc::new(db.store_on("shared")),
        Arc::new(db.store_on("shared")),
    ];
    for store in &stores {
        store.start("default").await.unwrap();
    }
    let jobs = (0..30)
        .map(|i| sample_job(&format!("job-{i:02}"), Some(at(i)), interval_trigger(60)))
        .collect();
    stores[0].add_jobs(jobs, false).await.unwrap();

    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(n, store)| {
            let store = store.clone();
            tokio::spawn(async move {
                let me = format!("node-{n}");
                let mut seen = Vec::new();
                loop {
                    let batch = store
                        .acquire_due_jobs(&me, utc(100), 4, LEASE)
                        .await
                        .unwrap();
                    if batch.jobs.is_empty() {
                        break;
                    }
                    let releases = batch
                        .jobs
                        .iter()
                        .map(|job| {
                            seen.push((job.id.to_string(), job.next_run_time));
                            JobRelease::Remove(job.id.clone())
                        })
                        .collect();
                    store.release_jobs(&me, releases).await.unwrap();
                }
                seen
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "a job was claimed twice: {all:?}");
    assert_eq!(all.len(), 30);
    assert!(stores[1].get_all_jobs().await.unwrap().is_empty());
    for store in &stores {
        store.shutdown().await.unwrap();
    }
}

/// The testkit's shared restart check: two stores on one collection, the first shut
/// down before the second opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_restart() {
    let Some(db) = common::TestDb::new("survives_restart") else {
        return;
    };
    let (first, second) = (db.store_on("restart"), db.store_on("restart"));
    apscheduler_testkit::store::check_survives_restart(&first, &second).await;
}

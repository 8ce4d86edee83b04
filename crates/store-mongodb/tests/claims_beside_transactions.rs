//! A claim and a lease extension that meet a transaction's uncommitted write to a job
//! must not hold up that transaction (the run steps write jobs inside transactions).
//! On the server at `APS_TEST_MONGODB_URL`: a transaction writes job `a`; a claim of
//! the due jobs `a` and `b` starts; the transaction then writes job `b` and commits.
//! Both the transaction and the claim must finish. A claim done as one multi-document
//! update deadlocked here on SecantusDB: the update kept the collection's lock while it
//! waited for `a`, and the transaction's write of `b` waited for that lock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::JobStore;
use apscheduler_store_mongodb::mongodb::bson::doc;
use apscheduler_testkit::store::{interval_trigger, sample_job, LEASE};
use chrono::Utc;

/// Far more than the milliseconds each step takes; reached only when a step hangs.
const HANG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_never_holds_up_a_transaction_that_wrote_a_due_job() {
    let Some(db) = common::TestDb::new("a_claim_never_holds_up_a_transaction") else {
        return;
    };
    let store = Arc::new(db.store_on("jobs"));
    store.start("default").await.unwrap();
    let due = (Utc::now() - chrono::Duration::seconds(60)).with_timezone(&chrono_tz::UTC);
    for id in ["a", "b"] {
        store
            .add_job(sample_job(id, Some(due), interval_trigger(60)), false)
            .await
            .unwrap();
    }
    let client = db.client().await;
    let jobs = client
        .database(&db.name)
        .collection::<apscheduler_store_mongodb::mongodb::bson::Document>("jobs");
    let mut session = client.start_session().await.unwrap();
    session.start_transaction().await.unwrap();
    jobs.update_one(doc! {"_id": "a"}, doc! {"$set": {"probe": 1}})
        .session(&mut session)
        .await
        .unwrap();

    // The claim meets the uncommitted write of `a` and waits for it.
    let claimer = store.clone();
    let claim = tokio::spawn(async move {
        claimer
            .acquire_due_jobs("claimer", Utc::now(), 10, LEASE)
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let written = tokio::time::timeout(
        HANG,
        jobs.update_one(doc! {"_id": "b"}, doc! {"$set": {"probe": 1}})
            .session(&mut session),
    )
    .await;
    assert!(
        written.is_ok(),
        "the transaction's second write waited {HANG:?} behind the claim"
    );
    written.unwrap().unwrap();
    tokio::time::timeout(HANG, session.commit_transaction())
        .await
        .expect("the commit hung")
        .unwrap();

    let acquired = tokio::time::timeout(HANG, claim)
        .await
        .expect("the claim hung after the commit")
        .unwrap()
        .unwrap();
    let mut claimed: Vec<_> = acquired.jobs.iter().map(|j| j.id.to_string()).collect();
    claimed.sort();
    assert_eq!(claimed, ["a", "b"]);

    // The lease extension meets a transaction's write in the same way.
    let mut session = client.start_session().await.unwrap();
    session.start_transaction().await.unwrap();
    jobs.update_one(doc! {"_id": "a"}, doc! {"$set": {"probe": 2}})
        .session(&mut session)
        .await
        .unwrap();
    let extender = store.clone();
    let extend = tokio::spawn(async move {
        let ids: Vec<Arc<str>> = vec!["a".into(), "b".into()];
        extender
            .extend_leases("claimer", &ids, Utc::now(), LEASE)
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::time::timeout(
        HANG,
        jobs.update_one(doc! {"_id": "b"}, doc! {"$set": {"probe": 2}})
            .session(&mut session),
    )
    .await
    .expect("the transaction's second write waited behind the lease extension")
    .unwrap();
    tokio::time::timeout(HANG, session.commit_transaction())
        .await
        .expect("the commit hung")
        .unwrap();
    tokio::time::timeout(HANG, extend)
        .await
        .expect("the lease extension hung after the commit")
        .unwrap()
        .unwrap();
    store.shutdown().await.unwrap();
}

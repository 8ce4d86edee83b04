//! The run history ([`MongoDbRunHistory`]) against the server at `APS_TEST_MONGODB_URL`:
//! the testkit's conformance suite, the document layout and indexes, unreadable
//! records, ties at the pruning boundary, and the client shared with the store.

mod common;

use std::time::Duration;

use apscheduler_core::{ErrorKind, JobStore, RunHistory, RunOutcome, RunQuery};
use apscheduler_store_mongodb::mongodb::bson::{doc, Bson, Document};
use apscheduler_store_mongodb::MongoDbJobStore;
use apscheduler_testkit::history::{base, record};
use apscheduler_testkit::history_fields::{check_old_format_record, old_format_record};
use chrono::Duration as Span;

/// The testkit's run history suite on a fresh collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let Some(db) = common::TestDb::new("run history conformance") else {
        return;
    };
    let store = db.store();
    apscheduler_testkit::history::run_all(store.run_history().unwrap()).await;
    store.shutdown().await.unwrap();
}

/// One document per run in `<collection>_runs`, with the documented fields and types,
/// and the four indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_layout_and_indexes() {
    let Some(db) = common::TestDb::new("run history layout") else {
        return;
    };
    let store = db.store_on("layout");
    let history = store.history();
    assert_eq!(history.collection(), "layout_runs");
    history.prepare().await.unwrap();

    let mut r = record("lay-1", "job-1", 0);
    // Nanoseconds are dropped: times are kept to the microsecond.
    r.finished_at = Some(r.scheduled_at + Span::nanoseconds(2_500_999));
    r.exit_code = Some(-3);
    r.http_status = Some(404);
    r.message = Some("why".into());
    history.record_runs(&[r.clone()]).await.unwrap();

    let raw = db.collection("layout_runs").await;
    let stored = raw.find_one(doc! {"_id": "lay-1"}).await.unwrap().unwrap();
    let us = base().timestamp_micros();
    let expected = doc! {
        "_id": "lay-1",
        "job_id": "job-1",
        "scheduled_us": us,
        "started_us": us + 1500,
        "finished_us": us + 2500,
        "outcome": "success",
        "exit_code": -3,
        "http_status": 404,
        "output": "output of lay-1\n",
        "message": "why",
        "node": "node-a",
        "attempt": 1_i64,
        "backfill": false,
        "due_us": Bson::Null,
    };
    assert_eq!(stored, expected);
    assert!(matches!(stored.get("scheduled_us"), Some(Bson::Int64(_))));
    assert!(matches!(stored.get("exit_code"), Some(Bson::Int32(_))));

    let found = history.query_runs(&RunQuery::default()).await.unwrap();
    assert_eq!(
        found[0].finished_at,
        Some(r.scheduled_at + Span::microseconds(2500))
    );

    // A running record keeps its absent values as nulls.
    let mut running = record("lay-2", "job-1", 1);
    running.outcome = RunOutcome::Running;
    running.started_at = None;
    running.finished_at = None;
    running.exit_code = None;
    history.record_runs(&[running]).await.unwrap();
    let stored = raw.find_one(doc! {"_id": "lay-2"}).await.unwrap().unwrap();
    for field in [
        "started_us",
        "finished_us",
        "exit_code",
        "http_status",
        "message",
        "due_us",
    ] {
        assert_eq!(stored.get(field), Some(&Bson::Null), "{field}");
    }

    let mut names: Vec<String> = raw.list_index_names().await.unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "_id_",
            "aps_runs_job",
            "aps_runs_node",
            "aps_runs_outcome",
            "aps_runs_scheduled"
        ]
    );
    // Documents written by hand (without nulls, an Int32 time) read back too.
    raw.insert_one(doc! {
        "_id": "lay-3", "job_id": "job-2", "scheduled_us": 7, "outcome": "missed",
        "output": "", "node": "n",
    })
    .await
    .unwrap();
    let by_hand = history
        .query_runs(&RunQuery {
            job_id: Some("job-2".into()),
            ..RunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_hand.len(), 1);
    assert_eq!(by_hand[0].scheduled_at.timestamp_micros(), 7);
    assert_eq!(by_hand[0].message, None);
    store.shutdown().await.unwrap();
}

/// A document as the earlier release wrote it (no `attempt`, `backfill`, `due_us`)
/// reads as attempt 1, not a backfill, with no due time; a retry's document holds the
/// three fields with their types; a mistyped one is `Serialization` naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_format_document_reads_with_defaults() {
    let Some(db) = common::TestDb::new("run history old format") else {
        return;
    };
    let store = db.store_on("old");
    let history = store.history();
    history.prepare().await.unwrap();
    let raw = db.collection("old_runs").await;
    let old = old_format_record();
    let us = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();
    raw.insert_one(doc! {
        "_id": &old.run_id,
        "job_id": &old.job_id,
        "scheduled_us": us(old.scheduled_at),
        "started_us": us(old.started_at.unwrap()),
        "finished_us": us(old.finished_at.unwrap()),
        "outcome": old.outcome.as_str(),
        "exit_code": old.exit_code.unwrap(),
        "http_status": Bson::Null,
        "output": &old.output,
        "message": old.message.as_deref().unwrap(),
        "node": &old.node,
    })
    .await
    .unwrap();
    check_old_format_record(&history).await;

    let mut retry = record("new-1", "new-job", 0);
    retry.attempt = 4;
    retry.backfill = true;
    retry.due_at = Some(base() + Span::microseconds(9));
    history.record_runs(&[retry.clone()]).await.unwrap();
    let stored = raw.find_one(doc! {"_id": "new-1"}).await.unwrap().unwrap();
    assert_eq!(stored.get("attempt"), Some(&Bson::Int64(4)));
    assert_eq!(stored.get("backfill"), Some(&Bson::Boolean(true)));
    assert_eq!(
        stored.get("due_us"),
        Some(&Bson::Int64(base().timestamp_micros() + 9))
    );
    let of_job = RunQuery {
        job_id: Some("new-job".into()),
        ..RunQuery::default()
    };
    assert_eq!(history.query_runs(&of_job).await.unwrap(), [retry]);

    raw.update_one(doc! {"_id": "new-1"}, doc! {"$set": {"backfill": "yes"}})
        .await
        .unwrap();
    let err = history.query_runs(&of_job).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(
        err.message().contains("new-1") && err.message().contains("'backfill'"),
        "{err}"
    );
    store.shutdown().await.unwrap();
}

/// A stored outcome the code does not know, or a missing field, is `Serialization`
/// naming the run and the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_records_are_serialization_errors() {
    let Some(db) = common::TestDb::new("run history unreadable records") else {
        return;
    };
    let store = db.store_on("bad");
    let history = store.history();
    history.prepare().await.unwrap();
    let raw = db.collection("bad_runs").await;
    let mut good = Document::new();
    good.insert("job_id", "j");
    good.insert("scheduled_us", 1_i64);
    good.insert("output", "");
    good.insert("node", "n");

    let mut bad = good.clone();
    bad.insert("_id", "run-odd");
    bad.insert("outcome", "exploded");
    raw.insert_one(bad).await.unwrap();
    let err = history.query_runs(&RunQuery::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(
        err.message().contains("run-odd") && err.message().contains("'exploded'"),
        "{err}"
    );
    raw.delete_many(doc! {}).await.unwrap();

    let mut bad = good.clone();
    bad.insert("_id", "run-no-node");
    bad.insert("outcome", "success");
    bad.remove("node");
    raw.insert_one(bad).await.unwrap();
    let err = history.query_runs(&RunQuery::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(
        err.message().contains("run-no-node") && err.message().contains("'node'"),
        "{err}"
    );
    store.shutdown().await.unwrap();
}

/// Runs sharing one scheduled time split at the boundary by run id, as queries order
/// them; a batch repeating a run id keeps its last record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_splits_ties_by_run_id() {
    let Some(db) = common::TestDb::new("run history ties") else {
        return;
    };
    let store = db.store_on("ties");
    let history = store.history();
    history.prepare().await.unwrap();
    let mut records: Vec<_> = ["t-a", "t-b", "t-c", "t-d", "t-e"]
        .iter()
        .map(|id| record(id, "tie-job", 5))
        .collect();
    records.push(record("t-0", "tie-job", 4));
    let mut last = record("t-e", "tie-job", 5);
    last.output = "the last write".into();
    records.push(last);
    history.record_runs(&records).await.unwrap();

    let query = RunQuery {
        job_id: Some("tie-job".into()),
        ..RunQuery::default()
    };
    let all = history.query_runs(&query).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["t-e", "t-d", "t-c", "t-b", "t-a", "t-0"]);
    assert_eq!(all[0].output, "the last write");

    assert_eq!(history.prune_job_runs("tie-job", 2).await.unwrap(), 4);
    let left = history.query_runs(&query).await.unwrap();
    let ids: Vec<&str> = left.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["t-e", "t-d"]);
    assert_eq!(history.prune_job_runs("no-such-job", 0).await.unwrap(), 0);
    // A limit of zero asks for nothing (MongoDB's limit 0 would mean "no limit").
    let none = RunQuery { limit: 0, ..query };
    assert!(history.query_runs(&none).await.unwrap().is_empty());
    // Sub-microsecond bounds: `since` inclusive and `until` exclusive on the exact
    // instants.
    let t = base() + Span::seconds(5);
    let window = |since, until| RunQuery {
        job_id: Some("tie-job".into()),
        since,
        until,
        ..RunQuery::default()
    };
    let q = window(
        Some(t - Span::nanoseconds(1)),
        Some(t + Span::nanoseconds(1)),
    );
    assert_eq!(history.query_runs(&q).await.unwrap().len(), 2);
    let q = window(Some(t), Some(t + Span::microseconds(1)));
    assert_eq!(
        history.query_runs(&q).await.unwrap().len(),
        2,
        "since is inclusive"
    );
    let q = window(Some(t + Span::nanoseconds(1)), None);
    assert!(history.query_runs(&q).await.unwrap().is_empty());
    let q = window(None, Some(t));
    assert!(history.query_runs(&q).await.unwrap().is_empty());
    store.shutdown().await.unwrap();
}

/// Writing a `running` or `missed` record again (the insert path's duplicates) and an
/// ended record that was never written (the upsert path's inserts) both land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_take_either_path() {
    let Some(db) = common::TestDb::new("run history rewrites") else {
        return;
    };
    let store = db.store_on("rewrites");
    let history = store.history();
    history.prepare().await.unwrap();
    let mut running = record("w-run", "w-job", 0);
    running.outcome = RunOutcome::Running;
    running.finished_at = None;
    let mut missed = record("w-missed", "w-job", 1);
    missed.outcome = RunOutcome::Missed;
    missed.started_at = None;
    history
        .record_runs(&[running.clone(), missed.clone()])
        .await
        .unwrap();
    running.output = "still running".into();
    missed.message = Some("skipped: max_instances".into());
    let ended = record("w-ended", "w-job", 2);
    history
        .record_runs(&[ended.clone(), running.clone(), missed.clone()])
        .await
        .unwrap();
    let query = RunQuery {
        job_id: Some("w-job".into()),
        ..RunQuery::default()
    };
    assert_eq!(
        history.query_runs(&query).await.unwrap(),
        vec![ended, missed, running]
    );
    store.shutdown().await.unwrap();
}

/// The history uses the store's client: using it connects the store, and a store
/// whose server cannot be reached gives `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_the_store_client() {
    let Some(db) = common::TestDb::new("run history shared client") else {
        return;
    };
    let store = db.store_on("shared");
    assert!(!store.is_connected());
    let history = store.run_history().unwrap();
    history.prepare().await.unwrap();
    assert!(
        store.is_connected(),
        "the history connected the store's client"
    );
    history
        .record_runs(&[record("s-1", "s-job", 0)])
        .await
        .unwrap();
    store.shutdown().await.unwrap();
    // After a shutdown the next call connects again.
    assert_eq!(
        history
            .query_runs(&RunQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.is_connected());
    store.shutdown().await.unwrap();

    let down = MongoDbJobStore::builder("mongodb://127.0.0.1:9/?connectTimeoutMS=200")
        .server_selection_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = down
        .history()
        .query_runs(&RunQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

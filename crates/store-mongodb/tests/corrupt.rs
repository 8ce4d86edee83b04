//! Unreadable documents, the document layout and index creation, against the server
//! at `APS_TEST_MONGODB_URL`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{ErrorKind, Job, JobRelease, JobStore};
use apscheduler_store_mongodb::mongodb::bson::{doc, Bson, Document};
use apscheduler_store_mongodb::MongoDbJobStore;
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};
use serde_json::json;

fn job(id: &str, t: i64) -> Job {
    sample_job(id, Some(at(t)), interval_trigger(60))
}

fn micros(t: i64) -> i64 {
    at(t).timestamp_micros()
}

/// A readable state document for `id`, as the store writes it.
async fn good_state(
    store: &MongoDbJobStore,
    raw: &apscheduler_store_mongodb::mongodb::Collection<Document>,
    id: &str,
) -> Document {
    store.add_job(job(id, 0), false).await.unwrap();
    let document = raw.find_one(doc! {"_id": id}).await.unwrap().unwrap();
    store.remove_job(id).await.unwrap();
    document.get_document("state").unwrap().clone()
}

/// The testkit's shared scheduler check, each store opened anew on one collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_over_store_shared_check() {
    let Some(db) = common::TestDb::new("scheduler_over_store_shared_check") else {
        return;
    };
    apscheduler_testkit::scheduler::check_scheduler_over_store(|| {
        Arc::new(db.store_on("shared_scheduler")) as Arc<dyn JobStore>
    })
    .await;
}

/// Declared jobs across restarts and replicas (`apscheduler_testkit::declared`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_jobs_keep_their_schedule() {
    let Some(db) = common::TestDb::new("declared_jobs_keep_their_schedule") else {
        return;
    };
    apscheduler_testkit::declared::check_declared_jobs(|| {
        Arc::new(db.store_on("declared")) as Arc<dyn JobStore>
    })
    .await;
}

/// Two schedulers 5 s apart on one collection (`apscheduler_testkit::scheduler::check_clock_skew`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_never_starts_a_fire_time_twice() {
    let Some(db) = common::TestDb::new("clock_skew_never_starts_a_fire_time_twice") else {
        return;
    };
    let (ahead, on_time) = apscheduler_testkit::scheduler::check_clock_skew(|| {
        Arc::new(db.store_on("skew")) as Arc<dyn JobStore>
    })
    .await;
    eprintln!("clock skew: runs by the node ahead {ahead}, on time {on_time}");
}

/// The testkit's shared corrupt-job check, with documents planted directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_job_set_aside_shared_check() {
    let Some(db) = common::TestDb::new("corrupt_job_set_aside_shared_check") else {
        return;
    };
    let store = db.store_on("shared_corrupt");
    let raw = db.collection("shared_corrupt").await;
    apscheduler_testkit::store::check_corrupt_job_set_aside(&store, |id, bytes, t| {
        let raw = &raw;
        async move {
            let state = String::from_utf8_lossy(&bytes).into_owned();
            raw.insert_one(doc! {"_id": id, "next_run_time": t, "state": state})
                .await
                .unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_jobs_are_reported_once_marked_and_kept() {
    let Some(db) = common::TestDb::new("corrupt_jobs") else {
        return;
    };
    let store = MongoDbJobStore::builder(&db.url)
        .database(&db.name)
        .collection("corrupt")
        .max_state_bytes(4096)
        .build()
        .unwrap();
    store.start("default").await.unwrap();
    let raw = db.collection("corrupt").await;
    let state = good_state(&store, &raw, "template").await;

    let with = |changes: &[(&str, Bson)]| {
        let mut s = state.clone();
        for (key, value) in changes {
            s.insert(*key, value.clone());
        }
        Bson::Document(s)
    };
    let huge_json = serde_json::to_string(&json!({
        "version": 1, "id": "c-huge", "name": "x".repeat(8000), "task": "noop",
        "trigger": {"type": "date", "run_date": "2100-01-01T00:00:00+00:00"},
        "executor": "default", "misfire_grace_time": null, "coalesce": false,
        "max_instances": 1, "next_run_time": null
    }))
    .unwrap();
    let corrupt: Vec<(&str, Bson)> = vec![
        (
            "c-bad-bson",
            Bson::Document(doc! {"version": 1, "id": "c-bad-bson"}),
        ),
        ("c-bad-json", Bson::String("{\"version\": 1, ".into())),
        ("c-huge", Bson::String(huge_json)),
        ("c-not-a-state", Bson::Int32(42)),
        (
            "c-unknown-trigger",
            with(&[
                ("id", "c-unknown-trigger".into()),
                ("trigger", doc! {"type": "lunar"}.into()),
            ]),
        ),
        (
            "c-version",
            with(&[("id", "c-version".into()), ("version", Bson::Int64(99))]),
        ),
    ];
    for (id, state) in &corrupt {
        raw.insert_one(doc! {"_id": *id, "next_run_time": micros(1), "state": state.clone()})
            .await
            .unwrap();
    }
    store.add_job(job("good", 2), false).await.unwrap();
    store.add_job(job("later", 50), false).await.unwrap();

    // Listing skips them; lookup reports them.
    let listed: Vec<String> = store
        .get_all_jobs()
        .await
        .unwrap()
        .iter()
        .map(|j| j.id.to_string())
        .collect();
    assert_eq!(listed, ["good", "later"]);
    for (id, _) in &corrupt {
        let err = store.lookup_job(id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization, "{id}: {err}");
        assert!(err.message().contains(id), "{err}");
    }

    // The claim reports every one of them once, in order, and returns the good job.
    let acquired = store
        .acquire_due_jobs("s1", utc(10), 100, Duration::from_secs(1))
        .await
        .unwrap();
    let ids: Vec<&str> = acquired.jobs.iter().map(|j| &*j.id).collect();
    assert_eq!(ids, ["good"]);
    let reported: Vec<&str> = acquired.corrupt.iter().map(|c| c.id.as_str()).collect();
    let expected: Vec<&str> = corrupt.iter().map(|(id, _)| *id).collect();
    assert_eq!(reported, expected);
    let reason = |id: &str| {
        acquired
            .corrupt
            .iter()
            .find(|c| c.id == id)
            .unwrap()
            .error
            .clone()
    };
    assert!(
        reason("c-huge").contains("over this store's limit of 4096 bytes"),
        "{}",
        reason("c-huge")
    );
    assert!(
        reason("c-bad-json").contains("invalid state JSON"),
        "{}",
        reason("c-bad-json")
    );
    assert!(
        reason("c-bad-bson").contains("invalid state"),
        "{}",
        reason("c-bad-bson")
    );
    assert!(
        reason("c-not-a-state").contains("not a document, a JSON string or binary data"),
        "{}",
        reason("c-not-a-state")
    );
    assert!(
        reason("c-unknown-trigger").contains("lunar"),
        "{}",
        reason("c-unknown-trigger")
    );
    assert!(
        reason("c-version").contains("unknown format version 99"),
        "{}",
        reason("c-version")
    );

    // Marked, unleased, left in place.
    for (id, _) in &corrupt {
        let document = raw
            .find_one(doc! {"_id": *id})
            .await
            .unwrap()
            .expect("kept");
        assert_eq!(document.get_str("corrupt").ok(), Some(reason(id).as_str()));
        assert!(!document.contains_key("lease_holder") && !document.contains_key("lease_expires"));
    }

    // Never due again, for anyone, however late; not part of the next run time. (The
    // 1 s lease on good runs on the server's clock: let it end.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = store
        .acquire_due_jobs("s2", utc(1000), 100, LEASE)
        .await
        .unwrap();
    assert!(
        again.corrupt.is_empty(),
        "reported twice: {:?}",
        again.corrupt
    );
    let ids: Vec<&str> = again.jobs.iter().map(|j| &*j.id).collect();
    assert_eq!(
        ids,
        ["good", "later"],
        "the expired lease of good is reclaimable"
    );
    store
        .release_jobs(
            "s2",
            again
                .jobs
                .iter()
                .map(|j| JobRelease::Remove(j.id.clone()))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(store.get_next_run_time().await.unwrap(), None);
    assert_eq!(
        raw.count_documents(doc! {}).await.unwrap(),
        corrupt.len() as u64
    );

    // A good state stored over a corrupt job puts it back in service.
    store.update_job(job("c-bad-json", 3)).await.unwrap();
    let repaired = raw
        .find_one(doc! {"_id": "c-bad-json"})
        .await
        .unwrap()
        .unwrap();
    assert!(!repaired.contains_key("corrupt"));
    let back = store
        .acquire_due_jobs("s3", utc(3), 100, LEASE)
        .await
        .unwrap();
    assert_eq!(back.jobs.len(), 1);
    assert_eq!(&*back.jobs[0].id, "c-bad-json");

    // remove_job and remove_all_jobs delete them like any job.
    store.remove_job("c-version").await.unwrap();
    store.remove_all_jobs().await.unwrap();
    assert_eq!(raw.count_documents(doc! {}).await.unwrap(), 0);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_layout_and_indexes() {
    let Some(db) = common::TestDb::new("document_layout") else {
        return;
    };
    let store = db.store_on("layout");
    store.start("default").await.unwrap();
    // start is idempotent, also from another store on the same collection.
    store.start("default").await.unwrap();
    let other = db.store_on("layout");
    other.start("default").await.unwrap();
    let raw = db.collection("layout").await;
    let names = raw.list_index_names().await.unwrap();
    assert!(names.iter().any(|n| n == "aps_next_run_time"), "{names:?}");
    assert!(names.iter().any(|n| n == "aps_lease_expires"), "{names:?}");

    let with_args = Job {
        args: Arc::new(vec![json!(1), json!("two")]),
        ..job("plain", 5)
    };
    store.add_job(with_args, false).await.unwrap();
    let document = raw.find_one(doc! {"_id": "plain"}).await.unwrap().unwrap();
    assert_eq!(document.get_i64("next_run_time").unwrap(), micros(5));
    let state = document.get_document("state").unwrap();
    assert_eq!(state.get_str("task").unwrap(), "noop");
    assert_eq!(state.get_str("id").unwrap(), "plain");
    assert_eq!(
        state
            .get_document("trigger")
            .unwrap()
            .get_str("type")
            .unwrap(),
        "interval"
    );
    assert_eq!(state.get_array("args").unwrap().len(), 2);
    assert!(!document.contains_key("lease_holder"));
    assert!(!document.contains_key("corrupt"));

    // A state that is not plain BSON is kept as JSON text, and read back.
    let odd = Job {
        args: Arc::new(vec![json!(u64::MAX)]),
        ..job("odd", 6)
    };
    store.add_job(odd, false).await.unwrap();
    let document = raw.find_one(doc! {"_id": "odd"}).await.unwrap().unwrap();
    let text = document.get_str("state").unwrap();
    assert!(text.contains("18446744073709551615"), "{text}");
    assert_eq!(
        *store.lookup_job("odd").await.unwrap().unwrap().args,
        [json!(u64::MAX)]
    );

    // Paused: null.
    store
        .add_job(sample_job("paused", None, interval_trigger(60)), false)
        .await
        .unwrap();
    let document = raw.find_one(doc! {"_id": "paused"}).await.unwrap().unwrap();
    assert_eq!(document.get("next_run_time"), Some(&Bson::Null));

    // Claimed: the lease fields; released: gone. The lease runs from the server's
    // time (`hello`'s localTime; the same machine's clock here), not from the
    // caller's `now` (2100).
    let admin = db.client().await.database("admin");
    let server_time = || async {
        let reply = admin.run_command(doc! {"hello": 1}).await.unwrap();
        reply.get_datetime("localTime").unwrap().timestamp_millis() * 1000
    };
    let before = server_time().await;
    let claimed = store
        .acquire_due_jobs("node-a", utc(5), 1, LEASE)
        .await
        .unwrap();
    let after = server_time().await;
    assert_eq!(claimed.jobs.len(), 1);
    let document = raw.find_one(doc! {"_id": "plain"}).await.unwrap().unwrap();
    assert_eq!(document.get_str("lease_holder").unwrap(), "node-a");
    assert_eq!(document.get_str("lease_token").unwrap().len(), 32);
    let expires = document.get_i64("lease_expires").unwrap();
    let lease = LEASE.as_micros() as i64;
    assert!(
        (before + lease..=after + lease).contains(&expires),
        "the lease ends {LEASE:?} after the server's time: {expires} not within \
         [{before}, {after}] + {lease}"
    );
    assert_ne!(expires, micros(5) + lease, "not from the caller's clock");
    let job = Job {
        next_run_time: Some(at(65)),
        ..claimed.jobs[0].clone()
    };
    store
        .release_jobs("node-a", vec![JobRelease::Update(job)])
        .await
        .unwrap();
    let document = raw.find_one(doc! {"_id": "plain"}).await.unwrap().unwrap();
    for field in ["lease_holder", "lease_expires", "lease_token"] {
        assert!(!document.contains_key(field), "{field} left after release");
    }
    assert_eq!(document.get_i64("next_run_time").unwrap(), micros(65));

    store.shutdown().await.unwrap();
    assert!(!store.is_connected());
    // Used again after shutdown: it connects again.
    assert_eq!(store.get_all_jobs().await.unwrap().len(), 3);
    store.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
}

/// A store sharing an application's client leaves it open on shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_client() {
    let Some(db) = common::TestDb::new("shared_client") else {
        return;
    };
    let client = db.client().await;
    let store = MongoDbJobStore::builder_with_client(client.clone())
        .database(&db.name)
        .build()
        .unwrap();
    assert_eq!(store.collection(), "jobs");
    store.start("default").await.unwrap();
    store.add_job(job("a", 1), false).await.unwrap();
    store.shutdown().await.unwrap();
    let count = client
        .database(&db.name)
        .collection::<Document>("jobs")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(count, 1, "the shared client still works");
}

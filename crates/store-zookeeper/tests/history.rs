//! The run history against ZooKeeper (`APS_TEST_ZOOKEEPER_URL`): the shared conformance
//! suite (`apscheduler_testkit::history::run_all`) on a fresh root path, a record
//! damaged behind the store's back; a record in the format of an earlier release.

mod common;

use apscheduler_core::{ErrorKind, JobStore, RunQuery};
use zookeeper_client::{Acls, Client, CreateMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_history_conformance() {
    let Some(hosts) = common::zk_hosts("run_history_conformance") else {
        return;
    };
    let store = common::store(&hosts, &common::fresh_path());
    apscheduler_testkit::history::run_all(store.run_history().expect("ZooKeeper keeps history"))
        .await;
    store.shutdown().await.expect("shutdown");
}

/// A record znode holding garbage (planted where the store keeps the job's records):
/// queries fail with a `Serialization` error naming it, and it is not deleted, neither
/// by the query nor by pruning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_record_is_reported_and_kept() {
    let Some(hosts) = common::zk_hosts("corrupt_record_is_reported_and_kept") else {
        return;
    };
    let path = common::fresh_path();
    let store = common::store(&hosts, &path);
    let history = store.run_history().expect("ZooKeeper keeps history");
    history.prepare().await.expect("prepare");
    let good = apscheduler_testkit::history::record("good-1", "damaged-job", 10);
    history.record_runs(&[good]).await.expect("record");

    // `<root>/history/jobs/<job>/<key>-<run>`, the key being scheduled_at in UTC
    // microseconds with the sign bit flipped, 20 digits (see src/layout.rs).
    let at = apscheduler_testkit::history::base().timestamp_micros();
    let key = (at as u64) ^ (1 << 63);
    let bad = format!("{path}/history/jobs/damaged-job/{key:020}-bad-1");
    let client = Client::connect(&hosts).await.expect("connect");
    client
        .create(
            &bad,
            b"\xff\x00 not json {",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .expect("plant the damaged record");

    let query = RunQuery {
        job_id: Some("damaged-job".into()),
        ..RunQuery::default()
    };
    let err = history.query_runs(&query).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(err.to_string().contains(&bad), "names the znode: {err}");
    let err = history.query_runs(&RunQuery::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");

    // Pruning everything ended leaves it.
    history
        .prune_job_runs("damaged-job", 0)
        .await
        .expect("prune by count");
    history
        .prune_runs_before(apscheduler_testkit::history::base() + chrono::Duration::days(1))
        .await
        .expect("prune by age");
    let (data, _) = client.get_data(&bad).await.expect("still there");
    assert_eq!(data, b"\xff\x00 not json {");
    store.shutdown().await.expect("shutdown");
}

/// A record znode as the earlier release wrote it (its JSON without `attempt`,
/// `backfill` and `due_at`) reads as attempt 1, not a backfill, with no due time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_format_record_reads_with_defaults() {
    use apscheduler_testkit::history_fields::{check_old_format_record, old_format_record};
    let Some(hosts) = common::zk_hosts("an_old_format_record_reads_with_defaults") else {
        return;
    };
    let path = common::fresh_path();
    let store = common::store(&hosts, &path);
    let history = store.run_history().expect("ZooKeeper keeps history");
    history.prepare().await.expect("prepare");
    let old = old_format_record();
    history
        .record_runs(std::slice::from_ref(&old))
        .await
        .expect("record");

    // Rewrite the record znode in the old format (same place, see the test above).
    let key = (old.scheduled_at.timestamp_micros() as u64) ^ (1 << 63);
    let znode = format!(
        "{path}/history/jobs/{}/{key:020}-{}",
        old.job_id, old.run_id
    );
    let mut json = serde_json::to_value(&old).expect("JSON");
    let fields = json.as_object_mut().expect("an object");
    for added in ["attempt", "backfill", "due_at"] {
        fields.remove(added);
    }
    let client = Client::connect(&hosts).await.expect("connect");
    let (before, _) = client.get_data(&znode).await.expect("the record znode");
    assert!(
        String::from_utf8_lossy(&before).contains("\"attempt\":1"),
        "the znode holds the record"
    );
    client
        .set_data(&znode, &serde_json::to_vec(&json).expect("JSON"), None)
        .await
        .expect("rewrite the record in the old format");
    check_old_format_record(&*history).await;
    store.shutdown().await.expect("shutdown");
}

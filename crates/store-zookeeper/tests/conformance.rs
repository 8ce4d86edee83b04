//! The whole job store conformance suite against ZooKeeper (`APS_TEST_ZOOKEEPER_URL`),
//! plus the shared restart, corrupt-job and scheduler checks.

mod common;

use std::sync::Arc;

use apscheduler_core::JobStore;
use zookeeper_client::{Acls, Client, CreateMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let Some(hosts) = common::zk_hosts("conformance") else {
        return;
    };
    apscheduler_testkit::store::run_all(move || {
        let store = common::store(&hosts, &common::fresh_path());
        async move { store }
    })
    .await;
}

/// The testkit's shared restart check: two stores on one root path, the first shut
/// down before the second opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_restart() {
    let Some(hosts) = common::zk_hosts("survives_restart") else {
        return;
    };
    let path = common::fresh_path();
    let (first, second) = (common::store(&hosts, &path), common::store(&hosts, &path));
    apscheduler_testkit::store::check_survives_restart(&first, &second).await;
}

/// A damaged job znode (a valid header, a state that is not a job), planted behind the
/// store's back with its index entry, is reported once and set aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_job_set_aside() {
    let Some(hosts) = common::zk_hosts("corrupt_job_set_aside") else {
        return;
    };
    let path = common::fresh_path();
    let store = common::store(&hosts, &path);
    let client = Client::connect(&hosts).await.expect("connect");
    let plant = |id: String, bytes: Vec<u8>, run: i64| {
        let (client, path) = (client.clone(), path.clone());
        async move {
            let mut data = format!("{{\"next\":{run}}}\n").into_bytes();
            data.extend_from_slice(&bytes);
            plant_job(&client, &path, &id, &data, run).await;
        }
    };
    apscheduler_testkit::store::check_corrupt_job_set_aside(&store, plant).await;
    let corrupt = store.corrupt_jobs().await.expect("corrupt_jobs");
    assert!(corrupt.is_empty(), "repaired, so none is left: {corrupt:?}");
}

/// Writes a job znode with `data` and its index entry for `run`, behind the store's
/// back, as the store lays them out (see src/layout.rs).
async fn plant_job(client: &Client, path: &str, id: &str, data: &[u8], run: i64) {
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client
        .create(&format!("{path}/jobs/{id}"), data, &opts)
        .await
        .expect("plant the job");
    let shifted = (run as u64) ^ (1 << 63);
    let shard = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    }) % 16;
    let day = format!("{path}/runs/{:010}", shifted / 86_400_000_000);
    let hour = format!("{day}/{:011}", shifted / 3_600_000_000);
    let bucket = format!("{hour}/{:012}-{shard:x}", shifted / 60_000_000);
    client.mkdir(&bucket, &opts).await.expect("index folders");
    client
        .create(&format!("{bucket}/{shifted:020}-{id}"), b"", &opts)
        .await
        .expect("plant the index entry");
}

/// A job znode whose header line itself cannot be read (written by something else) is
/// reported once by the claim that finds it, marked, kept with its bytes, and good jobs
/// keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_header_set_aside() {
    use apscheduler_core::ErrorKind;
    use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};

    let Some(hosts) = common::zk_hosts("unreadable_header_set_aside") else {
        return;
    };
    let path = common::fresh_path();
    let store = common::store(&hosts, &path);
    store.start("default").await.expect("start");
    store
        .add_job(sample_job("good", Some(at(1)), interval_trigger(60)), false)
        .await
        .expect("add");
    let client = Client::connect(&hosts).await.expect("connect");
    let run = apscheduler_core::time::micros::run_time(&at(1));
    plant_job(&client, &path, "raw", b"no header at all", run).await;

    let first = store
        .acquire_due_jobs("s1", utc(10), 10, LEASE)
        .await
        .expect("claim");
    let ids: Vec<&str> = first.jobs.iter().map(|j| &*j.id).collect();
    assert_eq!(ids, ["good"], "good jobs keep running");
    assert_eq!(first.corrupt.len(), 1, "{:?}", first.corrupt);
    assert_eq!(first.corrupt[0].id, "raw");
    assert!(
        first.corrupt[0].error.contains("header"),
        "{:?}",
        first.corrupt
    );

    let second = store
        .acquire_due_jobs("s2", utc(100), 10, LEASE)
        .await
        .expect("claim");
    assert!(
        second.corrupt.is_empty(),
        "reported once: {:?}",
        second.corrupt
    );
    let err = store.lookup_job("raw").await.expect_err("kept, unreadable");
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    let (data, _) = client
        .get_data(&format!("{path}/jobs/raw"))
        .await
        .expect("the znode is kept");
    assert!(
        data.ends_with(b"no header at all"),
        "its bytes are kept after the marking header"
    );
    let corrupt = store.corrupt_jobs().await.expect("corrupt_jobs");
    assert_eq!(corrupt.len(), 1, "{corrupt:?}");
    store.remove_all_jobs().await.expect("clean up");
}

/// The testkit's scheduler checks over the store: fire times run, next run times
/// outlive a scheduler, misfires after downtime, two schedulers run each fire time once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_over_store() {
    let Some(hosts) = common::zk_hosts("scheduler_over_store") else {
        return;
    };
    let path = common::fresh_path();
    apscheduler_testkit::scheduler::check_scheduler_over_store(|| {
        Arc::new(common::store(&hosts, &path)) as Arc<dyn JobStore>
    })
    .await;
}

/// A running scheduler that sleeps with nothing to do is woken by the store's watch when
/// another process adds a due job: it runs it at once instead of never.
#[test]
fn a_job_added_elsewhere_wakes_a_sleeping_scheduler() {
    use std::time::{Duration, Instant};

    use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};

    let Some(hosts) = common::zk_hosts("a_job_added_elsewhere_wakes_a_sleeping_scheduler") else {
        return;
    };
    let path = common::fresh_path();
    let scheduler = BackgroundScheduler::from_builder(
        Engine::builder().jobstore("default", Arc::new(common::store(&hosts, &path))),
    )
    .expect("scheduler");
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    scheduler.register_task("count", move |_| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(serde_json::json!(null))
    });
    scheduler.start(false).expect("start");
    // Let the scheduler finish its first pass over the empty store and go to sleep.
    std::thread::sleep(Duration::from_millis(500));

    // "Another process": a second store on the same path, a second scheduler's registry.
    let other = BackgroundScheduler::from_builder(
        Engine::builder().jobstore("default", Arc::new(common::store(&hosts, &path))),
    )
    .expect("scheduler");
    other.register_task("count", |_| Ok(serde_json::json!(null)));
    other.start(true).expect("start paused: it never runs jobs");
    other
        .add_job(JobSpec::task("count").id("from-elsewhere"))
        .expect("add from the other process");
    let added = Instant::now();
    while runs.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            added.elapsed() < Duration::from_secs(5),
            "the sleeping scheduler was not woken by the watch"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "woken and ran the job {:?} after it was added elsewhere",
        added.elapsed()
    );
    other.shutdown(false).expect("shutdown");
    scheduler.shutdown(true).expect("shutdown");
}

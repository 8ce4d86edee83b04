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

/// Declared jobs across restarts and replicas (`apscheduler_testkit::declared`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_jobs_keep_their_schedule() {
    let Some(hosts) = common::zk_hosts("declared_jobs_keep_their_schedule") else {
        return;
    };
    let path = common::fresh_path();
    apscheduler_testkit::declared::check_declared_jobs(|| {
        Arc::new(common::store(&hosts, &path)) as Arc<dyn JobStore>
    })
    .await;
}

/// Two schedulers 5 s apart on one root path (`apscheduler_testkit::scheduler::check_clock_skew`):
/// leases run on the server's clock here, so the one ahead never takes a live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_never_starts_a_fire_time_twice() {
    let Some(hosts) = common::zk_hosts("clock_skew_never_starts_a_fire_time_twice") else {
        return;
    };
    let path = common::fresh_path();
    let (ahead, on_time) = apscheduler_testkit::scheduler::check_clock_skew(|| {
        Arc::new(common::store(&hosts, &path)) as Arc<dyn JobStore>
    })
    .await;
    eprintln!("clock skew: runs by the node ahead {ahead}, on time {on_time}");
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

/// Leases run on the ZooKeeper server's clock: a claim (with a caller's `now` in 2100)
/// and an extension lease until the modification time of `P/clock`, which they write,
/// plus the lease; another claimer for which the job is due, its clock far past the
/// lease's end, does not take the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_run_on_the_servers_clock() {
    use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};

    let Some(hosts) = common::zk_hosts("leases_run_on_the_servers_clock") else {
        return;
    };
    let path = common::fresh_path();
    let store = common::store(&hosts, &path);
    store.start("default").await.expect("start");
    assert!(store.capabilities().store_clock);
    store
        .add_job(sample_job("a", Some(at(1)), interval_trigger(60)), false)
        .await
        .expect("add");
    let client = Client::connect(&hosts).await.expect("connect");
    let lease_us = LEASE.as_micros() as i64;
    // The lease's end in the job's header, and the server's time last read by the store.
    let lease_and_clock = || async {
        let (data, _) = client
            .get_data(&format!("{path}/jobs/a"))
            .await
            .expect("the job");
        let line = data.split(|&b| b == b'\n').next().expect("a header line");
        let header: serde_json::Value = serde_json::from_slice(line).expect("JSON header");
        let (_, clock) = client
            .get_data(&format!("{path}/clock"))
            .await
            .expect("the clock znode");
        (
            header["expires"].as_i64().expect("leased"),
            clock.mtime * 1000,
        )
    };

    let claimed = store
        .acquire_due_jobs("s1", utc(10), 10, LEASE)
        .await
        .expect("claim");
    assert_eq!(claimed.jobs.len(), 1);
    let (expires, clock) = lease_and_clock().await;
    assert_eq!(
        expires,
        clock + lease_us,
        "the lease ends LEASE after the server's time"
    );
    let wall = chrono::Utc::now().timestamp_micros();
    assert!(
        (clock - wall).abs() < 10_000_000,
        "the server's time ({clock}) is this machine's ({wall}), not the caller's 2100"
    );

    // A claimer whose clock (2100, an hour after the job's fire time) is far past the
    // lease's end (now plus a minute): the job is due for it, but the lease is live on
    // the server's clock, so it is not taken. A job due and free, added beside it, is:
    // the claim itself works at that time.
    store
        .add_job(sample_job("b", Some(at(1)), interval_trigger(60)), false)
        .await
        .expect("add");
    let ahead = utc(3600);
    assert!(ahead.timestamp_micros() > expires + 3_600_000_000);
    let other = store
        .acquire_due_jobs("s2", ahead, 10, LEASE)
        .await
        .expect("claim");
    let ids: Vec<&str> = other.jobs.iter().map(|j| &*j.id).collect();
    assert_eq!(
        ids,
        ["b"],
        "a live lease was taken, or the free job was not"
    );

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    store
        .extend_leases("s1", &[claimed.jobs[0].id.clone()], utc(10), LEASE)
        .await
        .expect("extend");
    let (extended, clock2) = lease_and_clock().await;
    assert!(clock2 > clock, "the extension read the server's time again");
    assert_eq!(
        extended,
        clock2 + lease_us,
        "extended from the server's time"
    );
    store.remove_all_jobs().await.expect("clean up");
}

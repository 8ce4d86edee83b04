//! Change streams against the server at `APS_TEST_MONGODB_URL` (SecantusDB in CI, which
//! offers them, as a replica set does): what wakes a listening store, and what does not.

mod common;

use std::time::{Duration, Instant};

use apscheduler_core::{JobRelease, JobStore};
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, ListenerProbe, LEASE};

/// Another store's add, update and remove wake the listening store at once; claims,
/// lease extensions and a release it does not wait for do not; while no stream is open the store does not
/// declare notifications (the scheduler polls), and a stream the server ends (the
/// collection dropped) is opened again, with the listener called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_stream_wakes_listening_stores() {
    let Some(db) = common::TestDb::new("change_stream_wakes_listening_stores") else {
        return;
    };
    let listening = db.store_on("changes");
    let writer = db.store_on("changes");
    assert!(
        !listening.capabilities().notifications,
        "no notifications before a stream is open"
    );
    let probe = ListenerProbe::default();
    listening.set_change_listener(probe.listener());
    listening.start("default").await.unwrap();
    writer.start("default").await.unwrap();
    let after = |before, what| probe.after(before, what);
    let settle = || probe.settle();

    after(0, "the stream opening").await;
    assert!(listening.capabilities().notifications, "a stream is open");
    let mut count = settle().await;
    let mut delays = Vec::new();

    writer
        .add_job(sample_job("n", Some(at(0)), interval_trigger(60)), false)
        .await
        .unwrap();
    delays.push(after(count, "another store's add").await);
    count = settle().await;

    let mut job = sample_job("n", Some(at(30)), interval_trigger(60));
    job.name = "renamed".into();
    writer.update_job(job).await.unwrap();
    delays.push(after(count, "another store's update").await);
    count = settle().await;

    // Claims and extensions only touch the lease: nobody is woken.
    let claimed = writer
        .acquire_due_jobs("other", utc(30), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.jobs.len(), 1);
    writer
        .extend_leases("other", &[claimed.jobs[0].id.clone()], utc(30), LEASE)
        .await
        .unwrap();
    assert_eq!(
        settle().await,
        count,
        "a claim or an extension woke a store"
    );

    let mut next = claimed.jobs[0].clone();
    next.next_run_time = Some(at(60));
    let released = writer
        .release_jobs("other", vec![JobRelease::Update(next)])
        .await
        .unwrap();
    assert!(released.lost.is_empty() && released.refused.is_empty());
    assert_eq!(
        settle().await,
        count,
        "a release the store does not wait for woke it"
    );

    writer.remove_job("n").await.unwrap();
    delays.push(after(count, "another store's remove").await);
    count = settle().await;
    eprintln!("change stream: heard after {delays:?}");

    // The server ends the stream (the collection is dropped): the listener is called
    // (the drop, the end), and the stream opens again, so later changes are heard.
    db.collection("changes").await.drop().await.unwrap();
    after(count, "the stream's end").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        count = settle().await;
        if listening.capabilities().notifications {
            break;
        }
        assert!(Instant::now() < deadline, "the stream did not open again");
    }
    writer
        .add_job(sample_job("m", Some(at(0)), interval_trigger(60)), false)
        .await
        .unwrap();
    after(count, "an add after the stream opened again").await;

    listening.shutdown().await.unwrap();
    assert!(
        !listening.capabilities().notifications,
        "no notifications once shut down"
    );
    writer.shutdown().await.unwrap();
}

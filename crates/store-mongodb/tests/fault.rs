//! A release whose reply is lost as the server dies: a TCP proxy between the store and a
//! private MongoDB-wire server (SecantusDB, its data on disk) passes the release's
//! update through, holds back the server's reply, SIGKILLs the server and closes the
//! store's connection. The driver sends the write again (a retryable write) once the
//! server is back. The restarted server kept the write but not its record of retried
//! writes, so the second attempt matches nothing: the store must still report the job
//! released (its first attempt applied), never lost, or its fire time would be
//! started by no scheduler.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::{JobRelease, JobStore};
use apscheduler_store_mongodb::MongoDbJobStore;
use apscheduler_testkit::server::{in_ci, random_namespace, skip_notice, PrivateMongo};
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the next message carrying a release token.
struct Trap {
    /// Set until the trap has fired.
    armed: AtomicBool,
    /// The server, killed and restarted by the trap.
    server: Mutex<PrivateMongo>,
}

/// Forwards `client` to the server on `port`, springing `trap` on the first release
/// write it sees.
async fn relay(mut client: TcpStream, port: u16, trap: Arc<Trap>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    let (mut from_server, mut to_server) = server.into_split();
    let (mut from_client, mut to_client) = client.split();
    let hold = AtomicBool::new(false);
    let upstream = async {
        loop {
            // A wire message: its length (little-endian, header included), then the rest.
            let mut header = [0u8; 4];
            if from_client.read_exact(&mut header).await.is_err() {
                return;
            }
            let len = u32::from_le_bytes(header) as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            if from_client.read_exact(&mut body).await.is_err() {
                return;
            }
            let release = body.windows(13).any(|w| w == b"release_token");
            let spring = release && trap.armed.swap(false, Ordering::SeqCst);
            if spring {
                hold.store(true, Ordering::SeqCst);
            }
            if to_server.write_all(&header).await.is_err()
                || to_server.write_all(&body).await.is_err()
            {
                return;
            }
            if spring {
                // The server applies the write (durable at commit) and answers; the
                // answer is held back, the server dies, and this connection ends.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut server = trap.server.lock().unwrap();
                server.kill();
                server.start();
                return;
            }
        }
    };
    let downstream = async {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if hold.load(Ordering::SeqCst) {
                continue;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side ending ends the connection: the store sees it drop.
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_applied_before_its_reply_was_lost_is_not_reported_lost() {
    // Under CI the shared server's variable is set, and so is SecantusDB installed.
    if common::url("a_release_applied_before_its_reply_was_lost_is_not_reported_lost").is_none() {
        return;
    }
    let Some(server) = PrivateMongo::new() else {
        assert!(
            !in_ci(),
            "SecantusDB is not installed: this fault test cannot run in CI"
        );
        skip_notice("a_release_applied_before_its_reply_was_lost_is_not_reported_lost (apscheduler-store-mongodb): SecantusDB is not installed (scripts/start-mongo-wire.sh)");
        return;
    };
    let port = server
        .url("x")
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("the private server's port");
    let trap = Arc::new(Trap {
        armed: AtomicBool::new(false),
        server: Mutex::new(server),
    });
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = proxy.local_addr().unwrap().port();
    let relaying = trap.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = proxy.accept().await {
            tokio::spawn(relay(client, port, relaying.clone()));
        }
    });

    let store = MongoDbJobStore::builder(format!(
        "mongodb://127.0.0.1:{proxy_port}/?directConnection=true"
    ))
    .database(random_namespace())
    .server_selection_timeout(Duration::from_secs(30))
    .build()
    .unwrap();
    store
        .add_job(sample_job("job", Some(at(0)), interval_trigger(60)), false)
        .await
        .unwrap();
    let claimed = store
        .acquire_due_jobs("s1", utc(5), 10, Duration::from_secs(30))
        .await
        .unwrap()
        .jobs;
    assert_eq!(claimed.len(), 1);
    let mut next = claimed[0].clone();
    next.next_run_time = Some(at(60));

    trap.armed.store(true, Ordering::SeqCst);
    let released = store
        .release_jobs("s1", vec![JobRelease::Update(next)])
        .await
        .expect("the release, sent again once the server is back");
    assert!(
        !trap.armed.load(Ordering::SeqCst),
        "the proxy never saw the release's write"
    );
    assert!(
        released.lost.is_empty(),
        "the release applied at its first attempt was reported lost: {:?}",
        released.lost
    );
    let stored = store.lookup_job("job").await.unwrap().unwrap();
    assert_eq!(stored.next_run_time, Some(at(60)));
}

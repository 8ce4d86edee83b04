//! Shared by the integration tests: the server URL from `APS_TEST_MONGODB_URL`, a
//! database of the test's own, dropped at the end.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apscheduler_store_mongodb::mongodb::{self, bson::Document};
use apscheduler_store_mongodb::MongoDbJobStore;

/// The environment variable naming the server.
pub const URL_VAR: &str = "APS_TEST_MONGODB_URL";

/// The server URL; `None` (after a visible notice) when it is not set outside CI: the
/// testkit's one rule ([`apscheduler_testkit::server`]).
///
/// # Panics
/// When it is not set under CI.
pub fn url(test: &str) -> Option<String> {
    apscheduler_testkit::server::server_url(
        URL_VAR,
        "mongodb://127.0.0.1:27117/?directConnection=true (scripts/start-mongo-wire.sh)",
        test,
    )
}

/// A database of this test run's own (`aps_test_<random>`), dropped when this is
/// dropped, also when the test fails.
pub struct TestDb {
    pub url: String,
    pub name: String,
    counter: AtomicUsize,
}

impl TestDb {
    /// `None` when the tests are skipped (see [`url`]).
    pub fn new(test: &str) -> Option<Self> {
        let url = url(test)?;
        let name = apscheduler_testkit::server::random_namespace();
        Some(TestDb {
            url,
            name,
            counter: AtomicUsize::new(0),
        })
    }

    /// A new, unstarted store on a fresh collection of this database.
    pub fn store(&self) -> MongoDbJobStore {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.store_on(&format!("jobs_{n:03}"))
    }

    /// A new, unstarted store on `collection` of this database.
    pub fn store_on(&self, collection: &str) -> MongoDbJobStore {
        MongoDbJobStore::builder(&self.url)
            .database(&self.name)
            .collection(collection)
            .server_selection_timeout(Duration::from_secs(10))
            .build()
            .expect("a valid store configuration")
    }

    /// A plain driver client, to look at or tamper with documents.
    pub async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(&self.url)
            .await
            .expect("a client for the test server")
    }

    /// The raw collection behind a store.
    pub async fn collection(&self, collection: &str) -> mongodb::Collection<Document> {
        self.client()
            .await
            .database(&self.name)
            .collection(collection)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        // Drop may run inside the test's runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let client = mongodb::Client::with_uri_str(&url).await?;
                client.database(&name).drop().await?;
                client.shutdown().immediate(true).await;
                Ok::<_, mongodb::error::Error>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!(
                "warning: could not drop the test database {}: {e}",
                self.name
            ),
            Err(_) => eprintln!("warning: could not drop the test database {}", self.name),
        }
    }
}

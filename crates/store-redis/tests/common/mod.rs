//! Shared by the Redis tests: where Redis is, fresh key prefixes, clean-up.
#![allow(dead_code, unreachable_pub)]

use std::sync::Mutex;

use apscheduler_store_redis::RedisJobStore;

/// The variable naming the test server.
pub const URL_VAR: &str = "APS_TEST_REDIS_URL";

/// The Redis URL for tests, by the testkit's one rule ([`apscheduler_testkit::server`]):
/// `None` (after a visible notice) when `APS_TEST_REDIS_URL` is unset outside CI.
///
/// # Panics
/// When it is unset under CI.
pub fn redis_url(test: &str) -> Option<String> {
    apscheduler_testkit::server::server_url(URL_VAR, "redis://127.0.0.1:6379/", test)
}

/// A key prefix no other test uses.
pub fn fresh_prefix() -> String {
    format!("{}.", apscheduler_testkit::server::random_namespace())
}

/// A store on a fresh prefix.
pub fn store(url: &str, prefix: &str) -> RedisJobStore {
    RedisJobStore::builder(url)
        .prefix(prefix)
        .build()
        .expect("build the store")
}

/// A plain connection for raw commands.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test Redis")
}

/// Deletes every key under the prefixes (SCAN, so keys added later are covered too;
/// UNLINK, so large sets are freed in the background instead of blocking past the
/// connection's response time-out).
pub async fn delete_keys(url: &str, prefixes: &[String]) {
    let mut conn = raw(url).await;
    for prefix in prefixes {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .expect("SCAN");
            if !keys.is_empty() {
                let _: i64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .expect("UNLINK");
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

/// Deletes the keys of every prefix it hands out when dropped, also when the test
/// panics.
pub struct Prefixes {
    url: String,
    used: Mutex<Vec<String>>,
}

impl Prefixes {
    pub fn new(url: &str) -> Self {
        Prefixes {
            url: url.to_owned(),
            used: Mutex::new(Vec::new()),
        }
    }

    /// A fresh prefix, deleted at the end.
    pub fn fresh(&self) -> String {
        let prefix = fresh_prefix();
        self.used.lock().unwrap().push(prefix.clone());
        prefix
    }
}

impl Drop for Prefixes {
    fn drop(&mut self) {
        let url = self.url.clone();
        let used = std::mem::take(&mut *self.used.lock().unwrap_or_else(|e| e.into_inner()));
        // Drop may run inside a runtime: clean up from a thread with its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(delete_keys(&url, &used));
        });
        if cleanup.join().is_err() {
            eprintln!("warning: could not delete the test keys");
        }
    }
}

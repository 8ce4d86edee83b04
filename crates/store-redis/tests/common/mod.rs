//! Shared by the Redis tests: where Redis is, fresh key prefixes, clean-up.
#![allow(dead_code, unreachable_pub)]

use std::sync::Mutex;

use apscheduler_store_redis::RedisJobStore;

/// The variable naming the test server.
pub const URL_VAR: &str = "APS_TEST_REDIS_URL";

/// The Redis URL for tests, from `APS_TEST_REDIS_URL`. When it is unset: under CI
/// (`CI=true`) the test fails; otherwise it prints a notice and the test is skipped
/// (`None`).
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "{test}: {URL_VAR} is not set, and CI=true: set it to a Redis server \
                 (e.g. redis://127.0.0.1:6379/) so the Redis job store is tested"
            );
            eprintln!(
                "note: {test} skipped: set {URL_VAR} (e.g. redis://127.0.0.1:6379/) to run it"
            );
            None
        }
    }
}

/// A key prefix no other test uses.
pub fn fresh_prefix() -> String {
    format!("aps-test.{}.", uuid::Uuid::new_v4().simple())
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

/// Deletes every key under the prefixes (SCAN, so keys added later are covered too).
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
                let _: i64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .expect("DEL");
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

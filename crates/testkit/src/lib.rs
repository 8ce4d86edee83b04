//! # apscheduler-testkit
//!
//! Conformance suites, in the style of `object_store`'s integration module: plain
//! `pub async fn` checks that every job store (and every executor) calls from its own
//! tests, so one contract is proved the same way against every backend.
//!
//! A new store crate gets the whole suite with a few lines in `tests/conformance.rs`,
//! finding its server with the one rule of [`server`] (skip with a visible notice outside
//! CI, fail under CI):
//!
//! ```ignore
//! use apscheduler_testkit::server::{random_namespace, server_url};
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn conformance() {
//!     let Some(url) = server_url("APS_TEST_MYDB_URL", "mydb://127.0.0.1/", "conformance") else { return };
//!     apscheduler_testkit::store::run_all(|| async { MyStore::new(&url, &random_namespace()) }).await;
//! }
//! ```
//!
//! ## Feature flags
//! - `scheduler`: `scheduler::check_scheduler_over_store`, the engine over a store, and
//!   `declared::check_declared_jobs`, declared jobs across restarts and replicas (every
//!   persistent store's tests enable it).

pub mod bench;
#[cfg(feature = "scheduler")]
pub mod declared;
pub mod ensemble;
pub mod executor;
pub mod history;
pub mod history_fields;
pub mod history_starts;
pub mod pg_failover;
pub mod proxy;
pub mod redis_cluster;
#[cfg(feature = "scheduler")]
pub mod round_trips;
#[cfg(feature = "scheduler")]
pub mod scheduler;
pub mod sentinel;
pub mod server;
pub mod store;
pub mod unreachable;

//! # apscheduler-testkit
//!
//! Conformance suites, in the style of `object_store`'s integration module: plain
//! `pub async fn` checks that every job store (and every executor) calls from its own
//! tests, so one contract is proved the same way against every backend.
//!
//! A new store crate gets the whole suite with a few lines in `tests/conformance.rs`:
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     apscheduler_testkit::store::run_all(|| async { MyStore::new(/* fresh namespace */) }).await;
//! }
//! ```
//!
//! ## Feature flags
//! None.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

pub mod executor;
pub mod store;

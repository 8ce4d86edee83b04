//! The executor conformance suite, run against [`AsyncExecutor`]: with its own runtime
//! (started outside any runtime) and with a concurrency limit.

use std::sync::Arc;

use apscheduler_executor_async::AsyncExecutor;
use apscheduler_testkit::executor as suite;

#[test]
fn conformance_own_runtime() {
    suite::run_all(|| Arc::new(AsyncExecutor::new(None)));
}

#[test]
fn conformance_with_a_concurrency_limit() {
    suite::run_all(|| Arc::new(AsyncExecutor::new(Some(4))));
}

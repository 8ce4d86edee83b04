//! The executor conformance suite, run against [`ProcessPoolExecutor`].
//!
//! Workers re-execute this binary, so it has its own `main` (`harness = false`) that
//! first turns into a worker when asked to.

mod common;

use std::sync::Arc;
use std::time::Duration;

use apscheduler_executor_process::ProcessPoolExecutor;
use apscheduler_testkit::executor as suite;

fn main() {
    let registry = common::registry();
    apscheduler_executor_process::worker_main(&registry);

    let mut runner = common::Runner::new();
    runner.run("conformance: 4 workers", || {
        suite::run_all(|| Arc::new(ProcessPoolExecutor::new(4)));
    });
    runner.run("conformance: 2 workers with a timeout", || {
        suite::run_all(|| {
            Arc::new(ProcessPoolExecutor::new(2).with_timeout(Duration::from_secs(30)))
        });
    });
    runner.run("conformance: default pool", || {
        suite::run_all(|| Arc::new(ProcessPoolExecutor::default()));
    });
    runner.finish();
}

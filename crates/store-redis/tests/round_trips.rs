//! Round trips per main-loop pass and start lateness through a latency proxy, on Redis
//! (`APS_TEST_REDIS_URL`).
//!
//! A pass with due jobs makes at most four round trips to the store: the claim; the
//! running records and the release (one batch); the change notification; the runs'
//! ends in the history; with run history, one more: the runs' starts, written before
//! they start (`HistoryOptions::record_starts`, on by default). At +50 ms of round-trip time the 99th percentile of start
//! lateness stays under 300 ms.
//!
//! The figures in docs/PERFORMANCE.md come from:
//! `cargo test -p apscheduler-store-redis --test round_trips -- --nocapture --test-threads 1`

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::JobStore;
use apscheduler_testkit::round_trips::{
    percentile, round_trips_per_pass, round_trips_per_pass_with, start_lateness,
    start_lateness_with, Made, PassRoundTrips,
};

/// At most this many round trips per pass with due jobs, the history's end included,
/// without and with run history.
const MAX_ROUND_TRIPS: (u64, u64) = (4, 5);

/// The server's address in `url` (`redis://host:port/...`).
fn upstream(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let tail = rest.split_once('@').map_or(rest, |(_, t)| t);
    let host = tail.split(['/', '?']).next().expect("a host");
    let host = host.replace("localhost", "127.0.0.1");
    std::net::ToSocketAddrs::to_socket_addrs(&host)
        .expect("the server's address")
        .next()
        .expect("an address")
}

fn maker(prefix: String) -> impl Fn(SocketAddr) -> Made {
    move |proxy| {
        let store = common::store(&format!("redis://{proxy}/"), &prefix);
        let history = store.run_history();
        (Arc::new(store) as Arc<dyn JobStore>, history)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pass_round_trips() {
    let Some(url) = common::redis_url("redis_pass_round_trips") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    for history in [false, true] {
        let figures =
            round_trips_per_pass(upstream(&url), maker(prefixes.fresh()), history, 20, 6).await;
        println!("Redis, history {history}: round trips per pass with 20 due jobs: {figures:?}");
        // The first passes open connections and load scripts; the later ones are the
        // steady state.
        let max = if history {
            MAX_ROUND_TRIPS.1
        } else {
            MAX_ROUND_TRIPS.0
        };
        for f in &figures[3..] {
            let PassRoundTrips { pass, history_end } = *f;
            assert!(
                pass + history_end <= max,
                "Redis (history {history}): a pass with due jobs made {pass} round trips, \
                 and {history_end} more wrote the runs' ends: at most {max} in all"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark (start lateness in real time): bash bench/rtt-bench.sh"]
async fn redis_lateness_at_50ms_rtt() {
    let Some(url) = common::redis_url("redis_lateness_at_50ms_rtt") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    for history in [false, true] {
        let late = start_lateness(
            upstream(&url),
            maker(prefixes.fresh()),
            history,
            Duration::from_millis(25),
            20,
            10,
        )
        .await;
        assert!(late.len() >= 100, "Redis: only {} runs started", late.len());
        let (p50, p99, max) = (
            percentile(&late, 50),
            percentile(&late, 99),
            late[late.len() - 1],
        );
        println!(
            "Redis, history {history}, +50 ms RTT: {} runs, start lateness p50 {p50:?}, p99 {p99:?}, max {max:?}",
            late.len()
        );
        assert!(
            p99 < Duration::from_millis(300),
            "Redis (history {history}): p99 start lateness at +50 ms RTT is {p99:?}"
        );
    }
}

/// The same two measures with leased runs (`EngineBuilder::leased_runs`): each pass
/// writes the last pass's ends and releases its jobs with their runs in one script,
/// starts them in a second, and renews and sweeps every third of a lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark (leased runs: round trips, start lateness in real time): bash bench/rtt-bench.sh"]
async fn redis_leased_runs_round_trips_and_lateness() {
    let Some(url) = common::redis_url("redis_leased_runs_round_trips_and_lateness") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let leased = |b: apscheduler_engine::EngineBuilder| b.leased_runs(true);
    let figures = round_trips_per_pass_with(
        upstream(&url),
        maker(prefixes.fresh()),
        leased,
        false,
        20,
        8,
    )
    .await;
    println!("Redis, leased runs: round trips per pass with 20 due jobs: {figures:?}");
    let late = start_lateness_with(
        upstream(&url),
        maker(prefixes.fresh()),
        leased,
        false,
        Duration::from_millis(25),
        20,
        10,
    )
    .await;
    let (p50, p99, max) = (
        percentile(&late, 50),
        percentile(&late, 99),
        late[late.len() - 1],
    );
    println!(
        "Redis, leased runs, +50 ms RTT: {} runs, start lateness p50 {p50:?}, p99 {p99:?}, max {max:?}",
        late.len()
    );
}

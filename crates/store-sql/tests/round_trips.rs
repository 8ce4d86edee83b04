//! Round trips per main-loop pass and start lateness through a latency proxy, on
//! PostgreSQL and MySQL/MariaDB (`APS_TEST_POSTGRES_URL`, `APS_TEST_MYSQL_URL`).
//!
//! A pass with due jobs makes at most five round trips to the store: the claim; the
//! other nodes' running records (read alongside the release); the running records, the
//! release, its notification and the next run time (one statement on PostgreSQL, one
//! script of several statements on MySQL); with run history, the runs' starts, written
//! before they start (`HistoryOptions::record_starts`, on by default; one statement on
//! PostgreSQL, one script on MySQL), and the runs' ends. At +50 ms of round-trip time
//! the 99th percentile of start lateness stays under 300 ms.
//!
//! The figures in docs/PERFORMANCE.md come from:
//! `cargo test -p apscheduler-store-sql --test round_trips -- --nocapture --test-threads 1`

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::JobStore;
use apscheduler_store_sql::SqlJobStore;
use apscheduler_testkit::round_trips::{
    percentile, round_trips_per_pass, round_trips_per_pass_with, start_lateness,
    start_lateness_with, Made, PassRoundTrips,
};
use support::{random_table, server_url, MYSQL_ENV, POSTGRES_ENV};

/// At most this many round trips per pass with due jobs, the history's end included,
/// without and with run history.
const POSTGRES_ROUND_TRIPS: (u64, u64) = (4, 5);
/// MySQL/MariaDB: the claim, the release and the start write are one script each, the
/// next run time read in the release's; the ends are one text statement.
const MYSQL_ROUND_TRIPS: (u64, u64) = (2, 5);

/// The 99th percentile of start lateness at +50 ms of round-trip time must stay under
/// this, on either server.
const LATENESS: Duration = Duration::from_millis(300);

/// The server's address in `url` (`scheme://user@host:port/db...`), and `url` with
/// the proxy's address in its place.
fn through(url: &str, proxy: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (auth, tail) = match rest.split_once('@') {
        Some((auth, tail)) => (format!("{auth}@"), tail),
        None => (String::new(), rest),
    };
    let path = tail.find(['/', '?']).map_or("", |i| &tail[i..]);
    format!("{scheme}://{auth}{proxy}{path}")
}

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

fn maker(url: String, table: String) -> impl Fn(SocketAddr) -> Made {
    move |proxy| {
        let store = SqlJobStore::builder(through(&url, proxy))
            .table_name(table.clone())
            .build()
            .expect("build the store");
        let history = store.run_history();
        (Arc::new(store) as Arc<dyn JobStore>, history)
    }
}

async fn check_round_trips(label: &str, url: &str, (without, with): (u64, u64)) {
    for history in [false, true] {
        let max = if history { with } else { without };
        let table = random_table();
        let figures =
            round_trips_per_pass(upstream(url), maker(url.to_owned(), table), history, 20, 6).await;
        println!("{label}, history {history}: round trips per pass with 20 due jobs: {figures:?}");
        // The first passes open connections and prepare statements; the later ones
        // are the steady state.
        for f in &figures[3..] {
            let PassRoundTrips { pass, history_end } = *f;
            assert!(
                pass + history_end <= max,
                "{label} (history {history}): a pass with due jobs made {pass} round trips, \
                 and {history_end} more wrote the runs' ends: at most {max} in all"
            );
        }
    }
}

async fn check_lateness(label: &str, url: &str, bound: Duration) {
    for history in [false, true] {
        let table = random_table();
        let late = start_lateness(
            upstream(url),
            maker(url.to_owned(), table),
            history,
            Duration::from_millis(25),
            20,
            10,
        )
        .await;
        assert!(
            late.len() >= 100,
            "{label}: only {} runs started",
            late.len()
        );
        let (p50, p99, max) = (
            percentile(&late, 50),
            percentile(&late, 99),
            late[late.len() - 1],
        );
        println!(
            "{label}, history {history}, +50 ms RTT: {} runs, start lateness p50 {p50:?}, p99 {p99:?}, max {max:?}",
            late.len()
        );
        assert!(
            p99 < bound,
            "{label} (history {history}): p99 start lateness at +50 ms RTT is {p99:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pass_round_trips() {
    let Some(url) = server_url(POSTGRES_ENV, "postgres_pass_round_trips") else {
        return;
    };
    check_round_trips("PostgreSQL", &url, POSTGRES_ROUND_TRIPS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_pass_round_trips() {
    let Some(url) = server_url(MYSQL_ENV, "mysql_pass_round_trips") else {
        return;
    };
    check_round_trips("MySQL", &url, MYSQL_ROUND_TRIPS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark (start lateness in real time): bash bench/rtt-bench.sh"]
async fn postgres_lateness_at_50ms_rtt() {
    let Some(url) = server_url(POSTGRES_ENV, "postgres_lateness_at_50ms_rtt") else {
        return;
    };
    check_lateness("PostgreSQL", &url, LATENESS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark (start lateness in real time): bash bench/rtt-bench.sh"]
async fn mysql_lateness_at_50ms_rtt() {
    let Some(url) = server_url(MYSQL_ENV, "mysql_lateness_at_50ms_rtt") else {
        return;
    };
    check_lateness("MySQL", &url, LATENESS).await;
}

/// The same two measures with leased runs (`EngineBuilder::leased_runs`): each pass
/// writes the last pass's ends and releases its jobs with their runs in one store step,
/// starts them in a second (on PostgreSQL sent with the first's commit), and renews and
/// sweeps every third of a lease.
async fn leased_round_trips_and_lateness(label: &str, url: &str) {
    let leased = |b: apscheduler_engine::EngineBuilder| b.leased_runs(true);
    let figures = round_trips_per_pass_with(
        upstream(url),
        maker(url.to_owned(), random_table()),
        leased,
        false,
        20,
        8,
    )
    .await;
    println!("{label}, leased runs: round trips per pass with 20 due jobs: {figures:?}");
    let late = start_lateness_with(
        upstream(url),
        maker(url.to_owned(), random_table()),
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
        "{label}, leased runs, +50 ms RTT: {} runs, start lateness p50 {p50:?}, p99 {p99:?}, max {max:?}",
        late.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark (leased runs: round trips, start lateness in real time): bash bench/rtt-bench.sh"]
async fn postgres_leased_runs_round_trips_and_lateness() {
    let Some(url) = server_url(
        POSTGRES_ENV,
        "postgres_leased_runs_round_trips_and_lateness",
    ) else {
        return;
    };
    leased_round_trips_and_lateness("PostgreSQL", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark (leased runs: round trips, start lateness in real time): bash bench/rtt-bench.sh"]
async fn mysql_leased_runs_round_trips_and_lateness() {
    let Some(url) = server_url(MYSQL_ENV, "mysql_leased_runs_round_trips_and_lateness") else {
        return;
    };
    leased_round_trips_and_lateness("MySQL", &url).await;
}

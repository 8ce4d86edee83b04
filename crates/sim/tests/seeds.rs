//! Seeds of the simulation, in CI: 2,500 of a five-node cluster (1,500 with
//! `HistoryOptions::record_starts` on, the default, 500 with it off, 500 with leased
//! runs), four of a hundred-node one, and the replay of one seed (`SIM_SEED`). All of
//! them take about 75 s of CPU in a test build (the workspace's `Cargo.toml` optimises
//! the engine lightly there), each test on two threads.
//!
//! `SIM_SEEDS=N` runs N seeds of each scenario instead of the default counts, and
//! `SIM_SEED_BASE=B` starts them at B (to explore seeds CI does not run).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use apscheduler_sim::{simulate, Report, Sabotage, Scenario};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

fn scenario(name: &str) -> Scenario {
    match name {
        // `small-record-starts` names the default since record_starts is on by default.
        "small" | "small-record-starts" => Scenario::small(),
        "small-without-record-starts" => Scenario::small().without_record_starts(),
        "small-leased-runs" => Scenario::small()
            .with_leased_runs()
            .with_run_policies()
            .with_operator_calls(),
        "hundred" => Scenario::hundred(),
        other => {
            panic!("SIM_SCENARIO={other:?}: expected small, small-without-record-starts, small-leased-runs or hundred")
        }
    }
}

fn replay_hint(name: &str, report: &Report) -> String {
    format!(
        "replay with: SIM_SEED={} SIM_SCENARIO={name} cargo test -p apscheduler-sim --test seeds -- replay --nocapture",
        report.seed
    )
}

/// Runs `count` seeds of `name` from the base on `SIM_THREADS` threads (default 2:
/// each simulation is single-threaded); fails with the lowest seed that breaks an
/// invariant, printing it and how to replay it.
fn run_seeds(name: &str, default_count: u64) {
    let count = env_u64("SIM_SEEDS").unwrap_or(default_count);
    let base = env_u64("SIM_SEED_BASE").unwrap_or(0);
    let threads = env_u64("SIM_THREADS").unwrap_or(2).max(1);
    let scenario = scenario(name);
    let began = Instant::now();
    let next = AtomicU64::new(base);
    let totals = Mutex::new((0usize, 0usize, 0usize));
    let failed: Mutex<Option<Report>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= base + count || failed.lock().unwrap().is_some() {
                    return;
                }
                let report = simulate(&scenario, seed);
                if !report.passed() {
                    let mut failed = failed.lock().unwrap();
                    if failed.as_ref().is_none_or(|f| f.seed > seed) {
                        *failed = Some(report);
                    }
                    return;
                }
                let mut t = totals.lock().unwrap();
                t.0 += report.starts;
                t.1 += report.crashed;
                t.2 += report.reaped;
            });
        }
    });
    if let Some(report) = failed.into_inner().unwrap() {
        panic!("{}\n{}", report.describe(), replay_hint(name, &report));
    }
    let (starts, crashed, reaped) = totals.into_inner().unwrap();
    eprintln!(
        "{name}: {count} seeds from {base} passed in {:.1?} on {threads} threads: {starts} fire \
         times started, {crashed} nodes killed ({reaped} reaped)",
        began.elapsed()
    );
}

/// With `HistoryOptions::record_starts` on (the default): a fire time released to a
/// node that dies before starting it runs on the node that takes it for dead.
#[test]
fn five_nodes_thousands_of_seeds() {
    run_seeds("small", 1500);
}

/// With `HistoryOptions::record_starts` off (a setting still): such a fire time is
/// only recorded `interrupted`.
#[test]
fn five_nodes_without_record_starts() {
    run_seeds("small-without-record-starts", 500);
}

/// With leased runs (`EngineBuilder::leased_runs`): every run a row of the store,
/// started, ended and taken over through the run contract, under the same faults; a
/// quarter of the jobs each retry, buffer one fire time, or are `recover` jobs.
#[test]
fn five_nodes_with_leased_runs() {
    run_seeds("small-leased-runs", 500);
}

#[test]
fn a_hundred_nodes_some_seeds() {
    run_seeds("hundred", 4);
}

#[test]
fn a_seed_replays_exactly() {
    // Leased runs included: the runs a node holds and the store's run table are kept
    // in key order, so that no hash map's order reaches the trace.
    for name in ["small", "small-leased-runs"] {
        let scenario = scenario(name);
        let mut hashes = Vec::new();
        for seed in [42, 43, 44] {
            let first = simulate(&scenario, seed);
            let again = simulate(&scenario, seed);
            assert_eq!(
                (first.trace_hash, first.events, first.starts),
                (again.trace_hash, again.events, again.starts),
                "{name}: seed {seed} ran twice differently"
            );
            assert!(
                first.events > 1000 && first.starts > 100,
                "{name}: {}",
                first.describe()
            );
            hashes.push(first.trace_hash);
        }
        hashes.dedup();
        assert_eq!(hashes.len(), 3, "{name}: different seeds traced the same");
    }
}

/// The replay a failing seed prints runs in a new process: it traces what this one
/// does.
#[test]
fn a_seed_replays_exactly_in_another_process() {
    let here = simulate(&Scenario::small(), 42);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["replay", "--exact", "--nocapture"])
        .env("SIM_SEED", "42")
        .env("SIM_SCENARIO", "small")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let want = format!("trace {:016x}", here.trace_hash);
    assert!(
        stderr.contains(&want),
        "expected {want:?} in the replay's report:\n{stderr}"
    );
}

/// `SIM_SEED=<n> [SIM_SCENARIO=small|small-without-record-starts|small-leased-runs|hundred]
/// [SIM_FULL_TRACE=1]`: runs that seed and prints its report
/// (without `SIM_SEED`, seed 0 of the small scenario).
#[test]
fn replay() {
    let seed = env_u64("SIM_SEED").unwrap_or(0);
    let name = std::env::var("SIM_SCENARIO").unwrap_or_else(|_| "small".to_owned());
    let mut scenario = scenario(&name);
    // `SIM_FULL_TRACE=1`: every trace line, not only the last ones.
    if std::env::var_os("SIM_FULL_TRACE").is_some() {
        scenario = scenario.with_full_trace();
    }
    let report = simulate(&scenario, seed);
    eprintln!("{}", report.describe());
    assert!(report.passed(), "{}", replay_hint(&name, &report));
}

/// Each check catches the store breaking the contract it rests on, within a few seeds.
#[test]
fn the_checks_catch_a_store_that_breaks_its_contract() {
    for (sabotage, expect) in [
        (Sabotage::ReleaseAlwaysApplied, "started twice"),
        (Sabotage::HistoryDropsMissed, "without an outcome"),
        (Sabotage::InterruptNothing, "left the registry"),
    ] {
        let scenario = Scenario::small().with_sabotage(sabotage);
        let caught = (0..80)
            .map(|seed| simulate(&scenario, seed))
            .find(|r| !r.passed());
        let report = caught.unwrap_or_else(|| panic!("{sabotage:?}: no seed of 80 caught it"));
        assert!(
            report.violations.iter().any(|v| v.contains(expect)),
            "{sabotage:?}: expected a violation saying {expect:?}\n{}",
            report.describe()
        );
        eprintln!(
            "{sabotage:?} caught by seed {}: {}",
            report.seed, report.violations[0]
        );
    }
}

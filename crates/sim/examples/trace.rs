//! Prints a seed's whole trace: `cargo run -p apscheduler-sim --example trace -- SEED
//! [small|small-without-record-starts|hundred]`. Two runs of one seed print the same
//! lines.

use apscheduler_sim::{simulate, Scenario};

fn main() {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .expect("usage: trace SEED [small|small-without-record-starts|small-leased-runs|hundred]");
    let scenario = match args.next().as_deref() {
        None | Some("small") => Scenario::small(),
        Some("hundred") => Scenario::hundred(),
        Some("small-record-starts") => Scenario::small().with_record_starts(),
        Some("small-without-record-starts") => Scenario::small().without_record_starts(),
        Some("small-leased-runs") => Scenario::small()
            .with_leased_runs()
            .with_run_policies()
            .with_operator_calls(),
        Some(other) => panic!(
            "unknown scenario {other:?}: small, small-without-record-starts, small-leased-runs \
             or hundred"
        ),
    };
    let report = simulate(&scenario.with_full_trace(), seed);
    for line in &report.trace_tail {
        println!("{line}");
    }
    eprintln!("{}", report.describe());
}

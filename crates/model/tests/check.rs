//! Checks the run protocol's model over every reachable state: the contract holds with
//! three nodes, two jobs and every kind of fault, and each broken store is caught.
//! A property that fails prints the trace that breaks it, one step per line.

use apscheduler_model::{Faults, RunModel, Variant};
use stateright::{Checker, Model};

/// Checks `model` exhaustively; answers the names of the properties that fail (an
/// `always` or `eventually` with a counterexample, a `sometimes` without an example),
/// printing each one's trace.
fn failing(model: RunModel) -> Vec<&'static str> {
    let started = std::time::Instant::now();
    let checker = model.checker().threads(2).spawn_bfs().join();
    eprintln!(
        "{} states ({} unique) in {:.1?}",
        checker.state_count(),
        checker.unique_state_count(),
        started.elapsed()
    );
    assert!(checker.is_done(), "the checker stopped before the end");
    let mut failing = Vec::new();
    for property in checker.model().properties() {
        let discovery = checker.discovery(property.name);
        let fails = match property.expectation {
            stateright::Expectation::Sometimes => discovery.is_none(),
            _ => discovery.is_some(),
        };
        if fails {
            failing.push(property.name);
            if let Some(path) = discovery {
                eprintln!("\n{}: counterexample", property.name);
                for (state, action) in path.into_vec() {
                    eprintln!("  {state}");
                    if let Some(action) = action {
                        eprintln!("    -> {action:?}");
                    }
                }
            } else {
                eprintln!("\n{}: no example reached", property.name);
            }
        }
    }
    failing
}

// Every fault kind at once is more than ten million states past what CI can check in
// its three minutes; these pairings cover each kind with the others it interacts with.

#[test]
fn the_contract_holds_through_a_crash_and_a_stall() {
    let faults = Faults {
        crashes: 1,
        stalls: 1,
        ..Faults::NONE
    };
    assert_eq!(
        failing(RunModel::new(Variant::Correct, faults)),
        Vec::<&str>::new()
    );
}

#[test]
fn the_contract_holds_through_a_crash_and_a_lost_and_a_late_reply() {
    let faults = Faults {
        crashes: 1,
        losses: 1,
        delays: 1,
        ..Faults::NONE
    };
    assert_eq!(
        failing(RunModel::new(Variant::Correct, faults)),
        Vec::<&str>::new()
    );
}

#[test]
fn the_contract_holds_through_a_crash_and_a_lost_and_a_repeated_reply() {
    let faults = Faults {
        crashes: 1,
        losses: 1,
        duplicates: 1,
        ..Faults::NONE
    };
    assert_eq!(
        failing(RunModel::new(Variant::Correct, faults)),
        Vec::<&str>::new()
    );
}

#[test]
fn the_contract_holds_through_a_stall_and_a_lost_and_a_late_reply() {
    let faults = Faults {
        stalls: 1,
        losses: 1,
        delays: 1,
        ..Faults::NONE
    };
    assert_eq!(
        failing(RunModel::new(Variant::Correct, faults)),
        Vec::<&str>::new()
    );
}

#[test]
fn the_contract_holds_through_a_stall_and_a_lost_and_a_repeated_reply() {
    let faults = Faults {
        stalls: 1,
        losses: 1,
        duplicates: 1,
        ..Faults::NONE
    };
    assert_eq!(
        failing(RunModel::new(Variant::Correct, faults)),
        Vec::<&str>::new()
    );
}

#[test]
fn a_start_that_ignores_the_lease_is_caught() {
    let stall = Faults {
        stalls: 1,
        ..Faults::NONE
    };
    let failing = failing(RunModel::new(Variant::StartIgnoresLease, stall));
    assert!(
        failing.contains(&"no run's work starts twice"),
        "{failing:?}"
    );
}

#[test]
fn a_sweep_that_puts_a_started_run_back_is_caught() {
    let crash = Faults {
        crashes: 1,
        ..Faults::NONE
    };
    let failing = failing(RunModel::new(Variant::SweepRequeuesStarted, crash));
    assert!(
        failing.contains(&"a started run stays started"),
        "{failing:?}"
    );
}

#[test]
fn a_start_that_ends_a_missed_run_at_once_is_caught() {
    let crash = Faults {
        crashes: 1,
        ..Faults::NONE
    };
    let failing = failing(RunModel::new(Variant::StartEndsMissed, crash));
    assert!(failing.contains(&"no run ends unrecorded"), "{failing:?}");
}

#[test]
fn a_sweep_that_keeps_the_grace_from_the_fire_time_is_caught() {
    let crash = Faults {
        crashes: 1,
        ..Faults::NONE
    };
    let failing = failing(RunModel::new(Variant::GraceFromFireTime, crash));
    assert!(
        failing.contains(&"a fire time taken over after its grace starts"),
        "{failing:?}"
    );
}

#[test]
fn an_end_before_its_record_that_ends_the_run_is_caught() {
    let crash = Faults {
        crashes: 1,
        ..Faults::NONE
    };
    let failing = failing(RunModel::new(Variant::EarlyEndEnds, crash));
    assert!(failing.contains(&"no run ends unrecorded"), "{failing:?}");
}

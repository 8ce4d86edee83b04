//! # apscheduler-sim
//!
//! A deterministic simulation of many schedulers sharing one store. Up to a hundred
//! [`Engine`](apscheduler_engine::Engine)s (the real engine, its run history writer,
//! heartbeats and async executor) run in one process, on one single-threaded tokio
//! runtime whose clock is paused: virtual time jumps to the next timer whenever every
//! task waits, so a minute of a cluster's life takes a fraction of a second, and the
//! order in which tasks run is the runtime's, the same on every run.
//!
//! The store they share is the memory job store and run history
//! ([`apscheduler_store_memory`]), reached by each node through a layer that applies
//! the faults a seed draws:
//!
//! - a **node crash** (a killed process: nothing it does goes on, ever), and a **node
//!   pause** longer than the lease (a stopped process: everything it does waits until
//!   it resumes, up to twice the node time-out, so some paused nodes are taken for
//!   dead while they live);
//! - a **lost request** (not applied, the caller times out) and a **lost reply**
//!   (applied, the caller times out), per call;
//! - a **slow store** (each call delayed up to 1.5 s for a few seconds) and a **store
//!   failover** (every call refused for up to 4 s, the state kept, as a synchronous
//!   replica takes over);
//! - **clock skew**: each node's clock is off by up to a second either way.
//!
//! After every step of 250 ms it checks that no fire time started twice and that no
//! run of a node that was killed and reaped is still `running`; once the faults have
//! stopped and the cluster has settled, that every fire time has an outcome in the
//! history (none still `running`, none that started recorded only `missed`). With
//! [`Scenario::operator_calls`], nodes are also asked to run jobs now, to backfill and
//! to remove jobs during the faults, and every run started by hand that was
//! acknowledged must get an outcome.
//!
//! Every random choice (which fault, when, how long, how long each run takes, each
//! node's skew) comes from one generator seeded by the seed, in the order the runtime
//! asks for them, so a seed replays exactly: [`Report::trace_hash`] hashes every
//! event (each store call and its fault, each claim, release, record and start).
//!
//! ```
//! use apscheduler_sim::{simulate, Scenario};
//!
//! let report = simulate(&Scenario::small().with_size(3, 5), 7);
//! assert!(report.passed(), "{}", report.describe());
//! assert_eq!(simulate(&Scenario::small().with_size(3, 5), 7).trace_hash, report.trace_hash);
//! ```

mod calls;
mod check;
mod clock;
mod log;
mod run;
mod scenario;
mod store;
mod world;

pub use scenario::{Sabotage, Scenario};

/// What one seed did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// A hash of every traced event: the same seed gives the same hash.
    pub trace_hash: u64,
    /// How many events were traced.
    pub events: u64,
    /// Fire times started.
    pub starts: usize,
    /// Nodes killed, and how many of them were then reaped by the others.
    pub crashed: usize,
    /// Killed nodes the others took for dead and removed from the registry.
    pub reaped: usize,
    /// The invariants broken (empty: the seed passed).
    pub violations: Vec<String>,
    /// The trace's last lines.
    pub trace_tail: Vec<String>,
    /// The engines' last warnings and errors.
    pub log_tail: Vec<String>,
}

impl Report {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The violations, then the trace's and the log's last lines.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "seed {}: {} violation(s), {} starts, {} nodes killed ({} reaped), {} events, trace {:016x}\n",
            self.seed,
            self.violations.len(),
            self.starts,
            self.crashed,
            self.reaped,
            self.events,
            self.trace_hash
        );
        for v in &self.violations {
            out.push_str(&format!("VIOLATION: {v}\n"));
        }
        if !self.passed() {
            out.push_str("--- trace (last lines) ---\n");
            for line in &self.trace_tail {
                out.push_str(line);
                out.push('\n');
            }
            out.push_str("--- engine log (last lines) ---\n");
            for line in &self.log_tail {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Runs `scenario` under `seed` and checks it.
pub fn simulate(scenario: &Scenario, seed: u64) -> Report {
    run::run(scenario, seed)
}

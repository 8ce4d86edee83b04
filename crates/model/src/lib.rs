//! A model of the run protocol: how scheduler nodes sharing one store start each run of
//! a job at most once, checked over every reachable state with
//! [stateright](https://docs.rs/stateright).
//!
//! A *run* is one attempt at one fire time of a job, a row of the store with a state,
//! a holder, a lease on the store's clock and a fence that grows with every new holder.
//! Nodes change runs only through five atomic store operations, named here as in the
//! contract ([`contract`]): `claim_due`, `start`, `renew`, `end` and `sweep`. Each is a
//! compare-and-set on the row's holder, fence and state, judged on the store's clock,
//! so that what a node believes (its memory, its clock) never decides alone.
//!
//! The model runs three nodes and two jobs: one that retries a failed attempt and
//! buffers one fire time while at `max_instances`, one that is run again (`recover`)
//! when its run is interrupted. Faults, any time before a horizon: a node crashes and
//! restarts, a node stalls for longer than a lease and resumes with its memory, a reply
//! is lost, late or delivered twice; the nodes' clocks are off the store's by up to one
//! tick. The properties checked in every reachable state:
//!
//! - **no run's work starts twice**: no (job, fire time, attempt, rerun) is started by
//!   two nodes, or twice by one; a `recover` job's rerun is a run of its own;
//! - **a started run stays started**: a run that started is started, ended or
//!   interrupted, never claimable again;
//! - **`max_instances` holds among live leases**: no more runs of a job are started
//!   with a live lease than its `max_instances`;
//! - **one node acts for a run**: only the holder knows a run's current fence, so every
//!   other node's write about it is refused;
//! - **no run ends unrecorded**: a run is ended (or interrupted) in the store only once
//!   the run history has its record, so that whoever dies, a fire time's outcome is
//!   known;
//! - and, once faults stop, **every fire time gets an outcome** (ended, or interrupted
//!   for a job that does not recover, and recorded so).
//!
//! - and, reachable: **a fire time taken over after its grace starts** (a sweep gives a
//!   claimed run its grace again from the takeover, so a dead node's claim, which
//!   outlasts a grace shorter than the lease, is run and not only missed).
//!
//! Broken stores ([`Variant`]) show that the checks catch what they should: a `start`
//! that ignores the lease, a `sweep` that puts a started run back, a `start` that ends
//! a missed run at once (its holder dies before recording it), a `sweep` that keeps a
//! claimed run's grace counted from its fire time.
//!
//! ```
//! use apscheduler_model::{RunModel, Variant};
//! use stateright::{Checker, Model};
//!
//! // A small configuration: one node, no fault.
//! let model = RunModel::small(Variant::Correct);
//! let checker = model.checker().spawn_bfs().join();
//! assert!(checker.discovery("no run's work starts twice").is_none());
//! assert!(checker.is_done());
//! ```

pub mod contract;
pub mod system;

use stateright::{Model, Property};

pub use contract::{JobSpec, Outcome, Overlap, Rules, Store, Variant};
pub use system::{Action, Call, Delivery, Faults, Setup, State};

use contract::RunState;
use system::{
    every_end_is_recorded, every_fire_time_has_an_outcome, started_stays_started, Node, Status,
};

/// The model: a [`Setup`] (the protocol's rules, the nodes' clocks, the faults allowed).
#[derive(Debug)]
pub struct RunModel {
    /// What is checked.
    pub setup: Setup,
}

impl RunModel {
    /// Three nodes (clocks on time, one tick ahead, one tick behind), the two jobs,
    /// these faults.
    pub fn new(variant: Variant, faults: Faults) -> RunModel {
        RunModel {
            setup: Setup {
                rules: two_jobs(variant),
                skews: vec![0, 1, -1],
                stall: 5,
                renew_margin: 3,
                work: 1,
                faults,
                fault_horizon: 3,
                end: 16,
            },
        }
    }

    /// One node, the two jobs, no fault: a quick check of the happy path.
    pub fn small(variant: Variant) -> RunModel {
        let mut model = RunModel::new(variant, Faults::NONE);
        model.setup.skews = vec![0];
        model
    }
}

impl Faults {
    /// No fault.
    pub const NONE: Faults = Faults {
        crashes: 0,
        stalls: 0,
        losses: 0,
        delays: 0,
        duplicates: 0,
    };
    /// One fault of each kind.
    pub const ONE_EACH: Faults = Faults {
        crashes: 1,
        stalls: 1,
        losses: 1,
        delays: 1,
        duplicates: 1,
    };
}

/// Job 0 fires at ticks 0 and 1, runs one instance at a time and buffers one fire time,
/// retries a failed attempt once a tick later, and its fire times may start up to 3
/// ticks late (less than a lease); job 1 fires at tick 0, is run again when
/// interrupted, and has no grace (a node whose clock runs ahead misses it). Leases last
/// 4 ticks.
fn two_jobs(variant: Variant) -> Rules {
    Rules {
        lease: 4,
        jobs: vec![
            JobSpec {
                fire_times: vec![0, 1],
                max_instances: 1,
                overlap: Overlap::BufferOne,
                attempts: 2,
                retry_delay: 1,
                recover: false,
                grace: 3,
            },
            JobSpec {
                fire_times: vec![0],
                max_instances: 1,
                overlap: Overlap::Skip,
                attempts: 1,
                retry_delay: 0,
                recover: true,
                grace: 0,
            },
        ],
        variant,
    }
}

impl Model for RunModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let node = Node {
            status: Status::Up,
            life: 0,
            seq: 0,
            held: Vec::new(),
        };
        vec![State {
            store: Store::new(&self.setup.rules),
            nodes: vec![node; self.setup.skews.len()],
            replies: Vec::new(),
            faults: self.setup.faults,
            starts: Vec::new(),
            records: Vec::new(),
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.setup.steps(state, actions);
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        Some(self.setup.step(state, action))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("no run's work starts twice", |_, s: &State| {
                s.starts.windows(2).all(|w| w[0].0 != w[1].0)
            }),
            Property::always("a started run stays started", |_, s: &State| {
                started_stays_started(s)
            }),
            Property::always(
                "max_instances holds among live leases",
                |m: &Self, s: &State| {
                    m.setup.rules.jobs.iter().enumerate().all(|(j, spec)| {
                        s.store.running(j as u8) <= usize::from(spec.max_instances)
                    })
                },
            ),
            Property::always("one node acts for a run", |_, s: &State| {
                s.store.runs.iter().all(|run| {
                    s.nodes.iter().enumerate().all(|(n, node)| {
                        node.status == Status::Down
                            || !node
                                .held
                                .iter()
                                .any(|h| h.key == run.key && h.fence == run.fence)
                            || run.holder == n as u8
                    })
                })
            }),
            Property::always("no run ends unrecorded", |_, s: &State| {
                every_end_is_recorded(s)
            }),
            Property::eventually("every fire time gets an outcome", |m: &Self, s: &State| {
                every_fire_time_has_an_outcome(&m.setup.rules, s)
            }),
            // Reachable, or the checks above would hold for want of trying.
            Property::sometimes("a retry starts", |_, s: &State| {
                s.starts.iter().any(|(k, _)| k.attempt > 1)
            }),
            Property::sometimes("a buffered fire time waits", |_, s: &State| {
                s.store
                    .runs
                    .iter()
                    .any(|r| r.state == RunState::Waiting { due: None })
            }),
            Property::sometimes("an interrupted recover job runs again", |_, s: &State| {
                s.starts.iter().any(|(k, _)| k.rerun > 0)
            }),
            Property::sometimes("a missed or skipped run is recorded", |_, s: &State| {
                s.records
                    .iter()
                    .any(|(_, o)| matches!(o, Outcome::Missed | Outcome::Skipped))
            }),
            Property::sometimes("a sweep takes a run over", |_, s: &State| {
                s.store.runs.iter().any(|r| r.taken_over)
            }),
            // A fire time claimed by a node that stopped is started by another, though
            // the claim's lease outlasted the grace (3 ticks to the lease's 4): its grace
            // was counted again from the takeover (only a `Claimed` run's is).
            Property::sometimes(
                "a fire time taken over after its grace starts",
                |m: &Self, s: &State| {
                    s.store.runs.iter().any(|r| {
                        let spec = &m.setup.rules.jobs[usize::from(r.key.job)];
                        let due = spec.fire_times[usize::from(r.key.fire)] + spec.grace;
                        r.grace_until.is_some_and(|g| g > due)
                            && matches!(r.state, RunState::Started { at } if at > due)
                    })
                },
            ),
        ]
    }
}

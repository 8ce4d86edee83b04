//! The store's side of the run protocol: its rows and the five operations a node calls,
//! each one atomic step on the store, judged on the store's clock.
//!
//! | operation | from | to | only when |
//! |---|---|---|---|
//! | [`claim_due`](Store::claim_due) | a due fire time of a job | a `Claimed` run, leased to the caller | the fire time is due; the job advances in the same step |
//! | [`start`](Store::start) | `Claimed`, `Waiting` | `Started` | the caller holds the run (holder and fence) and its lease is live; fewer than `max_instances` runs of the job are `Started` with a live lease |
//! | | `Claimed` | `Waiting` (buffered) | as above, but the job is at `max_instances` and buffers one fire time, none other waiting |
//! | | `Claimed`, `Waiting` | `Missing(Skipped)`, `Missing(Missed)`, lease extended | at `max_instances` with nothing to buffer, or a `Claimed` run while another is buffered; past its grace time |
//! | [`renew`](Store::renew) | any live state | the same, lease extended | the caller holds the run |
//! | [`end`](Store::end) | `Started` | `Ended(outcome)`, and a `Waiting` retry in the same step | the caller holds the run with its current fence (it recorded the outcome) |
//! | | `Started` | `Ending(outcome)`, lease extended, and a `Waiting` retry in the same step | as above, its record not written yet |
//! | | `Ending(outcome)` | `Ended(outcome)` | as above, its record written |
//! | | `Missing(outcome)` | `Ended(outcome)` | as above |
//! | | `Interrupting` | `Interrupted` | as above |
//! | [`sweep`](Store::sweep) | `Claimed`, `Waiting`, `Interrupting`, `Missing`, `Ending` with an expired lease | the same, leased to the sweeper, fence grown; a `Claimed` run's grace counted again from the takeover (at most a lease after the lease's end) | the lease expired on the store's clock |
//! | | `Started` with an expired lease | `Interrupting`, leased to the sweeper, fence grown, and for a `recover` job a new `Claimed` run of the same fire time | as above |
//!
//! An end decided by the store (`Missing`, `Interrupting`) or not recorded yet
//! (`Ending`) stays live until a holder that recorded it ends it: whoever dies, no run
//! ends without its record; and only `Started` runs are instances of their job.

use serde::Serialize;

/// A scheduler node, by index.
pub type NodeId = u8;
/// A point on the store's clock, in whole ticks.
pub type Tick = u8;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Outcome {
    /// Its work ran and succeeded.
    Success,
    /// Its work ran and failed (a retry may follow, as another run).
    Failure,
    /// It was not started within its grace time.
    Missed,
    /// The job was at `max_instances` and had nothing to buffer.
    Skipped,
    /// It started and its holder's lease expired: how its work ended is unknown.
    Interrupted,
}

/// Where a run is. A run only ever moves down this list, except that `Claimed` and
/// `Waiting` change holders in a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RunState {
    /// Released to a node, which starts it when it can.
    Claimed,
    /// A retry due at `Some(tick)`, or a buffered fire time (`None`) that starts once
    /// the job is below `max_instances`.
    Waiting {
        /// When a retry is due; `None` for a buffered fire time.
        due: Option<Tick>,
    },
    /// Its work was started (at most once: no state leads back).
    Started {
        /// When.
        at: Tick,
    },
    /// Its start found it missed or skipped: never started; its holder records that
    /// and ends it so.
    Missing(Outcome),
    /// Its work ended so, and its holder has not recorded it yet: it records that and
    /// ends it so. Not an instance of its job.
    Ending(Outcome),
    /// Started, then its holder's lease expired: the sweeper records it interrupted and
    /// ends it so.
    Interrupting,
    /// Over, with an outcome.
    Ended(Outcome),
    /// Started, then its holder's lease expired: its outcome is unknown.
    Interrupted,
}

impl RunState {
    /// `Claimed` or `Waiting`: the run has not started and can still be taken over.
    pub fn unstarted(self) -> bool {
        matches!(self, RunState::Claimed | RunState::Waiting { .. })
    }

    /// Not ended: the run's holder must keep renewing its lease.
    pub fn live(self) -> bool {
        !matches!(self, RunState::Ended(_) | RunState::Interrupted)
    }
}

/// Which run: a job's fire time, its attempt (1, then its retries), and its rerun (0,
/// then the runs again of a `recover` job whose run was interrupted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RunKey {
    /// The job, by index.
    pub job: u8,
    /// The fire time, by index in the job's fire times.
    pub fire: u8,
    /// 1 for the fire time's first run, then one more per retry.
    pub attempt: u8,
    /// 0, then one more per rerun of an interrupted `recover` job.
    pub rerun: u8,
}

/// A run's row in the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Run {
    /// Which run.
    pub key: RunKey,
    /// Where it is.
    pub state: RunState,
    /// The node whose lease it is.
    pub holder: NodeId,
    /// The lease's end on the store's clock: at this tick it has expired.
    pub lease_until: Tick,
    /// Grows with every new holder (per job): a write carrying an older one is refused.
    pub fence: u16,
    /// A sweep gave it to another holder at least once.
    pub taken_over: bool,
    /// A `Claimed` run not started by then is missed; `None` for retries and reruns.
    pub grace_until: Option<Tick>,
}

/// How a job treats a fire time that comes while it is at `max_instances`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Overlap {
    /// It is skipped.
    Skip,
    /// One fire time waits for a running instance to end; others are skipped.
    BufferOne,
}

/// A job's schedule and policies (fixed for a model run).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JobSpec {
    /// Its fire times, in order.
    pub fire_times: Vec<Tick>,
    /// How many of its runs may be `Started` with a live lease at once.
    pub max_instances: u8,
    /// What a fire time at `max_instances` does.
    pub overlap: Overlap,
    /// Attempts per fire time (1: no retry).
    pub attempts: u8,
    /// A retry's delay after the failed attempt ended.
    pub retry_delay: Tick,
    /// An interrupted run is run again (a new run of the same fire time).
    pub recover: bool,
    /// How late a claimed fire time may still start.
    pub grace: Tick,
}

/// Correct, or one of the broken stores the model must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The contract as stated.
    Correct,
    /// `start` writes `Started` without checking the holder, the fence or the lease: a
    /// node that wakes from a stall starts what another node took over meanwhile.
    StartIgnoresLease,
    /// `sweep` puts an expired `Started` run back to `Claimed`, as if it had not started.
    SweepRequeuesStarted,
    /// `start` ends a missed or skipped run at once (`Ended`, not `Missing`): a holder
    /// that dies before it records the answer leaves a fire time without a record.
    StartEndsMissed,
    /// `end` without the record writes `Ended`, not `Ending`: a holder that dies before
    /// it records the end leaves a run ended without a record.
    EarlyEndEnds,
    /// `sweep` leaves a taken-over `Claimed` run's grace counted from its fire time:
    /// with a grace shorter than the lease, a dead node's claimed fire time is only
    /// ever missed.
    GraceFromFireTime,
}

/// The protocol's constants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rules {
    /// A lease's length, in ticks.
    pub lease: Tick,
    /// The jobs.
    pub jobs: Vec<JobSpec>,
    /// Correct or broken.
    pub variant: Variant,
}

/// A job's row: the index of its next fire time, and the last fence it handed out.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct JobRow {
    /// The next fire time not yet released.
    pub next: u8,
    /// The last fence given to one of its runs.
    pub fence: u16,
}

/// A run as a node learns it from a reply: which, its fence, lease and state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    /// Which run.
    pub key: RunKey,
    /// Its fence, which the node sends back with every write.
    pub fence: u16,
    /// Its lease's end.
    pub lease_until: Tick,
    /// `None` for a claimed run; a waiting run's due time otherwise.
    pub waiting: Option<Option<Tick>>,
    /// An end the store decided (`Missing`, `Interrupting`): record it, then end so.
    pub decided: Option<Outcome>,
}

/// The store's answer to `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StartReply {
    /// Started: the caller runs the work now.
    Started,
    /// Buffered, or a retry not yet due: it waits (still held by the caller).
    Waiting(Option<Tick>),
    /// Ended without running (skipped or missed).
    Ended(Outcome),
    /// Not the caller's run (any more): it forgets it.
    Refused,
}

/// The store: its clock, its jobs' rows and its runs' rows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Store {
    /// The store's clock.
    pub now: Tick,
    /// One row per job.
    pub jobs: Vec<JobRow>,
    /// Every run, in key order.
    pub runs: Vec<Run>,
}

impl Store {
    /// A store with the jobs' rows and no run.
    pub fn new(rules: &Rules) -> Store {
        Store {
            now: 0,
            jobs: vec![JobRow { next: 0, fence: 0 }; rules.jobs.len()],
            runs: Vec::new(),
        }
    }

    /// The row of a run.
    pub fn run(&self, key: RunKey) -> Option<&Run> {
        self.runs.iter().find(|r| r.key == key)
    }

    fn run_mut(&mut self, key: RunKey) -> Option<&mut Run> {
        self.runs.iter_mut().find(|r| r.key == key)
    }

    /// A new run, leased to `holder` with the job's next fence; a fire time's first
    /// run has the job's grace.
    fn insert(&mut self, rules: &Rules, key: RunKey, state: RunState, holder: NodeId) -> Grant {
        let spec = &rules.jobs[usize::from(key.job)];
        let grace_until = (key.attempt == 1 && key.rerun == 0)
            .then(|| spec.fire_times[usize::from(key.fire)] + spec.grace);
        let job = &mut self.jobs[usize::from(key.job)];
        job.fence += 1;
        let run = Run {
            key,
            state,
            holder,
            lease_until: self.now + rules.lease,
            fence: job.fence,
            taken_over: false,
            grace_until,
        };
        let grant = grant(&run);
        let at = self.runs.partition_point(|r| r.key < key);
        self.runs.insert(at, run);
        grant
    }

    /// Whether some fire time is due and not yet released.
    pub fn has_due(&self, rules: &Rules) -> bool {
        rules.jobs.iter().zip(&self.jobs).any(|(spec, row)| {
            spec.fire_times
                .get(usize::from(row.next))
                .is_some_and(|&t| t <= self.now)
        })
    }

    /// Releases every due fire time as a `Claimed` run leased to `node`, advancing its
    /// job in the same step.
    pub fn claim_due(&mut self, rules: &Rules, node: NodeId) -> Vec<Grant> {
        let mut grants = Vec::new();
        for (j, spec) in rules.jobs.iter().enumerate() {
            while let Some(&t) = spec.fire_times.get(usize::from(self.jobs[j].next)) {
                if t > self.now {
                    break;
                }
                let fire = self.jobs[j].next;
                self.jobs[j].next += 1;
                let key = RunKey {
                    job: j as u8,
                    fire,
                    attempt: 1,
                    rerun: 0,
                };
                grants.push(self.insert(rules, key, RunState::Claimed, node));
            }
        }
        grants
    }

    /// How many runs of `job` are `Started` with a live lease.
    pub fn running(&self, job: u8) -> usize {
        self.runs
            .iter()
            .filter(|r| r.key.job == job && matches!(r.state, RunState::Started { .. }))
            .filter(|r| r.lease_until > self.now)
            .count()
    }

    /// Starts a run the caller holds: a compare-and-set on holder, fence, live lease and
    /// state. A repeated call for a run it already started answers `Started` again. The
    /// grace is judged at `at`, the caller's clock, as the stores do.
    pub fn start(
        &mut self,
        rules: &Rules,
        node: NodeId,
        key: RunKey,
        fence: u16,
        at: Tick,
    ) -> StartReply {
        let now = self.now;
        let running = self.running(key.job);
        let spec = &rules.jobs[usize::from(key.job)];
        let other_waiting = self.runs.iter().any(|r| {
            r.key.job == key.job && r.key != key && r.state == RunState::Waiting { due: None }
        });
        let Some(run) = self.run_mut(key) else {
            return StartReply::Refused;
        };
        let holds = run.holder == node && run.fence == fence && run.lease_until > now;
        // A repeated start of a run its first start found missed: the same answer.
        if let RunState::Missing(o) | RunState::Ended(o) = run.state {
            let missed = matches!(o, Outcome::Missed | Outcome::Skipped);
            if missed && run.holder == node && run.fence == fence {
                return StartReply::Ended(o);
            }
        }
        if let RunState::Started { .. } = run.state {
            if rules.variant == Variant::StartIgnoresLease
                || (run.holder == node && run.fence == fence)
            {
                return StartReply::Started;
            }
            return StartReply::Refused;
        }
        if !run.state.unstarted() || !(holds || rules.variant == Variant::StartIgnoresLease) {
            return StartReply::Refused;
        }
        if let RunState::Waiting { due: Some(due) } = run.state {
            if due > now {
                return StartReply::Waiting(Some(due));
            }
        }
        if run.state == RunState::Claimed && run.grace_until.is_some_and(|g| at > g) {
            decide_missing(rules, run, now, Outcome::Missed);
            return StartReply::Ended(Outcome::Missed);
        }
        // A later fire time does not start ahead of a buffered one (under `skip` too:
        // a backfill's buffered runs, which the model leaves out).
        if run.state == RunState::Claimed && other_waiting {
            decide_missing(rules, run, now, Outcome::Skipped);
            return StartReply::Ended(Outcome::Skipped);
        }
        if running >= usize::from(spec.max_instances) {
            return match run.state {
                RunState::Waiting { due: None } => StartReply::Waiting(None),
                _ if spec.overlap == Overlap::BufferOne && !other_waiting => {
                    run.state = RunState::Waiting { due: None };
                    StartReply::Waiting(None)
                }
                _ => {
                    decide_missing(rules, run, now, Outcome::Skipped);
                    StartReply::Ended(Outcome::Skipped)
                }
            };
        }
        run.state = RunState::Started { at: now };
        StartReply::Started
    }

    /// Extends the leases of the runs the caller still holds; answers them with their
    /// new leases, and those it no longer holds.
    pub fn renew(
        &mut self,
        rules: &Rules,
        node: NodeId,
        held: &[(RunKey, u16)],
    ) -> (Vec<Grant>, Vec<(RunKey, u16)>) {
        let (mut renewed, mut lost) = (Vec::new(), Vec::new());
        for &(key, fence) in held {
            let until = self.now + rules.lease;
            match self.run_mut(key) {
                Some(run) if run.holder == node && run.fence == fence && run.state.live() => {
                    run.lease_until = until;
                    renewed.push(grant(run));
                }
                _ => lost.push((key, fence)),
            }
        }
        (renewed, lost)
    }

    /// Ends a run the caller started, with its current fence; a failed attempt with
    /// attempts left inserts its retry, `Waiting` and leased to the caller, in the same
    /// step. Not `recorded`, a started run becomes `Ending` (the caller ends it again
    /// once it recorded it). `None`: refused (the run was interrupted or taken over). A
    /// repeated call answers as the first did.
    pub fn end(
        &mut self,
        rules: &Rules,
        node: NodeId,
        key: RunKey,
        fence: u16,
        outcome: Outcome,
        recorded: bool,
    ) -> Option<Option<Grant>> {
        let spec = &rules.jobs[usize::from(key.job)];
        let retry_key = RunKey {
            attempt: key.attempt + 1,
            ..key
        };
        let retry = outcome == Outcome::Failure && key.attempt < spec.attempts;
        let lease_until = self.now + rules.lease;
        let run = self.run_mut(key)?;
        if run.holder != node || run.fence != fence {
            return None;
        }
        match run.state {
            RunState::Started { .. } => {
                if recorded || rules.variant == Variant::EarlyEndEnds {
                    run.state = RunState::Ended(outcome);
                } else {
                    run.state = RunState::Ending(outcome);
                    run.lease_until = lease_until;
                }
                if !retry {
                    return Some(None);
                }
                let due = self.now + spec.retry_delay;
                let waiting = RunState::Waiting { due: Some(due) };
                Some(Some(self.insert(rules, retry_key, waiting, node)))
            }
            RunState::Ending(o) if o == outcome => {
                if recorded {
                    run.state = RunState::Ended(o);
                }
                Some(self.run(retry_key).filter(|r| r.holder == node).map(grant))
            }
            RunState::Missing(o) if o == outcome && recorded => {
                run.state = RunState::Ended(o);
                Some(None)
            }
            RunState::Interrupting if outcome == Outcome::Interrupted && recorded => {
                run.state = RunState::Interrupted;
                Some(None)
            }
            RunState::Interrupted if outcome == Outcome::Interrupted => Some(None),
            RunState::Ended(o) if o == outcome => {
                Some(self.run(retry_key).filter(|r| r.holder == node).map(grant))
            }
            _ => None,
        }
    }

    /// Whether some run's lease expired while it was not ended.
    pub fn has_expired(&self) -> bool {
        self.runs
            .iter()
            .any(|r| r.state.live() && r.lease_until <= self.now)
    }

    /// Takes every run whose lease expired, leased to `node` with a new fence: a
    /// started one becomes `Interrupting` (the sweeper records it and ends it), and a
    /// `recover` job gets a new `Claimed` run of the same fire time, leased to `node`.
    /// Answers what `node` now holds.
    pub fn sweep(&mut self, rules: &Rules, node: NodeId) -> Vec<Grant> {
        let now = self.now;
        let expired: Vec<RunKey> = self
            .runs
            .iter()
            .filter(|r| r.state.live() && r.lease_until <= now)
            .map(|r| r.key)
            .collect();
        let mut taken = Vec::new();
        for key in expired {
            let started = matches!(
                self.run(key).map(|r| r.state),
                Some(RunState::Started { .. })
            );
            let job = &mut self.jobs[usize::from(key.job)];
            job.fence += 1;
            let fence = job.fence;
            let run = self.run_mut(key).expect("listed");
            if run.state == RunState::Claimed && rules.variant != Variant::GraceFromFireTime {
                // Its grace again from the takeover: a dead node's claim outlasts it.
                let fire_time = rules.jobs[usize::from(key.job)].fire_times[usize::from(key.fire)];
                let taken = now.min(run.lease_until + rules.lease);
                run.grace_until = run.grace_until.map(|g| g.max(taken + (g - fire_time)));
            }
            if started {
                run.state = match rules.variant {
                    Variant::SweepRequeuesStarted => RunState::Claimed,
                    _ => RunState::Interrupting,
                };
            }
            run.holder = node;
            run.fence = fence;
            run.taken_over = true;
            run.lease_until = now + rules.lease;
            let interrupting = started && run.state == RunState::Interrupting;
            taken.push(grant(run));
            if interrupting && rules.jobs[usize::from(key.job)].recover {
                let again = RunKey {
                    rerun: key.rerun + 1,
                    ..key
                };
                taken.push(self.insert(rules, again, RunState::Claimed, node));
            }
        }
        taken
    }
}

/// A start found `run` missed or skipped: `Missing` until its holder recorded it (the
/// broken variant ends it at once).
fn decide_missing(rules: &Rules, run: &mut Run, now: Tick, outcome: Outcome) {
    if rules.variant == Variant::StartEndsMissed {
        run.state = RunState::Ended(outcome);
    } else {
        run.state = RunState::Missing(outcome);
        run.lease_until = now + rules.lease;
    }
}

/// What a node learns of a run it holds.
fn grant(run: &Run) -> Grant {
    Grant {
        key: run.key,
        fence: run.fence,
        lease_until: run.lease_until,
        waiting: match run.state {
            RunState::Waiting { due } => Some(due),
            _ => None,
        },
        decided: match run.state {
            RunState::Missing(o) | RunState::Ending(o) => Some(o),
            RunState::Interrupting => Some(Outcome::Interrupted),
            _ => None,
        },
    }
}

//! The nodes around the store: what each remembers, the replies on their way, the
//! faults, and the properties checked over every reachable state.
//!
//! Time is the store's clock, in ticks. It moves only when no node has anything left to
//! do at this tick (a due fire time to claim, a run to start, a reply to read, an
//! expired lease to sweep, a lease about to expire to renew, work past its longest
//! duration to end): a node is slow only through a fault. The faults, each at most as
//! often as [`Faults`] allows and only before `fault_horizon`: a node crashes (it
//! forgets everything, its replies are lost) and restarts; a node stalls for longer
//! than a lease (a SIGSTOP, a VM pause) and resumes with its memory intact; a reply is
//! lost; a reply is delivered twice. Each node reads its own clock, off the store's by
//! its skew.

use std::fmt;

use serde::Serialize;

use crate::contract::{Grant, NodeId, Outcome, Rules, RunKey, RunState, StartReply, Store, Tick};

/// How many faults of each kind a model run may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Faults {
    /// Node crashes (each followed by a restart when the model chooses).
    pub crashes: u8,
    /// Stalls longer than a lease.
    pub stalls: u8,
    /// Lost replies.
    pub losses: u8,
    /// Replies delivered late.
    pub delays: u8,
    /// Replies delivered twice.
    pub duplicates: u8,
}

/// A model run's settings beyond the protocol's [`Rules`].
#[derive(Clone, Debug)]
pub struct Setup {
    /// The protocol.
    pub rules: Rules,
    /// Each node's clock minus the store's, in ticks (within the documented bound).
    pub skews: Vec<i8>,
    /// How long a stall lasts (longer than a lease).
    pub stall: Tick,
    /// A node renews its leases when, by its clock, they end in fewer ticks than this:
    /// more than twice the largest skew (a node whose clock is behind renews before its
    /// leases end), less than a lease minus the largest skew (a node whose clock is
    /// ahead does not renew again at once).
    pub renew_margin: Tick,
    /// The longest a run's work takes.
    pub work: Tick,
    /// The faults allowed.
    pub faults: Faults,
    /// No fault after this tick.
    pub fault_horizon: Tick,
    /// The clock stops here (or once every fire time has its outcome).
    pub end: Tick,
}

/// A node's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Status {
    /// Running.
    Up,
    /// Stopped until the tick given, its memory intact.
    Stalled(Tick),
    /// Crashed; restarts with an empty memory.
    Down,
}

/// What a node does with a run it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Phase {
    /// To start (asked, when `asked`).
    Claimed,
    /// Waiting: a retry due then, or a buffered fire time (`None`).
    Waiting(Option<Tick>),
    /// Its work runs since then.
    Running(Tick),
    /// Its work ended so: the node tells the store at once (an end not recorded, so
    /// that the run stops counting as an instance), then records it and writes the end.
    Finished(Outcome),
    /// Its work ended so, or the store decided so (missed, skipped, interrupted): the
    /// node records it, then writes the end.
    Ending(Outcome),
}

/// A run a node holds, as it remembers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Held {
    /// Which run.
    pub key: RunKey,
    /// The fence its writes carry.
    pub fence: u16,
    /// Its lease's end, as the store last said (on the store's clock).
    pub lease_until: Tick,
    /// What the node does with it.
    pub phase: Phase,
    /// The number of the start or end asked for and not answered yet (a reply names
    /// the request it answers).
    pub asked: Option<u8>,
    /// A start of this waiting run came too early by the store's clock: asked again at
    /// the next tick.
    pub early: bool,
}

/// A node: its process, its life (one more per restart), the runs it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Node {
    /// Running, stalled or down.
    pub status: Status,
    /// Replies to an earlier life are dropped.
    pub life: u8,
    /// The number of its last start or end request, never reused.
    pub seq: u8,
    /// The runs it holds, in key order.
    pub held: Vec<Held>,
}

/// A reply on its way to a node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Reply {
    /// To whom.
    pub node: NodeId,
    /// To which of its lives.
    pub life: u8,
    /// What it says.
    pub body: Body,
}

/// What a reply says.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Body {
    /// `claim_due` or `sweep`: runs now held.
    Granted(#[serde(skip)] Vec<Grant>),
    /// `start`, answering the request numbered so.
    Start(RunKey, u8, #[serde(skip)] StartReply),
    /// `renew`: renewed, and lost (with the fence the node sent).
    Renewed(#[serde(skip)] Vec<Grant>, Vec<(RunKey, u16)>),
    /// `end`, answering the request numbered so: accepted (with a retry to hold), or
    /// refused.
    Ended(RunKey, u8, #[serde(skip)] Option<Option<Grant>>),
}

/// A call of one of the store's operations, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `claim_due`.
    ClaimDue,
    /// `start` of a run the node holds (again, after a lost reply).
    Start(RunKey),
    /// `renew` of every run the node holds (at each tick, when some lease ends soon by
    /// the node's clock).
    Renew,
    /// `end` of a run whose work ended so (again, after a lost reply), recorded or not.
    End(RunKey, Outcome, bool),
    /// `sweep`.
    Sweep,
}

/// How a call's reply reaches the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// At once.
    Now,
    /// Fault: never.
    Lost,
    /// Fault: later, in any order with what the node does meanwhile.
    Late,
    /// Fault: at once, and again later.
    Twice,
}

/// One step of the model: a node calls the store, a late reply arrives, a fault, or
/// the clock moves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A node calls the store; the reply is delivered so.
    Call(NodeId, Call, Delivery),
    /// The late reply at this index arrives.
    Receive(usize),
    /// Fault: a node crashes.
    Crash(NodeId),
    /// A crashed node starts again.
    Restart(NodeId),
    /// Fault: a node stalls for longer than a lease.
    Stall(NodeId),
    /// The clock moves one tick; every running node then renews its leases that end
    /// soon by its clock.
    Tick,
}

/// Everything: the store, the nodes, the replies on their way, the faults left, each
/// start of work by a node (the run, the node), and the run history's records.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct State {
    /// The store.
    pub store: Store,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Replies on their way, in order.
    pub replies: Vec<Reply>,
    /// Faults left.
    pub faults: Faults,
    /// Every start of a run's work, in order: which run, by which node.
    pub starts: Vec<(RunKey, NodeId)>,
    /// The run history: each run's recorded outcome (the last written), in key order.
    pub records: Vec<(RunKey, Outcome)>,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            serde_json::to_string(self).map_err(|_| fmt::Error)?
        )
    }
}

impl Setup {
    /// A node's clock.
    pub fn clock(&self, state: &State, node: NodeId) -> Tick {
        let t = i16::from(state.store.now) + i16::from(self.skews[usize::from(node)]);
        t.max(0) as Tick
    }

    /// The calls `node` would make now, and whether any is urgent (the clock waits
    /// for it).
    fn calls(&self, state: &State, n: NodeId, calls: &mut Vec<Call>) -> bool {
        let (now, node) = (state.store.now, &state.nodes[usize::from(n)]);
        let mut urgent = false;
        let mut call = |c: Call, u: bool| {
            calls.push(c);
            urgent |= u;
        };
        if state.store.has_due(&self.rules) {
            call(Call::ClaimDue, true);
        }
        if state.store.has_expired() {
            call(Call::Sweep, true);
        }
        let clock = self.clock(state, n);
        for h in &node.held {
            if let Some(seq) = h.asked {
                // A reply lost: asked again once the node gives up waiting for it.
                let answered = state
                    .replies
                    .iter()
                    .any(|r| r.node == n && r.life == node.life && r.body.answers(h.key, seq));
                if !answered {
                    match h.phase {
                        Phase::Finished(outcome) => call(Call::End(h.key, outcome, false), true),
                        Phase::Ending(outcome) => call(Call::End(h.key, outcome, true), true),
                        _ => call(Call::Start(h.key), true),
                    }
                }
                continue;
            }
            match h.phase {
                Phase::Claimed => call(Call::Start(h.key), true),
                // Started by its own clock; urgent once due on the store's, so that a
                // node whose clock runs ahead does not hold the time back.
                Phase::Waiting(Some(due)) if due <= clock && !h.early => {
                    call(Call::Start(h.key), due <= now);
                }
                Phase::Waiting(None) => {
                    let max = self.rules.jobs[usize::from(h.key.job)].max_instances;
                    if state.store.running(h.key.job) < usize::from(max) {
                        call(Call::Start(h.key), true);
                    }
                }
                // The work takes `work` ticks; a first attempt of a job with retries
                // may fail.
                Phase::Running(since) if now >= since + self.work => {
                    call(Call::End(h.key, Outcome::Success, false), true);
                    if h.key.attempt < self.rules.jobs[usize::from(h.key.job)].attempts {
                        call(Call::End(h.key, Outcome::Failure, false), true);
                    }
                }
                // An end the store took before its record: recorded, then written.
                Phase::Finished(outcome) => call(Call::End(h.key, outcome, false), true),
                // An end the store decided or took: recorded, then written.
                Phase::Ending(outcome) => call(Call::End(h.key, outcome, true), true),
                Phase::Waiting(Some(_)) | Phase::Running(_) => {}
            }
        }
        urgent
    }

    /// The steps the model may take from `state`. The clock moves only when none is
    /// urgent.
    pub fn steps(&self, state: &State, actions: &mut Vec<Action>) {
        let now = state.store.now;
        let faulty = now < self.fault_horizon;
        let f = state.faults;
        let mut urgent = false;
        let mut calls = Vec::new();
        for (i, node) in state.nodes.iter().enumerate() {
            let n = i as NodeId;
            match node.status {
                Status::Up => {}
                Status::Down => {
                    actions.push(Action::Restart(n));
                    continue;
                }
                Status::Stalled(_) => continue,
            }
            calls.clear();
            urgent |= self.calls(state, n, &mut calls);
            for &call in &calls {
                actions.push(Action::Call(n, call, Delivery::Now));
                if faulty {
                    for (left, delivery) in [
                        (f.losses, Delivery::Lost),
                        (f.delays, Delivery::Late),
                        (f.duplicates, Delivery::Twice),
                    ] {
                        if left > 0 {
                            actions.push(Action::Call(n, call, delivery));
                        }
                    }
                }
            }
            if faulty && f.crashes > 0 {
                actions.push(Action::Crash(n));
            }
            if faulty && f.stalls > 0 {
                actions.push(Action::Stall(n));
            }
        }
        // A late reply arrives at any time, at the latest once faults stop.
        for (i, reply) in state.replies.iter().enumerate() {
            if state.nodes[usize::from(reply.node)].status == Status::Up {
                actions.push(Action::Receive(i));
                urgent |= !faulty;
            }
        }
        // Once every fire time has its outcome nothing is left to wait for.
        if !urgent && now < self.end && !every_fire_time_has_an_outcome(&self.rules, state) {
            actions.push(Action::Tick);
        }
    }

    /// The state after `action`.
    pub fn step(&self, state: &State, action: Action) -> State {
        let mut s = state.clone();
        let now = s.store.now;
        match action {
            Action::Call(n, call, delivery) => {
                let body = self.apply(&mut s, n, call);
                let life = s.nodes[usize::from(n)].life;
                let reply = Reply {
                    node: n,
                    life,
                    body,
                };
                match delivery {
                    Delivery::Now => s.read(reply, now),
                    Delivery::Lost => s.faults.losses -= 1,
                    Delivery::Late => {
                        s.faults.delays -= 1;
                        s.post(reply);
                    }
                    Delivery::Twice => {
                        s.faults.duplicates -= 1;
                        s.post(reply.clone());
                        s.read(reply, now);
                    }
                }
            }
            Action::Receive(i) => {
                let reply = s.replies.remove(i);
                s.read(reply, now);
            }
            Action::Crash(n) => {
                s.faults.crashes -= 1;
                let node = &mut s.nodes[usize::from(n)];
                node.status = Status::Down;
                node.held.clear();
                s.replies.retain(|r| r.node != n);
            }
            Action::Restart(n) => {
                let node = &mut s.nodes[usize::from(n)];
                node.status = Status::Up;
                node.life += 1;
            }
            Action::Stall(n) => {
                s.faults.stalls -= 1;
                s.nodes[usize::from(n)].status = Status::Stalled(now + self.stall);
            }
            Action::Tick => {
                s.store.now += 1;
                let mut resumed = Vec::new();
                for (n, node) in s.nodes.iter_mut().enumerate() {
                    node.held.iter_mut().for_each(|h| h.early = false);
                    if matches!(node.status, Status::Stalled(until) if until <= s.store.now) {
                        node.status = Status::Up;
                        resumed.push(n as NodeId);
                    }
                }
                // Every running node renews the leases that end soon by its clock, as
                // its heartbeat does (renewals commute with one another, so one step).
                // A node that resumes from a stall acts on its memory before its next
                // heartbeat: it renews at the next tick.
                for n in (0..s.nodes.len() as NodeId).filter(|n| !resumed.contains(n)) {
                    let clock = self.clock(&s, n);
                    let node = &s.nodes[usize::from(n)];
                    if node.status == Status::Up
                        && node
                            .held
                            .iter()
                            .any(|h| h.lease_until < clock + self.renew_margin)
                    {
                        let body = self.apply(&mut s, n, Call::Renew);
                        let life = s.nodes[usize::from(n)].life;
                        s.read(
                            Reply {
                                node: n,
                                life,
                                body,
                            },
                            s.store.now,
                        );
                    }
                }
            }
        }
        s
    }

    /// Applies `call` on the store for node `n`; answers the reply.
    fn apply(&self, s: &mut State, n: NodeId, call: Call) -> Body {
        let rules = &self.rules;
        let clock = self.clock(s, n);
        let node = &mut s.nodes[usize::from(n)];
        match call {
            Call::ClaimDue => Body::Granted(s.store.claim_due(rules, n)),
            Call::Sweep => Body::Granted(s.store.sweep(rules, n)),
            Call::Renew => {
                let held: Vec<(RunKey, u16)> = node.held.iter().map(|h| (h.key, h.fence)).collect();
                let (renewed, lost) = s.store.renew(rules, n, &held);
                Body::Renewed(renewed, lost)
            }
            Call::Start(key) | Call::End(key, _, _) => {
                node.seq += 1;
                let seq = node.seq;
                let h = node.held_mut(key).expect("held");
                if let Call::End(_, outcome, recorded) = call {
                    h.phase = match recorded {
                        true => Phase::Ending(outcome),
                        false => Phase::Finished(outcome),
                    };
                }
                h.asked = Some(seq);
                let h = *h;
                match h.phase {
                    Phase::Ending(outcome) => {
                        // The record first: an end without one is never written.
                        let at = s.records.partition_point(|(k, _)| *k < key);
                        match s.records.get_mut(at) {
                            Some((k, o)) if *k == key => *o = outcome,
                            _ => s.records.insert(at, (key, outcome)),
                        }
                        let reply = s.store.end(rules, n, key, h.fence, outcome, true);
                        Body::Ended(key, seq, reply)
                    }
                    Phase::Finished(outcome) => {
                        let reply = s.store.end(rules, n, key, h.fence, outcome, false);
                        Body::Ended(key, seq, reply)
                    }
                    _ => Body::Start(key, seq, s.store.start(rules, n, key, h.fence, clock)),
                }
            }
        }
    }
}

impl State {
    /// Puts a reply on its way.
    fn post(&mut self, reply: Reply) {
        let at = self.replies.partition_point(|r| *r < reply);
        self.replies.insert(at, reply);
    }

    /// A node reads a reply (one to an earlier life of it is dropped); a run whose work
    /// it starts now is recorded.
    fn read(&mut self, reply: Reply, now: Tick) {
        let node = &mut self.nodes[usize::from(reply.node)];
        if node.life != reply.life {
            return;
        }
        if let Some(key) = node.read(reply.body, now) {
            let start = (key, reply.node);
            let at = self.starts.partition_point(|x| *x < start);
            self.starts.insert(at, start);
        }
    }
}

impl Body {
    /// Whether this reply answers request `seq`, a start or an end of `key`.
    fn answers(&self, key: RunKey, seq: u8) -> bool {
        matches!(self, Body::Start(k, q, _) | Body::Ended(k, q, _) if *k == key && *q == seq)
    }
}

impl Node {
    fn held_mut(&mut self, key: RunKey) -> Option<&mut Held> {
        self.held.iter_mut().find(|h| h.key == key)
    }

    /// Takes a run the store granted (or refreshes it).
    fn hold(&mut self, grant: Grant) {
        let phase = match (grant.decided, grant.waiting) {
            (Some(outcome), _) => Phase::Ending(outcome),
            (None, Some(due)) => Phase::Waiting(due),
            (None, None) => Phase::Claimed,
        };
        let fresh = Held {
            key: grant.key,
            fence: grant.fence,
            lease_until: grant.lease_until,
            phase,
            asked: None,
            early: false,
        };
        match self.held_mut(grant.key) {
            Some(h) if h.fence == grant.fence => h.lease_until = grant.lease_until,
            Some(h) => *h = fresh,
            None => {
                let at = self.held.partition_point(|h| h.key < grant.key);
                self.held.insert(at, fresh);
            }
        }
    }

    /// Reads a reply; answers the run whose work it starts now, if any.
    fn read(&mut self, body: Body, now: Tick) -> Option<RunKey> {
        match body {
            Body::Granted(grants) => grants.into_iter().for_each(|g| self.hold(g)),
            Body::Renewed(renewed, lost) => {
                renewed.into_iter().for_each(|g| self.hold(g));
                self.held.retain(|h| !lost.contains(&(h.key, h.fence)));
            }
            Body::Start(key, seq, reply) => {
                let h = self.held_mut(key)?;
                if h.asked != Some(seq) {
                    return None; // a duplicate, or the answer to an earlier request
                }
                h.asked = None;
                match reply {
                    StartReply::Started => {
                        h.phase = Phase::Running(now);
                        return Some(key);
                    }
                    StartReply::Waiting(due) => {
                        h.early = due.is_some();
                        h.phase = Phase::Waiting(due);
                    }
                    StartReply::Ended(outcome) => h.phase = Phase::Ending(outcome),
                    StartReply::Refused => self.held.retain(|h| h.key != key),
                }
            }
            Body::Ended(key, seq, reply) => {
                let h = self.held_mut(key)?;
                if h.asked != Some(seq) {
                    return None;
                }
                h.asked = None;
                // Told before its record: held until recorded and ended.
                match (h.phase, &reply) {
                    (Phase::Finished(outcome), Some(_)) => h.phase = Phase::Ending(outcome),
                    _ => self.held.retain(|h| h.key != key),
                }
                if let Some(Some(retry)) = reply {
                    self.hold(retry);
                }
            }
        }
        None
    }
}

/// Whether the store's states of each run only move forward: a run that started is
/// started, ended or interrupted.
pub fn started_stays_started(state: &State) -> bool {
    state
        .starts
        .iter()
        .all(|(key, _)| state.store.run(*key).is_some_and(|r| !r.state.unstarted()))
}

/// Whether each fire time of each job has an outcome: every fire time released, its
/// last run (latest attempt, latest rerun) ended, or interrupted for a job that does
/// not recover, and every run that ended or was interrupted recorded so.
pub fn every_fire_time_has_an_outcome(rules: &Rules, state: &State) -> bool {
    rules.jobs.iter().enumerate().all(|(j, spec)| {
        usize::from(state.store.jobs[j].next) == spec.fire_times.len()
            && (0..spec.fire_times.len()).all(|fire| {
                let last = state
                    .store
                    .runs
                    .iter()
                    .filter(|r| usize::from(r.key.job) == j && usize::from(r.key.fire) == fire)
                    .max_by_key(|r| (r.key.attempt, r.key.rerun));
                match last.map(|r| r.state) {
                    Some(RunState::Ended(_)) => true,
                    Some(RunState::Interrupted) => !spec.recover,
                    _ => false,
                }
            })
    }) && every_end_is_recorded(state)
}

/// Whether every run that ended or was interrupted has a record. (Not always of the
/// store's outcome: a holder that stalled past its lease and wakes records what its
/// work did, after the sweeper recorded the run interrupted.)
pub fn every_end_is_recorded(state: &State) -> bool {
    state.store.runs.iter().all(|r| {
        !matches!(r.state, RunState::Ended(_) | RunState::Interrupted)
            || state.records.iter().any(|&(k, _)| k == r.key)
    })
}

//! The simulated world: the one store every node shares (the memory job store and run
//! history), the faults it suffers, each node's process state, the seeded random
//! source every fault is drawn from, and the trace.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_store_memory::{MemoryJobStore, MemoryRunHistory};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;

use crate::check::Checker;
use crate::clock::VirtualTime;
use crate::Sabotage;

/// How many trace lines a failing seed prints (the last ones).
const TRACE_TAIL: usize = 400;

/// A node process as the world sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Process {
    /// Running.
    Up,
    /// Stopped (SIGSTOP): nothing it does goes on until it is resumed.
    Paused,
    /// Killed: nothing it does goes on, ever.
    Crashed,
}

/// One node's link to the world: its name and its process state, which every store
/// call and every run of the node passes through ([`NodeLink::gate`]).
#[derive(Debug)]
pub(crate) struct NodeLink {
    pub(crate) name: String,
    state: Mutex<Process>,
    /// Wakes the calls and runs waiting at the gate, in the order they came (tokio's
    /// `watch` would wake them in a random order, and the trace would differ).
    changed: Notify,
}

impl NodeLink {
    pub(crate) fn new(name: String) -> Self {
        NodeLink {
            name,
            state: Mutex::new(Process::Up),
            changed: Notify::new(),
        }
    }

    pub(crate) fn process(&self) -> Process {
        *self.state.lock()
    }

    pub(crate) fn set(&self, process: Process) {
        *self.state.lock() = process;
        self.changed.notify_waiters();
    }

    /// Returns once the node runs: at once when up, at its resumption when paused,
    /// never when crashed (the future stays pending, as a killed process's work does).
    pub(crate) async fn gate(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a change in between is not missed.
            notified.as_mut().enable();
            match self.process() {
                Process::Up => return,
                Process::Crashed => std::future::pending::<()>().await,
                Process::Paused => notified.await,
            }
        }
    }
}

/// Where in a store call a pending crash or pause takes the node: the windows between
/// a claim and its release, a release and the run's start, a write and its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before the request leaves: the call is never made.
    BeforeRequest,
    /// After the store applied it, before the reply arrives.
    AfterApply,
}

/// A crash or pause the driver decided on, waiting for the node's next store call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    pub(crate) process: Process,
    pub(crate) phase: Phase,
}

/// What the store does to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallFault {
    /// Answered after the base round trip plus this delay.
    Delay(Duration),
    /// The store is failing over: the call is refused.
    Down,
    /// The request is lost: not applied, and the caller times out.
    LostRequest,
    /// Applied, and the reply is lost: the caller times out.
    LostReply,
}

/// The store's faults in force, as the driver sets them.
#[derive(Debug, Default)]
pub(crate) struct StoreFaults {
    /// Failing over until this virtual millisecond.
    pub(crate) down_until: u64,
    /// Slow until this virtual millisecond, each call delayed up to `slow_max`.
    pub(crate) slow_until: u64,
    pub(crate) slow_max: Duration,
    /// Per-mille chance that a call's request or reply is lost (0 once faults stop).
    pub(crate) loss_per_mille: u32,
}

/// The trace: a hash of every event (what a replay must reproduce) and the last lines.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    hash: DefaultHasher,
    events: u64,
    tail: VecDeque<String>,
    /// Keep every line.
    full: bool,
}

impl Trace {
    fn push(&mut self, line: String) {
        self.hash.write(line.as_bytes());
        self.hash.write_u8(b'\n');
        self.events += 1;
        if !self.full && self.tail.len() == TRACE_TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    pub(crate) fn hash(&self) -> u64 {
        self.hash.finish()
    }

    pub(crate) fn events(&self) -> u64 {
        self.events
    }

    pub(crate) fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}

/// Everything the nodes share.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) jobs: MemoryJobStore,
    pub(crate) history: Arc<MemoryRunHistory>,
    pub(crate) time: VirtualTime,
    pub(crate) faults: Mutex<StoreFaults>,
    pub(crate) checker: Mutex<Checker>,
    pub(crate) sabotage: Option<Sabotage>,
    /// Crashes and pauses to apply at a node's next store call, by node name.
    pub(crate) pending: Mutex<std::collections::BTreeMap<String, Pending>>,
    rng: Mutex<StdRng>,
    trace: Mutex<Trace>,
    log: Mutex<VecDeque<String>>,
}

impl World {
    pub(crate) fn new(
        seed: u64,
        time: VirtualTime,
        full_trace: bool,
        sabotage: Option<Sabotage>,
    ) -> Self {
        World {
            // The runs' leases are judged on the store's clock: true virtual time.
            jobs: MemoryJobStore::new().with_clock(Arc::new(time)),
            history: Arc::new(MemoryRunHistory::new()),
            time,
            faults: Mutex::new(StoreFaults::default()),
            checker: Mutex::new(Checker::default()),
            sabotage,
            pending: Mutex::new(std::collections::BTreeMap::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            trace: Mutex::new(Trace {
                full: full_trace,
                ..Trace::default()
            }),
            log: Mutex::new(VecDeque::new()),
        }
    }

    /// A draw from the seeded source (every random choice of a run goes through it, in
    /// the order the single-threaded runtime makes them).
    pub(crate) fn rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.rng.lock())
    }

    /// Adds a line to the trace, stamped with the virtual time.
    pub(crate) fn trace(&self, line: impl AsRef<str>) {
        let line = format!("{:>8} {}", self.time.millis(), line.as_ref());
        self.trace.lock().push(line);
    }

    /// Keeps an engine's log line (the last ones only), stamped with the virtual time.
    pub(crate) fn log(&self, line: &str) {
        let mut log = self.log.lock();
        if log.len() == TRACE_TAIL {
            log.pop_front();
        }
        log.push_back(format!("{:>8} {line}", self.time.millis()));
    }

    pub(crate) fn log_tail(&self) -> Vec<String> {
        self.log.lock().iter().cloned().collect()
    }

    pub(crate) fn trace_summary(&self) -> (u64, u64, Vec<String>) {
        let trace = self.trace.lock();
        (trace.hash(), trace.events(), trace.tail())
    }

    /// Applies the crash or pause pending for `link` at `phase` of a call, if any.
    pub(crate) fn take_pending(&self, link: &NodeLink, phase: Phase, op: &str) {
        let mut pending = self.pending.lock();
        let Some(p) = pending.get(&link.name).copied() else {
            return;
        };
        if p.phase != phase {
            return;
        }
        pending.remove(&link.name);
        drop(pending);
        if p.process == Process::Crashed {
            self.checker.lock().crashed.insert(link.name.clone());
        }
        link.set(p.process);
        self.trace(format!("{} {:?} at {op} ({phase:?})", link.name, p.process));
    }

    /// What the store does to the next call (`op` from `node`), traced.
    pub(crate) fn draw(&self, node: &str, op: &str) -> CallFault {
        let now = self.time.millis();
        let (down, slow_max, loss) = {
            let f = self.faults.lock();
            let slow = if now < f.slow_until {
                f.slow_max
            } else {
                Duration::ZERO
            };
            (now < f.down_until, slow, f.loss_per_mille)
        };
        let fault = if down {
            CallFault::Down
        } else {
            self.rng(|rng| {
                let roll = rng.gen_range(0..1000u32);
                if roll < loss {
                    CallFault::LostRequest
                } else if roll < 2 * loss {
                    CallFault::LostReply
                } else if slow_max.is_zero() {
                    CallFault::Delay(Duration::ZERO)
                } else {
                    let ms = rng.gen_range(0..=slow_max.as_millis() as u64);
                    CallFault::Delay(Duration::from_millis(ms))
                }
            })
        };
        self.trace(format!("{node} {op} {fault:?}"));
        fault
    }
}

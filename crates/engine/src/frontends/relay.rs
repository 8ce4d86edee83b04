//! Two threads sharing the thread-based main loop, so the thread that wakes for a due
//! time runs the job itself instead of waking a worker: one wake-up a run instead of
//! two (the loop's and a worker's), which on a virtual machine is most of the CPU a
//! steady schedule costs.
//!
//! Both threads wait on one timer, armed for the loop's next wake-up, through one epoll
//! instance that wakes a single waiter per expiry. Whichever wakes runs a turn of the
//! loop. When the pass leaves it a run ([`Executor::take_deferred`]), it runs the job
//! and then waits again; meanwhile the other thread, waiting on the same timer, keeps
//! the schedule: a long job never delays the next due time, and a short one costs no
//! thread switch at all. A run is taken only while the other thread waits, so someone
//! always does. A wake-up of the loop (a job added, a shutdown) fires the timer at once.
//!
//! Linux only (`timerfd`, `epoll`); elsewhere the loop runs every job on the executor's
//! workers.
//!
//! [`Executor::take_deferred`]: apscheduler_core::Executor::take_deferred

use super::main_loop::{turn, Turn};
use super::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The loop's timer: armed without waking anyone, waited on by both threads, waking
/// one of them per expiry.
#[cfg(target_os = "linux")]
struct Timer {
    timer: std::os::fd::OwnedFd,
    poll: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl Timer {
    fn new() -> Option<Self> {
        use rustix::event::epoll;
        use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
        let timer = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::CLOEXEC).ok()?;
        let poll = epoll::create(epoll::CreateFlags::CLOEXEC).ok()?;
        // Edge-triggered: an expiry wakes one waiter of the shared instance, not both.
        epoll::add(
            &poll,
            &timer,
            epoll::EventData::new_u64(0),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )
        .ok()?;
        Some(Timer { timer, poll })
    }

    /// Fires after `after` (`None`: never, until armed again; zero: at once).
    fn arm(&self, after: Option<Duration>) {
        use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let value = match after {
            None => zero,
            Some(d) => Timespec {
                tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                // Zero would disarm it: at once is one nanosecond.
                tv_nsec: i64::from(d.subsec_nanos().max(u32::from(d.as_secs() == 0))),
            },
        };
        let spec = Itimerspec {
            it_interval: zero,
            it_value: value,
        };
        if let Err(e) = timerfd_settime(&self.timer, TimerfdTimerFlags::empty(), &spec) {
            // Cannot happen with a valid timer and value; say so rather than stall.
            apscheduler_core::log_error!(target: "apscheduler", "cannot arm the scheduler's timer: {e}");
        }
    }

    /// Blocks until the timer fires (or fired since the last wait returned).
    fn wait(&self) {
        use rustix::event::epoll;
        let mut events = [epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        }];
        loop {
            match epoll::wait(&self.poll, &mut events[..], None) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    apscheduler_core::log_error!(target: "apscheduler", "cannot wait on the scheduler's timer: {e}");
                    std::thread::sleep(Duration::from_millis(1));
                    return;
                }
                Ok(_) => return,
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
struct Timer;

#[cfg(not(target_os = "linux"))]
impl Timer {
    fn new() -> Option<Self> {
        None
    }
    fn arm(&self, _after: Option<Duration>) {}
    fn wait(&self) {}
}

/// What the two threads share.
pub(super) struct Relay {
    timer: Timer,
    /// Held while a thread runs a turn: one turn at a time.
    turn: Mutex<()>,
    /// Threads waiting on the timer (a run may be taken while one does).
    waiting: AtomicUsize,
    /// A thread was woken while the other ran a turn: one more turn is due.
    again: AtomicBool,
    /// The scheduler was shut down: both threads leave.
    stopped: AtomicBool,
    /// The thread running a job, if any (`BackgroundScheduler::shutdown(false)` does
    /// not wait for it).
    busy_thread: Mutex<Option<std::thread::ThreadId>>,
}

impl Relay {
    /// `None` where there is no timer to share.
    pub(super) fn new() -> Option<Arc<Self>> {
        Some(Arc::new(Relay {
            timer: Timer::new()?,
            turn: Mutex::new(()),
            waiting: AtomicUsize::new(0),
            again: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            busy_thread: Mutex::new(None),
        }))
    }

    /// Whether `thread` is running a job for the loop.
    pub(super) fn runs_job_on(&self, thread: std::thread::ThreadId) -> bool {
        *self.busy_thread.lock().unwrap_or_else(|e| e.into_inner()) == Some(thread)
    }

    fn set_busy(&self, busy: bool) {
        *self.busy_thread.lock().unwrap_or_else(|e| e.into_inner()) =
            busy.then(|| std::thread::current().id());
    }

    fn wait(&self) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.timer.wait();
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }

    /// Runs turns, jobs the passes leave and waits, until shutdown.
    fn serve(&self, engine: &Engine, runner: &Runner) {
        loop {
            if self.stopped.load(Ordering::Acquire) {
                // Leave the timer fired for the other thread.
                self.timer.arm(Some(Duration::ZERO));
                return;
            }
            let guard = match take_turn(&self.turn) {
                Some(guard) => guard,
                None => {
                    // The other thread runs a turn, which may have begun before what
                    // woke this thread, and its arming may have replaced that expiry:
                    // leave it a note to run one more. Then try again, in case it had
                    // already looked for notes.
                    self.again.store(true, Ordering::SeqCst);
                    match take_turn(&self.turn) {
                        Some(guard) => guard,
                        None => {
                            self.wait();
                            continue;
                        }
                    }
                }
            };
            // This turn covers whatever an earlier note was for.
            self.again.store(false, Ordering::SeqCst);
            let take = self.waiting.load(Ordering::Acquire) > 0;
            // Boxed: the pass's future is large, and moving it costs more than a box.
            let (seen, next, run) = match runner.block_on(Box::pin(turn(engine, take))) {
                Turn::Stop => {
                    self.stopped.store(true, Ordering::Release);
                    continue;
                }
                Turn::Sleep { seen, next, run } => (seen, next, run),
            };
            self.timer.arm(next);
            // A wake-up that came during the pass needs another one at once.
            let again = engine.wake_signal().changed_since(seen);
            drop(guard);
            match run {
                Some(run) => {
                    if again {
                        // The other thread waits on the timer: it runs that pass.
                        self.timer.arm(Some(Duration::ZERO));
                    }
                    self.set_busy(true);
                    run.run();
                    self.set_busy(false);
                }
                None if again => continue,
                None => {}
            }
            if self.again.swap(false, Ordering::SeqCst) {
                continue;
            }
            self.wait();
        }
    }
}

/// The turn, unless the other thread has it. A turn whose thread panicked (a bug in the
/// engine's own code: a store's panic is caught in its pass) left the lock poisoned, not
/// held: this thread takes the turns from its next wake-up on.
fn take_turn(turn: &Mutex<()>) -> Option<std::sync::MutexGuard<'_, ()>> {
    match turn.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Runs the loop on this thread and a second one until shutdown; an error when the
/// second thread cannot be spawned (the caller then runs the plain loop).
pub(super) fn run_relayed(
    engine: &Engine,
    runner: &Runner,
    relay: &Arc<Relay>,
) -> Result<(), std::io::Error> {
    let second = {
        let (engine, runner, relay) = (engine.clone(), runner.clone(), relay.clone());
        std::thread::Builder::new()
            .name("aps-scheduler-2".into())
            .spawn(move || relay.serve(&engine, &runner))?
    };
    let poke = relay.clone();
    engine
        .wake_signal()
        .set_hook(Some(Arc::new(move || poke.timer.arm(Some(Duration::ZERO)))));
    relay.serve(engine, runner);
    engine.wake_signal().set_hook(None);
    // The second thread leaves by itself once it sees the stop; it may still be running
    // a job (which `shutdown(true)` waits for through the executor), so it is not joined.
    drop(second);
    Ok(())
}

//! Waking the main loop: one signal that thread-based front-ends wait on with a
//! condition variable, async ones with a tokio `Notify`, and host loops through a hook.
//!
//! The thread-based loop also says until when it sleeps ([`WakeSignal::arm`]), so a
//! change that cannot make its next pass earlier (a job added with a later run time)
//! is counted as a wake-up without waking the loop: adding many jobs to a running
//! scheduler then costs no thread switch per job.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

type Hook = Arc<dyn Fn() + Send + Sync>;

/// What the thread-based main loop promised about its next pass.
#[derive(Debug, Clone, Copy)]
enum Armed {
    /// Nothing (a pass is running, or no thread-based loop waits): every wake-up wakes.
    Unknown,
    /// The loop sleeps until this instant (engine clock) unless woken.
    Until(DateTime<Utc>),
    /// The loop sleeps until woken.
    Forever,
}

/// The wake-ups asked for while a pass runs (when nothing is promised).
#[derive(Debug, Clone, Copy)]
enum Asked {
    /// None yet.
    Nothing,
    /// Only for changes whose earliest run time is this instant or later.
    From(DateTime<Utc>),
    /// A change that may need a pass at once.
    Now,
}

struct Shared {
    generation: u64,
    armed: Armed,
    /// What the wake-ups since [`WakeSignal::begin_pass`] asked for.
    asked: Asked,
}

/// The main loop's wake-up signal.
pub(crate) struct WakeSignal {
    shared: Mutex<Shared>,
    cond: Condvar,
    notify: tokio::sync::Notify,
    calls: AtomicU64,
    hook: Mutex<Option<Hook>>,
}

impl WakeSignal {
    pub(crate) fn new() -> Self {
        WakeSignal {
            shared: Mutex::new(Shared {
                generation: 0,
                armed: Armed::Unknown,
                asked: Asked::Nothing,
            }),
            cond: Condvar::new(),
            notify: tokio::sync::Notify::new(),
            calls: AtomicU64::new(0),
            hook: Mutex::new(None),
        }
    }

    /// Wakes whoever waits (or makes the next wait return at once).
    pub(crate) fn wake(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        {
            let mut g = self.lock();
            g.generation = g.generation.wrapping_add(1);
            g.asked = Asked::Now;
        }
        self.notify();
    }

    /// A wake-up for a change whose earliest run time is `at` (`None`: no run time):
    /// counted like [`wake`](Self::wake), but a loop armed to wake by itself no later
    /// than `at` is left asleep; it sees the change on that pass.
    pub(crate) fn wake_for(&self, at: Option<DateTime<Utc>>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        {
            let mut g = self.lock();
            let needed = match (g.armed, at) {
                (Armed::Until(d), Some(t)) => t < d,
                (Armed::Until(_) | Armed::Forever, None) => false,
                (Armed::Forever | Armed::Unknown, Some(_)) | (Armed::Unknown, None) => true,
            };
            if !needed {
                return;
            }
            g.generation = g.generation.wrapping_add(1);
            g.asked = match (g.asked, at) {
                (Asked::Nothing, Some(t)) => Asked::From(t),
                (Asked::From(s), Some(t)) => Asked::From(s.min(t)),
                _ => Asked::Now,
            };
        }
        self.notify();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        self.cond.notify_all();
        self.notify.notify_one();
        let hook = self.hook.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// How many wake-ups were asked for, with `wake` or `wake_for` (informative).
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Starts a pass of the thread-based loop: returns the current generation (read
    /// before processing, so a wake-up during processing is not lost) and withdraws the
    /// loop's promise, so every wake-up until [`arm`](Self::arm) wakes.
    pub(crate) fn begin_pass(&self) -> u64 {
        let mut g = self.lock();
        g.armed = Armed::Unknown;
        g.asked = Asked::Nothing;
        g.generation
    }

    /// After a pass begun at `seen`: the loop will sleep until `until` (`None`: until
    /// woken). Returns the generation to wait after ([`wait`](Self::wait)): `seen` when
    /// a wake-up since then needs another pass at once; the current one when none did,
    /// or when every wake-up during the pass was for a run time at or after `until`
    /// (the pass at `until` sees those changes), so jobs added while a pass runs do
    /// not make the loop pass again for each of them.
    pub(crate) fn arm(&self, seen: u64, until: Option<DateTime<Utc>>) -> u64 {
        let mut g = self.lock();
        let absorbed =
            g.generation != seen && matches!((g.asked, until), (Asked::From(t), Some(u)) if t >= u);
        if g.generation == seen || absorbed {
            g.armed = until.map_or(Armed::Forever, Armed::Until);
        }
        if absorbed {
            // The async loop waits on the `Notify`: take the permit those wake-ups
            // left, under the lock, so no later wake-up's permit can be taken.
            let notified = std::pin::pin!(self.notify.notified());
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let _ = std::future::Future::poll(notified, &mut cx);
            return g.generation;
        }
        seen
    }

    /// Whether a wake-up came after `seen` (what [`arm`](Self::arm) returned): the loop
    /// must pass again at once.
    pub(crate) fn changed_since(&self, seen: u64) -> bool {
        self.lock().generation != seen
    }

    /// The thread-based loop stopped: every wake-up wakes again.
    pub(crate) fn disarm(&self) {
        self.lock().armed = Armed::Unknown;
    }

    /// Blocks until woken after `seen` or until `timeout` passes (`None` = no timeout).
    pub(crate) fn wait(&self, seen: u64, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut g = self.lock();
        while g.generation == seen {
            match deadline {
                None => g = self.cond.wait(g).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return;
                    }
                    g = self
                        .cond
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    /// Waits asynchronously for a wake-up.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Calls `hook` on every wake-up (host event loops re-arm their timer there).
    pub(crate) fn set_hook(&self, hook: Option<Hook>) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = hook;
    }
}

impl fmt::Debug for WakeSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeSignal")
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    #[test]
    fn an_armed_loop_is_woken_only_by_earlier_run_times() {
        let w = WakeSignal::new();
        let seen = w.begin_pass();
        w.arm(seen, Some(at(100)));
        w.wake_for(Some(at(100)));
        w.wake_for(Some(at(150)));
        w.wake_for(None);
        assert_eq!(
            w.begin_pass(),
            seen,
            "no wake-up at or after the armed instant"
        );
        w.arm(seen, Some(at(100)));
        w.wake_for(Some(at(99)));
        assert_ne!(w.begin_pass(), seen, "an earlier run time wakes");
        assert_eq!(w.calls(), 4, "every wake-up is counted");
    }

    #[test]
    fn a_wake_during_a_pass_is_never_lost() {
        let w = WakeSignal::new();
        let seen = w.begin_pass();
        // While the pass runs nothing is promised: a run time earlier than the one the
        // pass then arms for makes the loop pass again at once ...
        w.wake_for(Some(at(500)));
        w.wake_for(Some(at(50)));
        assert_eq!(w.arm(seen, Some(at(100))), seen);
        w.wait(seen, None); // returns at once
                            // ... as does a plain wake-up.
        let seen = w.begin_pass();
        w.wake();
        assert_eq!(w.arm(seen, Some(at(100))), seen);
        let seen = w.begin_pass();
        w.arm(seen, None);
        w.wake_for(None);
        assert_eq!(
            w.begin_pass(),
            seen,
            "a loop asleep until woken ignores paused jobs"
        );
        w.arm(seen, None);
        w.wake_for(Some(at(1)));
        assert_ne!(
            w.begin_pass(),
            seen,
            "any run time wakes a loop asleep until woken"
        );
    }

    #[test]
    fn jobs_added_during_a_pass_for_later_do_not_repeat_it() {
        let w = WakeSignal::new();
        let seen = w.begin_pass();
        w.wake_for(Some(at(100)));
        w.wake_for(Some(at(300)));
        let next = w.arm(seen, Some(at(100)));
        assert_ne!(next, seen, "absorbed: wait on the current generation");
        assert_eq!(w.begin_pass(), next);
        // The async loop's permit was taken too: its next wait really waits.
        let notified = std::pin::pin!(w.notified());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(notified, &mut cx).is_pending());
        // Nothing armed (`None`: until woken) absorbs nothing.
        let seen = w.begin_pass();
        w.wake_for(Some(at(300)));
        assert_eq!(w.arm(seen, None), seen);
    }

    #[test]
    fn without_a_thread_loop_every_wake_up_wakes() {
        let w = WakeSignal::new();
        let seen = w.begin_pass();
        w.disarm();
        w.wake_for(Some(at(1_000_000)));
        assert_ne!(w.begin_pass(), seen);
    }
}

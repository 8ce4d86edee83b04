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

struct Shared {
    generation: u64,
    armed: Armed,
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
        g.generation
    }

    /// After a pass begun at `seen`: the loop will sleep until `until` (`None`: until
    /// woken). Ignored when woken since `seen` (the loop then passes again at once).
    pub(crate) fn arm(&self, seen: u64, until: Option<DateTime<Utc>>) {
        let mut g = self.lock();
        if g.generation == seen {
            g.armed = until.map_or(Armed::Forever, Armed::Until);
        }
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
        // While the pass runs nothing is promised: any wake-up wakes ...
        w.wake_for(Some(at(500)));
        // ... and the loop's promise made afterwards is ignored.
        w.arm(seen, Some(at(100)));
        w.wait(seen, None); // returns at once
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
    fn without_a_thread_loop_every_wake_up_wakes() {
        let w = WakeSignal::new();
        let seen = w.begin_pass();
        w.disarm();
        w.wake_for(Some(at(1_000_000)));
        assert_ne!(w.begin_pass(), seen);
    }
}

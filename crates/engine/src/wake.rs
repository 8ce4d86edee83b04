//! Waking the main loop: one signal that thread-based front-ends wait on with a
//! condition variable, async ones with a tokio `Notify`, and host loops through a hook.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Hook = Arc<dyn Fn() + Send + Sync>;

/// The main loop's wake-up signal.
pub(crate) struct WakeSignal {
    generation: Mutex<u64>,
    cond: Condvar,
    notify: tokio::sync::Notify,
    calls: AtomicU64,
    hook: Mutex<Option<Hook>>,
}

impl WakeSignal {
    pub(crate) fn new() -> Self {
        WakeSignal {
            generation: Mutex::new(0),
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
            let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
            *g = g.wrapping_add(1);
        }
        self.cond.notify_all();
        self.notify.notify_one();
        let hook = self
            .hook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// How many times `wake` was called (informative).
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The current generation, read before processing so a wake during processing is
    /// not lost.
    pub(crate) fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until woken after `seen` or until `timeout` passes (`None` = no timeout).
    pub(crate) fn wait(&self, seen: u64, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        while *g == seen {
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

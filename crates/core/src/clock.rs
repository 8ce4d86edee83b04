//! Time sources: the system clock, and a manual clock for deterministic tests.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Where the scheduler gets "now" from. Inject a [`ManualClock`] to test without sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(now),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A clock that follows tokio's clock, for testing a real scheduler on virtual time.
///
/// It reads `start` plus the tokio time passed since it was made, on the runtime it was
/// made in (from any thread). In a runtime whose time is paused
/// (`#[tokio::test(start_paused = true)]`, tokio's `test-util` feature), tokio moves
/// time forward by itself whenever every task waits on a timer: an
/// `AsyncScheduler` on this clock
/// sleeps until its next fire time without waiting, so a year of a once-a-minute job
/// runs through the real main loop, store and async executor in moments, in the same
/// order every time. Outside a paused runtime it moves with real time.
///
/// What a test on it can rely on: the memory store and the async executor (async
/// tasks, and sync tasks, which run on tokio's blocking pool: time stands still while
/// they run); the thread-based front-ends sleep on real time, so they take
/// [`ManualClock`] and a loop driven by hand instead.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use apscheduler_core::{Clock, VirtualClock};
/// let start = "2026-01-01T00:00:00Z".parse().unwrap();
/// tokio::time::pause(); // what `#[tokio::test(start_paused = true)]` does
/// let clock = VirtualClock::starting_at(start);
/// tokio::time::advance(std::time::Duration::from_secs(90)).await;
/// assert_eq!(clock.now(), start + chrono::Duration::seconds(90));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct VirtualClock {
    start: DateTime<Utc>,
    origin: tokio::time::Instant,
    runtime: tokio::runtime::Handle,
}

impl VirtualClock {
    /// A clock reading `start` now, following the current tokio runtime's clock. Make
    /// it once that clock is paused: time that passed before counts as real time.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        VirtualClock {
            start,
            origin: tokio::time::Instant::now(),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        // Read on the runtime's clock even from a thread outside it (an executor's
        // worker, the event thread), where tokio would read the system's.
        let _inside = self.runtime.enter();
        let passed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        Duration::from_std(passed)
            .ok()
            .and_then(|d| self.start.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

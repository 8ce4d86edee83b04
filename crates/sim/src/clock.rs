//! Each node's clock: the simulation's virtual time (tokio's paused clock) read as a
//! wall-clock instant, plus the node's own skew.

use std::fmt;

use apscheduler_core::Clock;
use chrono::{DateTime, Duration, Utc};
use tokio::time::Instant;

/// Virtual time as UTC: `epoch` at the simulation's start, moving with tokio's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VirtualTime {
    start: Instant,
    epoch: DateTime<Utc>,
}

impl VirtualTime {
    /// Starts at `epoch` now (inside the paused runtime).
    pub(crate) fn new(epoch: DateTime<Utc>) -> Self {
        VirtualTime {
            start: Instant::now(),
            epoch,
        }
    }

    /// The true time: what the store's clock reads.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().duration_since(self.start);
        self.epoch + Duration::from_std(elapsed).unwrap_or(Duration::MAX)
    }

    /// Virtual milliseconds since the start: the trace's time stamps.
    pub(crate) fn millis(&self) -> u64 {
        u64::try_from(Instant::now().duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }
}

impl Clock for VirtualTime {
    fn now(&self) -> DateTime<Utc> {
        VirtualTime::now(self)
    }
}

/// A node's clock: true time plus a fixed skew (negative: behind).
pub(crate) struct SkewedClock {
    pub(crate) time: VirtualTime,
    pub(crate) skew: Duration,
}

impl fmt::Debug for SkewedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkewedClock")
            .field("skew_ms", &self.skew.num_milliseconds())
            .finish()
    }
}

impl Clock for SkewedClock {
    fn now(&self) -> DateTime<Utc> {
        self.time.now() + self.skew
    }
}

//! Cancelling a run: the signal a job's `cancel_other` / `terminate_other` overlap
//! policy sends to the runs of the job in flight when a new fire time comes.
//!
//! A task sees it through [`TaskContext::cancel`](crate::TaskContext::cancel): a sync
//! task polls [`CancelSignal::is_cancelled`] between steps, an async task awaits
//! [`CancelSignal::cancelled`]. Cancellation is cooperative: a task that never looks
//! runs to its end (and the fire time that asked waits for it).
//!
//! ```
//! use apscheduler_core::CancelSignal;
//!
//! let signal = CancelSignal::new();
//! assert!(!signal.is_cancelled());
//! signal.cancel("cancelled by the fire time of 2026-01-01T00:00:00Z", false);
//! assert!(signal.is_cancelled());
//! assert!(!signal.request().unwrap().terminate);
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// Why a run was asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// What asked, for the run's record ("cancelled by the fire time of ...").
    pub reason: String,
    /// Whether the run is to be killed at once (`terminate_other`) rather than asked to
    /// stop (`cancel_other`: SIGTERM first, for a command).
    pub terminate: bool,
}

struct Shared {
    token: CancellationToken,
    request: OnceLock<CancelRequest>,
}

/// A run's cancellation signal. The default one is inert: it is never cancelled and
/// costs no allocation (runs of jobs whose overlap policy cancels nothing carry it).
#[derive(Clone, Default)]
pub struct CancelSignal(Option<Arc<Shared>>);

impl CancelSignal {
    /// A signal that can be cancelled.
    pub fn new() -> Self {
        CancelSignal(Some(Arc::new(Shared {
            token: CancellationToken::new(),
            request: OnceLock::new(),
        })))
    }

    /// Whether this signal can be cancelled at all (not the inert default).
    pub fn is_live(&self) -> bool {
        self.0.is_some()
    }

    /// Asks the run to stop; the first request wins. Does nothing on an inert signal.
    pub fn cancel(&self, reason: impl Into<String>, terminate: bool) {
        if let Some(shared) = &self.0 {
            let _ = shared.request.set(CancelRequest {
                reason: reason.into(),
                terminate,
            });
            shared.token.cancel();
        }
    }

    /// Whether the run was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.token.is_cancelled())
    }

    /// The request, once the run was asked to stop.
    pub fn request(&self) -> Option<&CancelRequest> {
        self.0.as_ref().and_then(|s| s.request.get())
    }

    /// Completes when the run is asked to stop (never, for an inert signal).
    pub async fn cancelled(&self) {
        match &self.0 {
            Some(shared) => shared.token.cancelled().await,
            None => std::future::pending().await,
        }
    }

    /// Whether `self` and `other` are the same signal (clones of one).
    pub fn same(&self, other: &CancelSignal) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Debug for CancelSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelSignal")
            .field("live", &self.is_live())
            .field("request", &self.request())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_signal_is_never_cancelled() {
        let inert = CancelSignal::default();
        inert.cancel("x", true);
        assert!(!inert.is_cancelled());
        assert!(inert.request().is_none());
        assert!(!inert.same(&CancelSignal::default()));
    }

    #[test]
    fn the_first_request_wins_and_clones_see_it() {
        let signal = CancelSignal::new();
        let clone = signal.clone();
        signal.cancel("first", false);
        signal.cancel("second", true);
        assert!(clone.is_cancelled());
        assert_eq!(clone.request().unwrap().reason, "first");
        assert!(signal.same(&clone));
        assert!(!signal.same(&CancelSignal::new()));
    }
}

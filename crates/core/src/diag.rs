//! Warnings and errors that reach a person even when the program installed no `tracing`
//! subscriber.
//!
//! APScheduler's failing jobs, missed runs and store errors show up on stderr through
//! Python's last-resort logging handler. `tracing` drops every event when no subscriber
//! is installed, so the workspace logs its warnings and errors through [`log_warn!`] and
//! [`log_error!`]: with a subscriber installed (globally or for the current thread) they
//! are plain `tracing::warn!` / `tracing::error!` calls and the subscriber alone decides
//! what is shown; with none, the event goes to a minimal stderr writer instead:
//!
//! ```text
//!  WARN apscheduler: Run time of job "report" was missed by 5s job_id=report
//! ```
//!
//! Informational and debug events are never written by the fallback.
//!
//! [`log_warn!`]: crate::log_warn
//! [`log_error!`]: crate::log_error

use std::sync::OnceLock;

use tracing::subscriber::NoSubscriber;
use tracing::Dispatch;

#[doc(hidden)]
pub use tracing as __tracing;

/// The dispatcher for the stderr fallback, or `None` when a subscriber is installed for
/// the current thread (scoped or global), which then receives the event itself.
#[doc(hidden)]
pub fn fallback() -> Option<&'static Dispatch> {
    if !tracing::dispatcher::get_default(|current| current.is::<NoSubscriber>()) {
        return None;
    }
    static STDERR: OnceLock<Dispatch> = OnceLock::new();
    Some(STDERR.get_or_init(|| {
        Dispatch::new(
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_max_level(tracing::Level::WARN)
                .without_time()
                .with_ansi(false)
                .finish(),
        )
    }))
}

/// `tracing::warn!` that falls back to stderr when no subscriber is installed.
///
/// Takes everything `tracing::warn!` takes (target, fields, format arguments).
///
/// ```
/// let job_id = "report";
/// apscheduler_core::log_warn!(target: "apscheduler", job_id, "run time of job {job_id:?} was missed");
/// ```
#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)*) => {
        match $crate::diag::fallback() {
            ::core::option::Option::Some(stderr) => {
                $crate::diag::__tracing::dispatcher::with_default(stderr, || {
                    $crate::diag::__tracing::warn!($($arg)*)
                })
            }
            ::core::option::Option::None => $crate::diag::__tracing::warn!($($arg)*),
        }
    };
}

/// `tracing::error!` that falls back to stderr when no subscriber is installed.
///
/// Takes everything `tracing::error!` takes (target, fields, format arguments).
///
/// ```
/// let err = "connection refused";
/// apscheduler_core::log_error!(target: "apscheduler", "job store is unavailable: {err}");
/// ```
#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => {
        match $crate::diag::fallback() {
            ::core::option::Option::Some(stderr) => {
                $crate::diag::__tracing::dispatcher::with_default(stderr, || {
                    $crate::diag::__tracing::error!($($arg)*)
                })
            }
            ::core::option::Option::None => $crate::diag::__tracing::error!($($arg)*),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_subscriber_turns_the_fallback_off() {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || assert!(fallback().is_none()));
    }
}

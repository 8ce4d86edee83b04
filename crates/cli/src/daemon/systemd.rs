//! systemd's service protocol for `Type=notify` units (packaging/aps.service):
//! `READY=1` once the scheduler runs, `RELOADING=1` then `READY=1` around a SIGHUP
//! reload, `STOPPING=1` when a stop begins, and `WATCHDOG=1` at half the `WatchdogSec=`
//! interval systemd passes in `WATCHDOG_USEC`. Outside systemd (no `NOTIFY_SOCKET`)
//! nothing is sent.
//!
//! The variables stay in the environment, so jobs inherit them; the unit's
//! `NotifyAccess=main` makes systemd ignore any message a job sends.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd the daemon is up: its scheduler runs (or a reload is done).
pub(crate) fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("running")]);
}

/// Tells systemd a reload began; [`ready`] ends it. The monotonic time lets a
/// `Type=notify-reload` unit use the same daemon.
pub(crate) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(e) => {
            tracing::warn!("systemd notify: cannot read the monotonic clock: {e}");
            send(&[NotifyState::Reloading]);
        }
    }
}

/// Tells systemd the daemon is stopping (running jobs get their grace period).
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    // A lost notification is only logged: the daemon's work does not depend on it, and
    // systemd acts on what is missing (start time-out, watchdog) by itself.
    if let Err(e) = sd_notify::notify(false, states) {
        let what: Vec<String> = states.iter().map(ToString::to_string).collect();
        tracing::warn!("systemd notify: cannot send {}: {e}", what.join(" "));
    }
}

/// The watchdog pings the daemon's main loop sends while it is responsive: a loop
/// stuck for a whole `WatchdogSec=` gets the service restarted.
#[derive(Debug)]
pub(crate) struct Watchdog {
    every: Option<tokio::time::Interval>,
}

impl Watchdog {
    /// The watchdog systemd asks for (`WATCHDOG_USEC`, for this process per
    /// `WATCHDOG_PID`), pinged at half its interval; none without them.
    pub(crate) fn from_env() -> Watchdog {
        let mut usec = 0;
        if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
            return Watchdog { every: None };
        }
        // Half the interval, as sd_watchdog_enabled(3) advises: a ping delayed by a
        // busy machine still arrives in time. At least 1 ms (tokio rejects zero).
        let half = Duration::from_micros(usec / 2).max(Duration::from_millis(1));
        tracing::info!(
            "systemd watchdog: {:.1}s; pinging every {:.1}s",
            Duration::from_micros(usec).as_secs_f64(),
            half.as_secs_f64()
        );
        let mut every = tokio::time::interval(half);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Watchdog { every: Some(every) }
    }

    /// Waits for the next ping (for ever without a watchdog), then sends it.
    pub(crate) async fn ping(&mut self) {
        match &mut self.every {
            Some(every) => {
                every.tick().await;
                send(&[NotifyState::Watchdog]);
            }
            None => std::future::pending().await,
        }
    }
}

//! The main loop's turn, the same for every front-end: the stop checks around one pass,
//! and what the pass says to wait for. The front-ends differ only in how they wait: a
//! timer two threads share on Linux, else a condition variable on one thread
//! ([`run_on_thread`]), a tokio sleep in a task
//! ([`run_as_task`]), or the host's own event loop calling `DrivenScheduler::run_due`.

use super::relay::{run_relayed, Relay};
use super::*;

/// What the loop does after a turn.
pub(super) enum Turn {
    /// The scheduler was shut down: leave the loop.
    Stop,
    /// Sleep until woken after `seen`, or until the next wake-up (`None`: until woken),
    /// after running `run` on this thread when the pass left one.
    Sleep {
        seen: u64,
        next: Option<Duration>,
        run: Option<DeferredRun>,
    },
}

/// One turn: a pass unless the scheduler is stopped, then the wake-up it asks for. The
/// wake signal is armed with it, so a change that cannot make the next pass earlier
/// does not wake the loop. With `take`, the pass may leave one of its runs for this
/// thread to run ([`relay`](super::relay)).
pub(super) async fn turn(engine: &Engine, take: bool) -> Turn {
    if engine.state() == SchedulerState::Stopped {
        return Turn::Stop;
    }
    let wake = engine.wake_signal();
    let seen = wake.begin_pass();
    let (next, run) = engine.run_pass(take).await;
    engine.mark_pass(next.map(|(_, at)| at));
    if engine.state() == SchedulerState::Stopped {
        return Turn::Stop;
    }
    let seen = wake.arm(seen, next.map(|(_, at)| at));
    Turn::Sleep {
        seen,
        next: next.map(|(wait, _)| wait),
        run,
    }
}

/// Runs the loop on this thread until shutdown (blocking and background front-ends):
/// with a second loop thread where the platform allows ([`relay`](super::relay)), so
/// the thread that wakes for a due run runs it.
pub(super) fn run_on_thread(engine: &Engine, runner: &Runner, relay: Option<Arc<Relay>>) {
    let relayed = relay.is_some_and(|relay| match run_relayed(engine, runner, &relay) {
        Ok(()) => true,
        Err(e) => {
            apscheduler_core::log_warn!(target: "apscheduler", "cannot start the scheduler's second loop thread ({e}); jobs run on the executors' workers only");
            false
        }
    });
    if !relayed {
        while let Turn::Sleep { seen, next, .. } = runner.block_on(turn(engine, false)) {
            engine.wake_signal().wait(seen, next);
        }
    }
    engine.wake_signal().disarm();
}

/// Runs the loop as a task until shutdown (async front-end).
pub(super) async fn run_as_task(engine: Engine) {
    while let Turn::Sleep { next, .. } = turn(&engine, false).await {
        let signal = engine.wake_signal();
        match next {
            Some(wait) => {
                // In a fixed order (a wake-up first, so that it is not left for a
                // second pass when both are ready): with `select!`'s random order a
                // run could take one more pass than another run of the same events.
                tokio::select! {
                    biased;
                    _ = signal.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            None => signal.notified().await,
        }
    }
    engine.wake_signal().disarm();
}

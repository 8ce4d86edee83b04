//! The main loop's turn, the same for every front-end: the stop checks around one pass,
//! and what the pass says to wait for. The front-ends differ only in how they wait: a
//! condition variable on a thread ([`run_on_thread`]), a tokio sleep in a task
//! ([`run_as_task`]), or the host's own event loop calling `DrivenScheduler::run_due`.

use super::*;

/// What the loop does after a turn.
pub(super) enum Turn {
    /// The scheduler was shut down: leave the loop.
    Stop,
    /// Sleep until woken after `seen`, or until the next wake-up (`None`: until woken).
    Sleep { seen: u64, next: Option<Duration> },
}

/// One turn: a pass unless the scheduler is stopped, then the wake-up it asks for. The
/// wake signal is armed with it, so a change that cannot make the next pass earlier
/// does not wake the loop.
pub(super) async fn turn(engine: &Engine) -> Turn {
    if engine.state() == SchedulerState::Stopped {
        return Turn::Stop;
    }
    let wake = engine.wake_signal();
    let seen = wake.begin_pass();
    let next = engine.run_pass().await;
    engine.mark_pass(next.map(|(_, at)| at));
    if engine.state() == SchedulerState::Stopped {
        return Turn::Stop;
    }
    let seen = wake.arm(seen, next.map(|(_, at)| at));
    Turn::Sleep {
        seen,
        next: next.map(|(wait, _)| wait),
    }
}

/// Runs the loop on this thread until shutdown (blocking and background front-ends).
pub(super) fn run_on_thread(engine: &Engine, runner: &Runner) {
    while let Turn::Sleep { seen, next } = runner.block_on(turn(engine)) {
        engine.wake_signal().wait(seen, next);
    }
    engine.wake_signal().disarm();
}

/// Runs the loop as a task until shutdown (async front-end).
pub(super) async fn run_as_task(engine: Engine) {
    while let Turn::Sleep { next, .. } = turn(&engine).await {
        let signal = engine.wake_signal();
        match next {
            Some(wait) => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = signal.notified() => {}
                }
            }
            None => signal.notified().await,
        }
    }
    engine.wake_signal().disarm();
}

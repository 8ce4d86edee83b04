//! A scheduler driven by a third-party event loop (calloop), the Rust stand-in for
//! APScheduler's Qt/Tornado/Twisted/gevent schedulers: the loop owns the timer, asks
//! the scheduler when to wake next, and calls `run_due` when the timer fires.
//!
//! Run: `cargo run -p apscheduler --example driven_calloop`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler::prelude::*;
use calloop::ping::make_ping;
use calloop::timer::{TimeoutAction, Timer};
use calloop::{EventLoop, LoopHandle, LoopSignal, RegistrationToken};
use serde_json::json;

struct Shared {
    scheduler: Arc<DrivenScheduler>,
    handle: LoopHandle<'static, Shared>,
    timer: Option<RegistrationToken>,
    signal: LoopSignal,
    runs: Arc<AtomicUsize>,
}

/// (Re)arms the one timer: it fires at once, runs what is due, then sleeps until the
/// scheduler's next wake-up.
fn arm(shared: &mut Shared) {
    if let Some(token) = shared.timer.take() {
        shared.handle.remove(token);
    }
    let token = shared
        .handle
        .insert_source(Timer::immediate(), |_deadline, _, shared: &mut Shared| {
            if shared.runs.load(Ordering::SeqCst) >= 5 {
                shared.signal.stop();
                return TimeoutAction::Drop;
            }
            match shared.scheduler.run_due() {
                Some(wait) => TimeoutAction::ToDuration(wait),
                // Nothing scheduled: sleep until the wake-up hook pings us.
                None => TimeoutAction::ToDuration(Duration::from_secs(3600)),
            }
        })
        .expect("insert timer");
    shared.timer = Some(token);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut event_loop: EventLoop<'static, Shared> = EventLoop::try_new()?;
    let scheduler = Arc::new(DrivenScheduler::new()?);
    let runs = Arc::new(AtomicUsize::new(0));

    // The scheduler pings the loop whenever the schedule changes.
    let (ping, ping_source) = make_ping()?;
    scheduler.set_wakeup_hook(move || ping.ping());
    event_loop
        .handle()
        .insert_source(ping_source, |_, _, shared: &mut Shared| arm(shared))?;

    let counter = runs.clone();
    scheduler.add_job(
        JobSpec::closure(move |ctx| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            println!(
                "tick {n} (scheduled for {})",
                ctx.scheduled_run_time.format("%H:%M:%S%.3f")
            );
            Ok(json!(n))
        })
        .id("tick")
        .trigger_args("interval", json!({"seconds": 0.2})),
    )?;
    scheduler.start(false)?;

    // Another thread adds a job; the wake-up hook makes the loop pick it up at once.
    let remote = scheduler.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let _ = remote.add_job(JobSpec::closure(|_| {
            println!("added from another thread, ran at once");
            Ok(json!(null))
        }));
    });

    let mut shared = Shared {
        scheduler: scheduler.clone(),
        handle: event_loop.handle(),
        timer: None,
        signal: event_loop.get_signal(),
        runs,
    };
    arm(&mut shared);
    event_loop.run(Duration::from_secs(5), &mut shared, |_| {})?;
    scheduler.shutdown(true)?;
    println!(
        "event loop stopped after {} ticks",
        shared.runs.load(Ordering::SeqCst)
    );
    Ok(())
}

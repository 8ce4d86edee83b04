//! `aps-pass-bench`: what one pass of the main loop costs with one due job, run back to
//! back (warm caches) and one per millisecond of real time (as the steady scenario of
//! `aps-bench` runs it, the thread asleep in between): the same code and work, so the
//! difference is what the sleep costs the pass in cold caches.
//!
//! ```text
//! aps-pass-bench [PASSES]     (default 20,000 warm, a quarter of that after each gap)
//! ```
//! Through `Engine::process_jobs` (public API: what `DrivenScheduler::run_due` calls),
//! under a manual clock, on the default memory store, with the job run inline in the
//! pass (`InlineExecutor`: the thread-based front-ends on Linux run one job per pass
//! on the loop's own thread too). 1,000 interval jobs of 1 s, 1 ms apart: each pass
//! claims, runs and releases one job. Prints the mean wall time per pass warm, and
//! the median and mean after 1 ms asleep, and after 1 ms spinning (awake, touching
//! nothing else).

use std::sync::Arc;
use std::time::{Duration, Instant};

use apscheduler_core::ManualClock;
use apscheduler_engine::{Engine, InlineExecutor, JobSpec};
use apscheduler_store_memory::MemoryJobStore;
use apscheduler_triggers::IntervalTrigger;
use chrono::{TimeZone, Utc};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let passes: i64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 20_000,
    };
    let t0 = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(t0 - chrono::Duration::seconds(1)));
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", Arc::new(MemoryJobStore::new()))
        .executor("default", Arc::new(InlineExecutor::new()))
        .build();
    engine.register_task("noop", |_| Ok(json!(null)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(engine.start(false))?;
    for i in 0..1000 {
        let start = (t0 + chrono::Duration::milliseconds(i)).with_timezone(&chrono_tz::UTC);
        let trigger = IntervalTrigger::builder(chrono::Duration::seconds(1))
            .start_date(start)
            .build()?;
        rt.block_on(
            engine.add_job(
                JobSpec::task("noop")
                    .id(format!("job-{i}"))
                    .trigger(trigger),
            ),
        )?;
    }
    // Pass k is 1 µs after job k % 1000's run time: one due job per pass.
    let mut k = 0i64;
    let mut pass = || {
        clock.set(t0 + chrono::Duration::microseconds(k * 1000 + 1));
        k += 1;
        rt.block_on(engine.process_jobs());
    };
    let started = Instant::now();
    for _ in 0..passes {
        pass();
    }
    let warm = started.elapsed().as_secs_f64() * 1e6 / passes as f64;
    // Median and mean of passes each after 1 ms of `gap` (asleep, or spinning: awake
    // and doing nothing else).
    let mut after = |gap: &dyn Fn()| {
        let mut times: Vec<f64> = (0..passes / 4)
            .map(|_| {
                gap();
                let t = Instant::now();
                pass();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        times.sort_by(f64::total_cmp);
        (times[times.len() / 2], mean)
    };
    let asleep = after(&|| std::thread::sleep(Duration::from_millis(1)));
    let spinning = after(&|| {
        let until = Instant::now() + Duration::from_millis(1);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    });
    println!(
        "one pass with one due job, run inline: warm {warm:.2} µs (mean of {passes}); \
         after 1 ms asleep {:.2} µs median, {:.2} µs mean; after 1 ms spinning {:.2} µs \
         median, {:.2} µs mean (of {} each)",
        asleep.0,
        asleep.1,
        spinning.0,
        spinning.1,
        passes / 4
    );
    rt.block_on(engine.shutdown(false))?;
    Ok(())
}

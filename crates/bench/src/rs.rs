//! The scenarios run against apscheduler-rs: a `BackgroundScheduler` with the default
//! memory store, closures as tasks.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
use apscheduler_executor_thread::ThreadPoolExecutor;
use apscheduler_triggers::{DateTrigger, IntervalTrigger};
use chrono::Utc;
use serde_json::{json, Value};

use crate::measure::{
    cpu_time, next_whole_second, percentile, rss_bytes, sleep_floor, sleep_until, sorted_ms, to_ns,
    wake_cpu_us, wall_ns, Report,
};
use crate::sizes::Sizes;

type BenchResult = Result<Report, Box<dyn std::error::Error>>;

/// Lateness samples written by tasks on any worker, without locks.
struct Samples {
    late: Vec<AtomicI64>,
    end: Vec<AtomicI64>,
    next: AtomicUsize,
    /// Set (and signalled) once `expected` samples are in.
    expected: usize,
    done: Mutex<bool>,
    cond: Condvar,
}

impl Samples {
    fn new(capacity: usize, expected: usize) -> Arc<Self> {
        Arc::new(Samples {
            late: (0..capacity).map(|_| AtomicI64::new(0)).collect(),
            end: (0..capacity).map(|_| AtomicI64::new(0)).collect(),
            next: AtomicUsize::new(0),
            expected,
            done: Mutex::new(false),
            cond: Condvar::new(),
        })
    }

    /// Records one run: its lateness and when it ended (ns since the epoch).
    fn record(&self, late_ns: i64) {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        if k < self.late.len() {
            self.late[k].store(late_ns, Ordering::Relaxed);
            self.end[k].store(wall_ns(), Ordering::Relaxed);
        }
        if k + 1 == self.expected {
            *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
            self.cond.notify_all();
        }
    }

    /// Waits until `expected` runs are recorded or `timeout` passes.
    fn wait(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            done = self
                .cond
                .wait_timeout(done, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn count(&self) -> usize {
        self.next.load(Ordering::Relaxed).min(self.late.len())
    }

    fn lateness_ms(&self) -> Vec<f64> {
        sorted_ms(
            self.late[..self.count()]
                .iter()
                .map(|a| a.load(Ordering::Relaxed)),
        )
    }

    fn last_end_ns(&self) -> i64 {
        self.end[..self.count()]
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

/// A job spec that records its lateness (task start minus scheduled run time) for
/// runs scheduled before `until_ns`.
fn recording(samples: &Arc<Samples>, until_ns: i64) -> JobSpec {
    let samples = samples.clone();
    JobSpec::closure(move |ctx| {
        let start = wall_ns();
        let scheduled = to_ns(&ctx.scheduled_run_time);
        if scheduled < until_ns {
            samples.record(start - scheduled);
        }
        Ok(Value::Null)
    })
}

/// Adds `n` interval jobs (`add_job(noop, 'interval', hours=1)`); returns µs per add.
///
/// Every job runs the same task, as APScheduler's jobs all reference the one `noop`
/// function: one closure, shared through a cloned spec.
fn add_interval_jobs(
    sched: &BackgroundScheduler,
    n: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let noop = JobSpec::closure(|_ctx| Ok(Value::Null));
    let started = Instant::now();
    for _ in 0..n {
        sched.add_job(noop.clone().trigger_args("interval", json!({"hours": 1})))?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// `add_job` before `start`: jobs are pending.
pub(crate) fn add_before_start(s: &Sizes) -> BenchResult {
    let sched = BackgroundScheduler::new()?;
    let per_add = add_interval_jobs(&sched, s.add_jobs)?;
    let mut r = Report::default();
    r.num("add_before_start_us", per_add);
    r.note(format!("{} interval jobs added before start", s.add_jobs));
    Ok(r)
}

/// `add_job` while running, and the resident memory the jobs take.
pub(crate) fn add_running(s: &Sizes) -> BenchResult {
    let sched = BackgroundScheduler::new()?;
    sched.start(false)?;
    std::thread::sleep(Duration::from_millis(100));
    let rss0 = rss_bytes();
    let per_add = add_interval_jobs(&sched, s.add_jobs)?;
    let rss1 = rss_bytes();
    let mut r = Report::default();
    r.num("add_running_us", per_add);
    r.num(
        "mem_per_job_bytes",
        rss1.saturating_sub(rss0) as f64 / s.add_jobs as f64,
    );
    r.note(format!(
        "RSS {:.1} MiB -> {:.1} MiB for {} jobs",
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        s.add_jobs
    ));
    sched.shutdown(false)?;
    Ok(r)
}

/// Many jobs due at the same instant, thread pool of 20.
pub(crate) fn burst(s: &Sizes) -> BenchResult {
    let n = s.burst_jobs;
    let sched = BackgroundScheduler::from_builder(
        Engine::builder().executor("default", Arc::new(ThreadPoolExecutor::new(20))),
    )?;
    sched.start(false)?;
    let tz = sched.engine().timezone();
    let due = Utc::now() + chrono::Duration::from_std(s.burst_lead)?;
    let due_tz = due.with_timezone(&tz);
    let samples = Samples::new(n, n);
    for _ in 0..n {
        sched.add_job(recording(&samples, i64::MAX).trigger(DateTrigger::new(due_tz)))?;
    }
    let mut r = Report::default();
    if Utc::now() >= due {
        r.note("adding the jobs took longer than the lead: the burst started early");
    }
    samples.wait(s.burst_lead + Duration::from_secs(30));
    let ran = samples.count();
    let late = samples.lateness_ms();
    r.num("burst_ran", ran as f64);
    r.num(
        "burst_total_ms",
        (samples.last_end_ns() - to_ns(&due)) as f64 / 1e6,
    );
    r.num("burst_p50_ms", percentile(&late, 50.0));
    r.num("burst_p99_ms", percentile(&late, 99.0));
    r.note(format!("{ran} of {n} jobs ran"));
    sched.shutdown(true)?;
    Ok(r)
}

/// `steady_jobs` interval jobs of 1 s spread evenly over the second: lateness and CPU.
pub(crate) fn steady(s: &Sizes) -> BenchResult {
    let n = s.steady_jobs;
    let window = s.steady_secs;
    let sched = BackgroundScheduler::new()?;
    sched.start(false)?;
    let tz = sched.engine().timezone();
    let t0 = next_whole_second(Duration::from_millis(500));
    let t1 = t0 + chrono::Duration::seconds(i64::from(window));
    let samples = Samples::new(n * (window as usize + 2), n * window as usize);
    let step_ns = 1_000_000_000 / n as i64;
    for i in 0..n {
        let start = (t0 + chrono::Duration::nanoseconds(step_ns * i as i64)).with_timezone(&tz);
        let trigger = IntervalTrigger::builder(chrono::Duration::seconds(1))
            .start_date(start)
            .build()?;
        sched.add_job(recording(&samples, to_ns(&t1)).trigger(trigger))?;
    }
    sleep_until(t0);
    let cpu0 = cpu_time();
    let w0 = Instant::now();
    sleep_until(t1);
    let cpu1 = cpu_time();
    let elapsed = w0.elapsed();
    samples.wait(Duration::from_secs(2));
    sched.shutdown(true)?;
    let late = samples.lateness_ms();
    let mut r = Report::default();
    r.num("steady_p50_ms", percentile(&late, 50.0));
    r.num("steady_p99_ms", percentile(&late, 99.0));
    r.num(
        "steady_cpu_pct",
        (cpu1 - cpu0).as_secs_f64() * 100.0 / elapsed.as_secs_f64(),
    );
    r.note(format!(
        "{} runs in {window} s ({} expected)",
        late.len(),
        n * window as usize
    ));
    Ok(r)
}

/// One job every 100 ms; then the machine's sleep-to-deadline floor.
pub(crate) fn every_100ms(s: &Sizes) -> BenchResult {
    let sched = BackgroundScheduler::new()?;
    sched.start(false)?;
    let tz = sched.engine().timezone();
    let t0 = next_whole_second(Duration::from_millis(300));
    let t1 = t0 + chrono::Duration::seconds(i64::from(s.every_secs));
    let expected = s.every_secs as usize * 10;
    let samples = Samples::new(expected + 10, expected);
    let trigger = IntervalTrigger::builder(chrono::Duration::milliseconds(100))
        .start_date(t0.with_timezone(&tz))
        .build()?;
    sched.add_job(recording(&samples, to_ns(&t1)).trigger(trigger))?;
    sleep_until(t1);
    samples.wait(Duration::from_secs(2));
    sched.shutdown(true)?;
    let late = samples.lateness_ms();
    let (f50, f99, fmax) = sleep_floor(s.floor_samples, Duration::from_millis(20));
    let wake_us = wake_cpu_us(s.floor_samples * 4);
    let mut r = Report::default();
    r.num("every100_p50_ms", percentile(&late, 50.0));
    r.num("every100_p99_ms", percentile(&late, 99.0));
    r.num("every100_max_ms", late.last().copied().unwrap_or(f64::NAN));
    r.num("sleep_floor_p50_ms", f50);
    r.num("sleep_floor_p99_ms", f99);
    r.num("wake_cpu_us", wake_us);
    r.note(format!(
        "{} runs ({expected} expected); sleep floor from {} sleeps to deadlines 20 ms apart, max {fmax:.3} ms",
        late.len(),
        s.floor_samples
    ));
    Ok(r)
}

/// An idle scheduler holding many jobs due far in the future: CPU time.
pub(crate) fn idle(s: &Sizes) -> BenchResult {
    let sched = BackgroundScheduler::new()?;
    sched.start(false)?;
    let noop = JobSpec::closure(|_ctx| Ok(Value::Null));
    for _ in 0..s.idle_jobs {
        sched.add_job(noop.clone().trigger_args("interval", json!({"weeks": 1})))?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let cpu0 = cpu_time();
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(u64::from(s.idle_secs)));
    let cpu = cpu_time() - cpu0;
    let elapsed = w0.elapsed();
    sched.shutdown(false)?;
    let mut r = Report::default();
    r.num("idle_cpu_ms", cpu.as_secs_f64() * 1e3);
    r.num(
        "idle_cpu_pct",
        cpu.as_secs_f64() * 100.0 / elapsed.as_secs_f64(),
    );
    r.note(format!("{} jobs, CPU over {} s", s.idle_jobs, s.idle_secs));
    Ok(r)
}

//! Measuring helpers: wall clock, process CPU time, resident memory, percentiles, and
//! the machine's `std::thread::sleep` floor.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Clock ticks per second of `/proc/self/stat` (`getconf CLK_TCK`; 100 on Linux).
const CLK_TCK: u64 = 100;

/// Page size of `/proc/self/statm` (`getconf PAGESIZE`; 4096 on x86-64 and most arm64).
const PAGE_SIZE: u64 = 4096;

/// Wall-clock nanoseconds since the Unix epoch.
pub(crate) fn wall_ns() -> i64 {
    to_ns(&Utc::now())
}

/// Nanoseconds since the Unix epoch of any zoned instant.
pub(crate) fn to_ns<T: chrono::TimeZone>(t: &DateTime<T>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// CPU time (user + system) of the whole process, every thread included, from
/// `/proc/self/stat` (10 ms resolution).
pub(crate) fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may contain spaces: count fields after its ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime); field 3 (state) is fields[0].
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let total = ticks(11) + ticks(12);
    Duration::from_millis(total * 1000 / CLK_TCK)
}

/// Resident set size of this process in bytes, from `/proc/self/statm`.
pub(crate) fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0)
        * PAGE_SIZE
}

/// Sleeps until the wall clock reaches `t` (returns at once if it has).
pub(crate) fn sleep_until(t: DateTime<Utc>) {
    if let Ok(d) = (t - Utc::now()).to_std() {
        std::thread::sleep(d);
    }
}

/// A whole second at least `lead` from now.
pub(crate) fn next_whole_second(lead: Duration) -> DateTime<Utc> {
    let at = Utc::now() + chrono::Duration::from_std(lead).unwrap_or_default();
    let secs = at.timestamp() + 1;
    DateTime::from_timestamp(secs, 0).unwrap_or(at)
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted samples.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sorts samples given in nanoseconds and returns them in milliseconds.
pub(crate) fn sorted_ms(ns: impl IntoIterator<Item = i64>) -> Vec<f64> {
    let mut v: Vec<f64> = ns.into_iter().map(|n| n as f64 / 1e6).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Rounds to 3 decimals for the report (the JSON stays readable).
pub(crate) fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// How late `std::thread::sleep` returns when asked to sleep to a deadline: `samples`
/// deadlines `period` apart; returns (p50, p99, max) overshoot in milliseconds.
pub(crate) fn sleep_floor(samples: usize, period: Duration) -> (f64, f64, f64) {
    let start = Instant::now();
    let mut over = Vec::with_capacity(samples);
    for k in 1..=samples {
        let deadline = start + period * k as u32;
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        let late = Instant::now().saturating_duration_since(deadline);
        over.push(i64::try_from(late.as_nanos()).unwrap_or(i64::MAX));
    }
    let v = sorted_ms(over);
    (
        percentile(&v, 50.0),
        percentile(&v, 99.0),
        v.last().copied().unwrap_or(f64::NAN),
    )
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (nanoseconds).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The CPU time one timed wake-up costs on this machine: `samples` sleeps of 1 ms to
/// deadlines, the thread's CPU time (kernel included) divided by their number, in µs.
/// A scheduler that wakes once per due job cannot use less CPU per job than this.
pub(crate) fn wake_cpu_us(samples: usize) -> f64 {
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    for k in 1..=samples {
        let deadline = start + Duration::from_millis(1) * k as u32;
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    }
    (thread_cpu_ns() - cpu0) as f64 / 1e3 / samples as f64
}

/// The report of one scenario run by one implementation.
#[derive(Debug, Default)]
pub(crate) struct Report {
    metrics: serde_json::Map<String, Value>,
    notes: Vec<String>,
}

impl Report {
    /// Records a numeric metric (rounded to 3 decimals).
    pub(crate) fn num(&mut self, key: &str, value: f64) {
        let v = if value.is_finite() {
            json!(r3(value))
        } else {
            Value::Null
        };
        self.metrics.insert(key.into(), v);
    }

    /// Records a metric this implementation cannot measure, with the reason.
    pub(crate) fn na(&mut self, key: &str, why: &str) {
        self.metrics
            .insert(key.into(), json!(format!("n/a: {why}")));
    }

    /// Adds a free-text note.
    pub(crate) fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The report as JSON.
    pub(crate) fn into_json(self, implementation: &str, scenario: &str) -> Value {
        json!({
            "impl": implementation,
            "scenario": scenario,
            "metrics": self.metrics,
            "notes": self.notes,
        })
    }
}

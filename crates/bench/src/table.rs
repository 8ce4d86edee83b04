//! The comparison table: one row per measured quantity, one column per scheduler, the
//! ratio APScheduler / apscheduler-rs, the target and whether apscheduler-rs
//! meets it.

use std::fmt::Write as _;

use serde_json::Value;

use crate::sizes::Sizes;

/// The column order and header of each implementation.
const COLUMNS: [(&str, &str); 3] = [
    ("rs", "apscheduler-rs"),
    ("apscheduler", "APScheduler"),
    ("tcs", "tokio-cron-scheduler"),
];

/// One row: the metric key in the reports, its label, the target and its check.
struct Row {
    key: &'static str,
    label: String,
    target: String,
    met: Option<Box<dyn Fn(f64) -> bool>>,
    /// Whether a ratio APScheduler / apscheduler-rs means anything for this row.
    ratio: bool,
}

fn row(
    key: &'static str,
    label: String,
    target: &str,
    met: Option<Box<dyn Fn(f64) -> bool>>,
    ratio: bool,
) -> Row {
    Row {
        key,
        label,
        target: target.to_owned(),
        met,
        ratio,
    }
}

fn rows(s: &Sizes) -> Vec<Row> {
    let (add, burst, steady) = (
        thousands(s.add_jobs),
        thousands(s.burst_jobs),
        thousands(s.steady_jobs),
    );
    let burst_n = s.burst_jobs as f64;
    let idle_budget = f64::from(s.idle_secs);
    vec![
        row(
            "add_before_start_us",
            format!("add {add} interval jobs before start: µs per add"),
            "≤ 1 µs",
            Some(Box::new(|v| v <= 1.0)),
            true,
        ),
        row(
            "add_running_us",
            format!("add {add} interval jobs while running: µs per add"),
            "≤ 2 µs",
            Some(Box::new(|v| v <= 2.0)),
            true,
        ),
        row(
            "mem_per_job_bytes",
            format!("resident memory per job ({add} jobs): bytes"),
            "≤ 400 B",
            Some(Box::new(|v| v <= 400.0)),
            true,
        ),
        row(
            "burst_ran",
            format!("{burst} jobs due at once (pool of 20): jobs run"),
            &format!("all {burst}"),
            Some(Box::new(move |v| v >= burst_n)),
            false,
        ),
        row(
            "burst_total_ms",
            format!("{burst} jobs due at once: due instant → last outcome, ms"),
            "< 20 ms",
            Some(Box::new(|v| v < 20.0)),
            true,
        ),
        row(
            "burst_p99_ms",
            format!("{burst} jobs due at once: lateness p99, ms"),
            "-",
            None,
            true,
        ),
        row(
            "steady_p50_ms",
            format!("{steady} jobs/s over {} s: lateness p50, ms", s.steady_secs),
            "-",
            None,
            true,
        ),
        row(
            "steady_p99_ms",
            format!("{steady} jobs/s over {} s: lateness p99, ms", s.steady_secs),
            "≤ 0.5 ms",
            Some(Box::new(|v| v <= 0.5)),
            true,
        ),
        row(
            "steady_cpu_pct",
            format!("{steady} jobs/s over {} s: CPU, % of a core", s.steady_secs),
            "< 2 %",
            Some(Box::new(|v| v < 2.0)),
            true,
        ),
        row(
            "every100_p50_ms",
            format!(
                "1 job every 100 ms for {} s: lateness p50, ms",
                s.every_secs
            ),
            "-",
            None,
            true,
        ),
        row(
            "every100_p99_ms",
            format!(
                "1 job every 100 ms for {} s: lateness p99, ms",
                s.every_secs
            ),
            "≤ 0.5 ms",
            Some(Box::new(|v| v <= 0.5)),
            true,
        ),
        row(
            "every1s_p99_ms",
            "1 job every 1 s (cron), lateness p99, ms".to_owned(),
            "-",
            None,
            false,
        ),
        row(
            "sleep_floor_p50_ms",
            "this machine: sleep-to-deadline overshoot p50, ms".to_owned(),
            "-",
            None,
            false,
        ),
        row(
            "sleep_floor_p99_ms",
            "this machine: sleep-to-deadline overshoot p99, ms".to_owned(),
            "-",
            None,
            false,
        ),
        row(
            "wake_cpu_us",
            "this machine: CPU time of one timed wake-up (1 ms sleeps), µs".to_owned(),
            "-",
            None,
            false,
        ),
        row(
            "idle_cpu_ms",
            format!(
                "idle, {} jobs far ahead: CPU over {} s, ms",
                thousands(s.idle_jobs),
                s.idle_secs
            ),
            "≈ 0 (≤ 0.1 % of a core)",
            Some(Box::new(move |v| v <= idle_budget)),
            true,
        ),
    ]
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The value of `key` reported by `implementation`, if any.
fn lookup<'a>(reports: &'a [Value], implementation: &str, key: &str) -> Option<&'a Value> {
    reports
        .iter()
        .filter(|r| r["impl"] == implementation)
        .find_map(|r| r["metrics"].get(key))
}

fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Renders the Markdown table and the notes.
pub(crate) fn render(reports: &[Value], s: &Sizes) -> String {
    let mut out = String::new();
    let mut reasons: Vec<String> = Vec::new();
    let _ = writeln!(
        out,
        "| scenario | {} | {} | {} | ratio vs APScheduler | target | met? |",
        COLUMNS[0].1, COLUMNS[1].1, COLUMNS[2].1
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|");
    for row in rows(s) {
        let mut cells = Vec::new();
        for (implementation, _) in COLUMNS {
            cells.push(match lookup(reports, implementation, row.key) {
                Some(Value::Number(n)) => number(n.as_f64().unwrap_or(f64::NAN)),
                Some(Value::String(text)) => {
                    let reason = text.trim_start_matches("n/a: ").to_owned();
                    let i = match reasons.iter().position(|r| *r == reason) {
                        Some(i) => i,
                        None => {
                            reasons.push(reason);
                            reasons.len() - 1
                        }
                    };
                    format!("n/a [{}]", i + 1)
                }
                _ => "-".to_owned(),
            });
        }
        let rs = lookup(reports, "rs", row.key).and_then(Value::as_f64);
        let py = lookup(reports, "apscheduler", row.key).and_then(Value::as_f64);
        let ratio = match (row.ratio, rs, py) {
            (true, Some(r), Some(p)) if r > 0.0 => format!("{}×", number(p / r)),
            (true, Some(r), Some(p)) if r == 0.0 && p > 0.0 => "∞ (rs: 0)".to_owned(),
            _ => "-".to_owned(),
        };
        let met = match (&row.met, rs) {
            (Some(check), Some(v)) => {
                if check(v) {
                    "yes".to_owned()
                } else {
                    "**no**".to_owned()
                }
            }
            (Some(_), None) => "?".to_owned(),
            (None, _) => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.label, cells[0], cells[1], cells[2], ratio, row.target, met
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "ratio = APScheduler's value / apscheduler-rs's value (how many times less time, memory or CPU apscheduler-rs takes); lateness = task start − scheduled run time."
    );
    for (i, reason) in reasons.iter().enumerate() {
        let _ = writeln!(out, "[{}] {reason}", i + 1);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Notes:");
    for r in reports {
        let notes = r["notes"].as_array().cloned().unwrap_or_default();
        for n in notes {
            let _ = writeln!(
                out,
                "- {} {}: {}",
                r["impl"].as_str().unwrap_or("?"),
                r["scenario"].as_str().unwrap_or("?"),
                n.as_str().unwrap_or_default()
            );
        }
    }
    out
}

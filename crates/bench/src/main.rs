//! `aps-bench`: the scheduler benchmarks of apscheduler-rs, with tokio-cron-scheduler
//! measured in the same run (APScheduler 3.11 through `bench/scheduler-bench.sh`).
//!
//! Every scenario runs in a fresh child process (`aps-bench child IMPL SCENARIO`), so
//! memory and CPU readings see nothing of the other scenarios. Lateness is the task's
//! start (wall clock read in the task) minus its scheduled run time
//! (`ctx.scheduled_run_time`).
//!
//! ```text
//! aps-bench [--quick] [--json] [--repeat N] [--impl rs,tcs] [--scenario NAME,...] [--apscheduler FILE]
//!   --quick        shortened sizes (a smoke run of every scenario, under ~20 s)
//!   --repeat N     runs of each scenario but idle, each in a fresh process; the median
//!                  of each metric is reported (default 5 for add-before, add-running
//!                  and burst, 3 for steady and every100; 1 with --quick)
//!   --json         print every report as JSON instead of the table
//!   --impl         which schedulers to run: rs (apscheduler-rs), tcs (tokio-cron-scheduler)
//!   --scenario     add-before, add-running, burst, steady, every100, idle (default: all)
//!   --apscheduler  a JSON file from bench/apscheduler_scheduler.py to show beside them
//! ```

#![forbid(unsafe_code)]

mod measure;
mod rs;
mod sizes;
mod table;
mod tcs;

use std::process::{Command, ExitCode};

use serde_json::Value;

use crate::measure::Report;
use crate::sizes::Sizes;

/// Every scenario, in the order they run.
const SCENARIOS: [&str; 6] = [
    "add-before",
    "add-running",
    "burst",
    "steady",
    "every100",
    "idle",
];

/// Every implementation measured by this binary.
const IMPLS: [&str; 2] = ["rs", "tcs"];

struct Options {
    quick: bool,
    repeat: Option<usize>,
    json: bool,
    impls: Vec<String>,
    scenarios: Vec<String>,
    apscheduler: Option<String>,
}

/// How many runs of a scenario make its figures by default (see `--repeat`): the
/// median of several fresh-process runs, since this machine's speed drifts.
fn default_runs(scenario: &str) -> usize {
    match scenario {
        "add-before" | "add-running" | "burst" => 5,
        "steady" | "every100" => 3,
        _ => 1,
    }
}

const USAGE: &str =
    "usage: aps-bench [--quick] [--json] [--repeat N] [--impl rs,tcs] [--scenario NAME,...] [--apscheduler FILE]
scenarios: add-before, add-running, burst, steady, every100, idle";

fn list(arg: Option<String>, allowed: &[&str], what: &str) -> Result<Vec<String>, String> {
    let arg = arg.ok_or_else(|| format!("{what} needs a value"))?;
    arg.split(',')
        .map(|s| {
            if allowed.contains(&s) {
                Ok(s.to_owned())
            } else {
                Err(format!(
                    "unknown {what} '{s}' (one of {})",
                    allowed.join(", ")
                ))
            }
        })
        .collect()
}

fn parse(args: Vec<String>) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        repeat: None,
        json: false,
        impls: IMPLS.iter().map(|s| s.to_string()).collect(),
        scenarios: SCENARIOS.iter().map(|s| s.to_string()).collect(),
        apscheduler: None,
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--json" => o.json = true,
            "--repeat" => {
                let n = it.next().ok_or("--repeat needs a number")?;
                o.repeat = Some(
                    n.parse()
                        .ok()
                        .filter(|&n: &usize| n > 0)
                        .ok_or_else(|| format!("--repeat: '{n}' is not a positive number"))?,
                );
            }
            "--impl" => o.impls = list(it.next(), &IMPLS, "--impl")?,
            "--scenario" => o.scenarios = list(it.next(), &SCENARIOS, "--scenario")?,
            "--apscheduler" => {
                o.apscheduler = Some(it.next().ok_or("--apscheduler needs a file")?);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(o)
}

/// Runs one scenario in this process (the child side) and prints its JSON report.
fn child(implementation: &str, scenario: &str, quick: bool) -> ExitCode {
    let s = Sizes::new(quick);
    let result: Result<Report, Box<dyn std::error::Error>> = match (implementation, scenario) {
        ("rs", "add-before") => rs::add_before_start(&s),
        ("rs", "add-running") => rs::add_running(&s),
        ("rs", "burst") => rs::burst(&s),
        ("rs", "steady") => rs::steady(&s),
        ("rs", "every100") => rs::every_100ms(&s),
        ("rs", "idle") => rs::idle(&s),
        ("tcs", "add-before") => tcs::add_before_start(&s),
        ("tcs", "add-running") => tcs::add_running(&s),
        ("tcs", "burst") => tcs::burst(&s),
        ("tcs", "steady") => tcs::steady(&s),
        ("tcs", "every100") => tcs::every_100ms(&s),
        ("tcs", "idle") => tcs::idle(&s),
        _ => Err(format!("unknown child {implementation} {scenario}").into()),
    };
    match result {
        Ok(report) => {
            println!("{}", report.into_json(implementation, scenario));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("aps-bench: {implementation} {scenario}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One report from several runs of a scenario: the median of each numeric metric (the
/// lower middle value for an even count), with the range in the notes.
fn merge(mut runs: Vec<Value>) -> Value {
    if runs.len() < 2 {
        return runs.pop().unwrap_or(Value::Null);
    }
    let mut merged = runs[0].clone();
    let keys: Vec<String> = merged["metrics"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for key in keys {
        let mut values: Vec<f64> = runs
            .iter()
            .filter_map(|r| r["metrics"][&key].as_f64())
            .collect();
        if values.len() != runs.len() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let median = values[(values.len() - 1) / 2];
        merged["metrics"][&key] = serde_json::json!(median);
        if let Some(notes) = merged["notes"].as_array_mut() {
            notes.push(Value::String(format!(
                "{key}: median of {} runs, range {}-{}",
                runs.len(),
                values[0],
                values[values.len() - 1]
            )));
        }
    }
    merged
}

/// Runs one scenario in a fresh child process and returns its report.
fn spawn(implementation: &str, scenario: &str, quick: bool) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find aps-bench itself: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["child", implementation, scenario]);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {implementation} {scenario}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{implementation} {scenario} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .map_err(|e| format!("{implementation} {scenario}: bad report {line:?}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        let quick = args.iter().any(|a| a == "--quick");
        return match (args.get(1), args.get(2)) {
            (Some(i), Some(s)) => child(i, s, quick),
            _ => {
                eprintln!("usage: aps-bench child IMPL SCENARIO [--quick]");
                ExitCode::FAILURE
            }
        };
    }
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("aps-bench: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    let mut reports: Vec<Value> = Vec::new();
    if let Some(path) = &opts.apscheduler {
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Vec<Value>>(&t).map_err(|e| e.to_string()))
        {
            Ok(mut r) => reports.append(&mut r),
            Err(e) => {
                eprintln!("aps-bench: cannot read {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut failed = false;
    for implementation in &opts.impls {
        for scenario in &opts.scenarios {
            eprintln!("== {implementation} {scenario}");
            let runs = match (opts.quick, default_runs(scenario)) {
                (_, 1) => 1,
                (true, _) => opts.repeat.unwrap_or(1),
                (false, n) => opts.repeat.unwrap_or(n),
            };
            let results: Result<Vec<Value>, String> = (0..runs)
                .map(|_| spawn(implementation, scenario, opts.quick))
                .collect();
            match results {
                Ok(r) => reports.push(merge(r)),
                Err(e) => {
                    eprintln!("aps-bench: {e}");
                    failed = true;
                }
            }
        }
    }
    if opts.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
    } else {
        print!("{}", table::render(&reports, &Sizes::new(opts.quick)));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

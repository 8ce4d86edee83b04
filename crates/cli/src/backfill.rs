//! `aps backfill JOB --from T --to T`: asks the running daemon, through its HTTP API
//! (`POST /api/jobs/{id}/backfill`), to run a job's fire times of a range. The runs
//! are the daemon's (its executors, its history), so a daemon with `[http]` must be
//! running; this command prints the daemon's plan.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::daemon_api::{path_segment, DaemonApi};

/// `aps backfill` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct BackfillArgs {
    /// The job id.
    job: String,
    /// The first fire time to consider (inclusive): RFC 3339, "2026-11-23 10:00:00" in
    /// the config's timezone, or an age such as "2h" (that long ago).
    #[arg(long)]
    from: String,
    /// The end of the range (exclusive), in the same forms as --from.
    #[arg(long)]
    to: String,
    /// List what would run (and what is skipped) without running anything.
    #[arg(long)]
    dry_run: bool,
    /// The overlap policy of the backfill's runs instead of the job's (skip,
    /// buffer_one, buffer_all, cancel_other, terminate_other, allow_all).
    #[arg(long)]
    overlap: Option<String>,
    /// Runs started per second at most, as "N/s" or "N" (default 10/s).
    #[arg(long)]
    rate: Option<String>,
    /// Accept more fire times than the maximum (10,000).
    #[arg(long)]
    force: bool,
    /// Run fire times that already have a successful run too.
    #[arg(long)]
    rerun_succeeded: bool,
    /// The daemon's config file (its `[http]` address and timezone are used).
    /// Default: $APS_CONFIG, else /etc/aps/aps.toml.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The daemon's HTTP API base URL instead of the config's `[http] listen`.
    #[arg(long)]
    url: Option<String>,
    /// A token with the `operate` role (default: $APS_TOKEN; none needed when the
    /// daemon has no tokens and listens on loopback).
    #[arg(long)]
    token: Option<String>,
    /// Print the daemon's JSON report instead of a summary.
    #[arg(long)]
    json: bool,
}

/// "10/s", "10" or "2.5/s": runs per second.
fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s.strip_suffix("/s").unwrap_or(s).trim();
    n.parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| format!("--rate: '{s}' is not a rate such as 10/s"))
}

fn parse_time(flag: &str, s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(age) = humantime::parse_duration(s) {
        return Ok(Utc::now() - chrono::Duration::from_std(age).map_err(|e| e.to_string())?);
    }
    apscheduler_core::time::parse_datetime(flag, s, tz)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("--{flag}: {e}"))
}

/// `aps backfill ...`: exit 0 when the daemon accepted (or planned) it, 1 when it
/// refused it or could not be reached, 2 for bad arguments or config.
pub(crate) fn run(args: &BackfillArgs) -> ExitCode {
    match request(args) {
        Ok(code) => code,
        Err((code, e)) => {
            eprintln!("error: {e}");
            ExitCode::from(code)
        }
    }
}

fn request(args: &BackfillArgs) -> Result<ExitCode, (u8, String)> {
    let usage = |e: String| (2u8, e);
    let api = DaemonApi::locate(
        args.url.as_deref(),
        args.config.as_deref(),
        args.token.as_deref(),
        "backfill",
    )?;
    let tz = api.tz;
    let from = parse_time("from", &args.from, tz).map_err(usage)?;
    let to = parse_time("to", &args.to, tz).map_err(usage)?;
    let mut body = json!({
        "from": from.to_rfc3339(),
        "to": to.to_rfc3339(),
        "dry_run": args.dry_run,
        "force": args.force,
        "rerun_succeeded": args.rerun_succeeded,
    });
    if let Some(rate) = &args.rate {
        body["rate_per_sec"] = json!(parse_rate(rate).map_err(usage)?);
    }
    if let Some(overlap) = &args.overlap {
        body["overlap"] = json!(overlap);
    }
    let (status, answer) = api.post(
        &format!("/api/jobs/{}/backfill", path_segment(&args.job)),
        &body,
    )?;
    if status >= 300 {
        let message = answer["message"].as_str().unwrap_or_default();
        return Err((
            1,
            format!("the daemon refused the backfill ({status}): {message}"),
        ));
    }
    if args.json {
        println!("{answer:#}");
        return Ok(ExitCode::SUCCESS);
    }
    print_report(&answer);
    Ok(ExitCode::SUCCESS)
}

fn list(answer: &Value, key: &str) -> Vec<String> {
    answer[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn print_report(answer: &Value) {
    let to_run = list(answer, "to_run");
    let succeeded = list(answer, "already_succeeded");
    let excluded = list(answer, "excluded");
    let job = answer["job_id"].as_str().unwrap_or("?");
    let rate = answer["rate_per_sec"].as_f64().unwrap_or(0.0);
    if answer["dry_run"].as_bool() == Some(true) {
        println!(
            "dry run: backfill of job '{job}' would run {} fire time(s) ({} already succeeded, {} excluded)",
            to_run.len(),
            succeeded.len(),
            excluded.len()
        );
        for t in &to_run {
            println!("run      {t}");
        }
        for t in &succeeded {
            println!("skip     {t}  (already succeeded)");
        }
        for t in &excluded {
            println!("skip     {t}  (excluded by the job's calendar)");
        }
    } else {
        println!(
            "backfill of job '{job}': {} run(s) being started by the daemon at up to {rate}/s (about {:.0} s); {} already succeeded, {} excluded",
            to_run.len(),
            answer["estimated_seconds"].as_f64().unwrap_or(0.0),
            succeeded.len(),
            excluded.len()
        );
        println!("follow them with: aps history --job {job}");
    }
}

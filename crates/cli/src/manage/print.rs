//! How management commands print jobs, runs and tables.

use super::*;

/// The newest run of each job (one statement on SQLite and PostgreSQL, one per 200 jobs
/// on MySQL/MariaDB).
pub(super) async fn last_outcomes(
    history: Option<&dyn RunHistory>,
    jobs: &[Job],
) -> std::collections::HashMap<String, RunRecord> {
    let Some(history) = history else {
        return std::collections::HashMap::new();
    };
    let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    match history.latest_runs(&ids).await {
        Ok(runs) => runs.into_iter().map(|r| (r.job_id.clone(), r)).collect(),
        Err(e) => {
            tracing::warn!("the last runs cannot be read: {e}");
            std::collections::HashMap::new()
        }
    }
}

pub(super) fn next_text(job: &Job) -> String {
    match &job.next_run_time {
        // With the job's calendar applied: the fire time that will really run.
        Some(_) => apscheduler_engine::next_allowed_run_time(job).map_or_else(
            || "never (its calendar excludes every fire time left)".to_owned(),
            |t| apscheduler_core::time::to_rfc3339(&t),
        ),
        // Stored paused, but not paused by hand: it runs when a daemon starts.
        None if JobDef::from_kwargs(&job.kwargs).is_some_and(|d| d.runs_only_at_start()) => {
            "at start".to_owned()
        }
        None => "- (paused)".to_owned(),
    }
}

/// The trigger as the job's definition wrote it, or the trigger's own text.
pub(super) fn trigger_text(job: &Job, def: Option<&JobDef>) -> String {
    def.map_or_else(|| job.trigger.to_string(), |d| d.trigger_text.clone())
}

/// `aps jobs list --json`: written as it is serialized, through one buffered writer,
/// without a JSON value per job first.
pub(super) fn print_jobs_json(jobs: &[Job], last: &std::collections::HashMap<String, RunRecord>) {
    use rayon::prelude::*;
    use std::io::Write as _;
    // Each view on every core (reading each job's definition is most of the work);
    // written in order after.
    let views: Vec<JobView> = jobs
        .par_iter()
        .map(|j| JobView::new(j, describe(j), last.get(&*j.id)))
        .collect();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut stdout, &views)
        .map_err(std::io::Error::from)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    if written.is_err() {
        // As `println!` ends on a closed standard output (see `quiet_on_closed_stdout`).
        std::process::exit(141);
    }
    left_to_exit(views);
}

/// A run as `aps history --json` prints it: the API's shape.
pub(crate) fn run_json(r: &RunRecord) -> Value {
    json!(RunView::from(r))
}

pub(super) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    use std::io::Write as _;
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Writes a row's line into `out` (one buffer, reused for every row).
    let line = |out: &mut String, cells: &[String]| {
        use std::fmt::Write as _;
        out.clear();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ");
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    };
    let mut out = String::new();
    // One buffered writer: standard output writes each line on its own otherwise (one
    // system call per job).
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let head: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    line(&mut out, &head);
    let mut result = stdout.write_all(out.as_bytes());
    for row in rows {
        if result.is_err() {
            break;
        }
        line(&mut out, row);
        result = stdout.write_all(out.as_bytes());
    }
    // A closed pipe (`aps jobs list | head`) ends the listing quietly.
    let _ = result.and_then(|()| stdout.flush());
}

pub(super) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

pub(super) fn print_jobs_table(jobs: &[Job], last: &std::collections::HashMap<String, RunRecord>) {
    use rayon::prelude::*;
    // Built on every core: reading each job's definition is most of the work.
    let rows: Vec<Vec<String>> = jobs
        .par_iter()
        .map(|j| {
            let def = JobDef::from_kwargs(&j.kwargs);
            vec![
                j.id.to_string(),
                clip(&j.name, 30),
                clip(&trigger_text(j, def.as_ref()), 40),
                next_text(j),
                last.get(&*j.id)
                    .map_or("-".into(), |r| r.outcome.to_string()),
                match def.map(|d| d.origin) {
                    Some(Origin::Config) => "config".into(),
                    Some(Origin::Cli) => "cli".into(),
                    Some(Origin::Api) => "api".into(),
                    None => "library".into(),
                },
            ]
        })
        .collect();
    print_table(
        &["ID", "NAME", "TRIGGER", "NEXT RUN", "LAST", "FROM"],
        &rows,
    );
    left_to_exit(rows);
}

pub(super) fn print_job(job: &Job, runs: &[RunRecord]) {
    let def = JobDef::from_kwargs(&job.kwargs);
    println!("id:        {}", job.id);
    println!("name:      {}", job.name);
    println!("trigger:   {}", trigger_text(job, def.as_ref()));
    println!("next run:  {}", next_text(job));
    if let Some(reason) = job.paused_reason.as_deref().filter(|_| job.is_paused()) {
        println!("paused:    {reason}");
    }
    if job.policy.pause_after_failures.is_some() || job.policy.notify_after_failures.is_some() {
        println!(
            "failures:  {} in a row (pause after {}, notify after {})",
            apscheduler_engine::failure_streak(runs, &job.policy),
            job.policy
                .pause_after_failures
                .map_or("-".to_owned(), |n| n.to_string()),
            job.policy
                .notify_after_failures
                .map_or("-".to_owned(), |n| n.to_string()),
        );
    }
    if let Some(d) = &def {
        println!("action:    {}", d.action.summary());
        println!(
            "origin:    {}",
            match d.origin {
                Origin::Config => "config file",
                Origin::Cli => "aps jobs add",
                Origin::Api => "the HTTP API",
            }
        );
        if !d.mailto.is_empty() {
            println!(
                "mail:      to {}, mail_when = {}",
                d.mailto.join(", "),
                d.mail_when.as_str()
            );
        }
    }
    if let Some(excluding) = apscheduler_engine::trigger_calendar(&*job.trigger) {
        let calendar = excluding.calendar();
        println!(
            "calendar:  {} (calendar_action = {}): {}",
            calendar.name,
            excluding.action(),
            calendar.calendar
        );
    }
    if !job.policy.is_default() {
        println!(
            "policy:    {}",
            serde_json::to_string(&*job.policy).unwrap_or_default()
        );
    }
    println!(
        "misfire grace: {}, coalesce: {}, max instances: {}, recover: {}",
        job.misfire_grace_time
            .map_or("none".into(), |d| humantime::format_duration(d).to_string()),
        job.coalesce,
        job.max_instances,
        job.recover
    );
    println!();
    print_runs(runs);
    println!();
    print_last_output(runs.first());
}

/// The captured output of the newest run (`runs` are newest first), indented under a
/// label: the table's note shows only its last line.
fn print_last_output(last: Option<&RunRecord>) {
    let output = last.map_or("", |r| r.output.trim_end());
    if output.is_empty() {
        println!("last output: (none)");
        return;
    }
    println!("last output:");
    for line in output.lines() {
        println!("    {line}");
    }
}

pub(super) fn print_runs(runs: &[RunRecord]) {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let took = match (r.started_at, r.finished_at) {
                (Some(s), Some(f)) => format!(
                    "{:.3}s",
                    (f - s).num_microseconds().unwrap_or(0) as f64 / 1e6
                ),
                _ => "-".into(),
            };
            let code = r
                .exit_code
                .map(|c| c.to_string())
                .or(r.http_status.map(|s| s.to_string()))
                .unwrap_or("-".into());
            let note = r.message.clone().unwrap_or_else(|| match r.due_at {
                // A run waiting to start (a retry): when it will.
                Some(due) if r.started_at.is_none() => {
                    format!("due {}", due.format("%Y-%m-%d %H:%M:%S%.3f"))
                }
                _ => r.output.lines().last().unwrap_or("").to_owned(),
            });
            vec![
                r.scheduled_at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                r.job_id.clone(),
                r.node.clone(),
                outcome_cell(r),
                code,
                took,
                clip(&note, 60),
            ]
        })
        .collect();
    print_table(
        &[
            "SCHEDULED (UTC)",
            "JOB",
            "NODE",
            "OUTCOME",
            "CODE",
            "TOOK",
            "NOTE",
        ],
        &rows,
    );
}

/// A run's outcome, then `#N` for a retry (attempt N > 1) and `backfill` for a run a
/// backfill started: `failure #2`, `success backfill`.
pub(super) fn outcome_cell(r: &RunRecord) -> String {
    let mut cell = r.outcome.to_string();
    if r.attempt > 1 {
        cell.push_str(&format!(" #{}", r.attempt));
    }
    if r.backfill {
        cell.push_str(" backfill");
    }
    cell
}

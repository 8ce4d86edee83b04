//! The management commands: `aps jobs ...`, `aps history`, `aps config check`. Each
//! works on the store directly (a running daemon sees the change at its next poll,
//! within `poll_interval`, one second by default).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use apscheduler_core::{Job, RunHistory, RunOutcome, RunQuery, RunRecord};
use apscheduler_http::views::{JobView, NodeView, RunView};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::daemon::action::{self, Limits, RunEnv};
use crate::daemon::config::{
    self, check_job, Action, Defaults, DurationText, JobDef, Origin, RawHttp, RawJob, RecoverFlag,
};
use crate::daemon::http::describe;
use crate::daemon::{jobs, open_scheduler, store, Opened};

/// Where the store is: a config file's `[store]` or a URL.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// The daemon's config file (its store, timezone and job defaults are used).
    /// Default, without --store: $APS_CONFIG, else /etc/aps/aps.toml.
    #[arg(long, short, global = true, conflicts_with = "store")]
    config: Option<PathBuf>,
    /// A store URL (`sqlite:/path/aps.db`, `postgres://...`, `redis://...`, ...).
    #[arg(long, global = true)]
    store: Option<String>,
}

/// `aps jobs ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum JobsCommand {
    /// List the jobs: id, name, trigger, next run, last outcome.
    List {
        /// An array of JSON objects instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one job with its recent history.
    Show {
        /// The job id.
        id: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a job (the options of a `[[jobs]]` table); it persists in the store.
    Add(Box<AddArgs>),
    /// Pause a job (it keeps its definition; no runs until resumed).
    Pause {
        /// The job id.
        id: String,
    },
    /// Resume a paused job.
    Resume {
        /// The job id.
        id: String,
    },
    /// Remove a job.
    Remove {
        /// The job id.
        id: String,
    },
    /// Run a job once, now, in this process, recorded in the history like any run;
    /// with --daemon, in the running daemon under the job's overlap policy.
    Run {
        /// The job id.
        id: String,
        /// Ask the running daemon (its HTTP API) to run it, under the job's `overlap`
        /// policy and `max_instances`, instead of running it in this process.
        #[arg(long)]
        daemon: bool,
        /// With --daemon: the daemon's HTTP API base URL instead of the config's
        /// `[http] listen`.
        #[arg(long, requires = "daemon")]
        url: Option<String>,
        /// With --daemon: a token with the `operate` role (default: $APS_TOKEN).
        #[arg(long, requires = "daemon")]
        token: Option<String>,
    },
}

/// The options of `aps jobs add`: a `[[jobs]]` table's keys.
#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    /// Job id.
    #[arg(long)]
    id: String,
    /// Job name (default: the id).
    #[arg(long)]
    name: Option<String>,
    /// Shell command (run by /bin/sh -c).
    #[arg(long)]
    command: Option<String>,
    /// Working directory of the command.
    #[arg(long)]
    cwd: Option<String>,
    /// Environment variable for the command, NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Time-out (seconds or "90s", "1h30m").
    #[arg(long)]
    timeout: Option<String>,
    /// HTTP job: the URL.
    #[arg(long)]
    http_url: Option<String>,
    /// HTTP job: the method (default GET).
    #[arg(long)]
    http_method: Option<String>,
    /// HTTP job: a header, "Name: value" (repeatable).
    #[arg(long = "http-header", value_name = "NAME: VALUE")]
    http_header: Vec<String>,
    /// HTTP job: the request body.
    #[arg(long)]
    http_body: Option<String>,
    /// HTTP job: an accepted status (repeatable; default any 2xx).
    #[arg(long)]
    expect_status: Vec<u16>,
    /// Crontab text ("*/5 * * * *", "@daily").
    #[arg(long)]
    cron: Option<String>,
    /// Interval ("90s", "2h", or seconds).
    #[arg(long)]
    interval: Option<String>,
    /// One run at this date ("2026-12-01 09:00:00").
    #[arg(long)]
    date: Option<String>,
    /// A trigger with APScheduler's arguments as an inline TOML table:
    /// '{ type = "cron", day = "last sun", hour = 3 }'.
    #[arg(long)]
    trigger: Option<String>,
    /// The trigger's timezone.
    #[arg(long)]
    timezone: Option<String>,
    /// Random delay added to each fire time (seconds or "10s").
    #[arg(long)]
    jitter: Option<String>,
    /// First possible fire time.
    #[arg(long)]
    start_date: Option<String>,
    /// Last possible fire time.
    #[arg(long)]
    end_date: Option<String>,
    /// How late a run may start (seconds or "30s").
    #[arg(long)]
    misfire_grace_time: Option<String>,
    /// Collapse overdue runs into one (true/false).
    #[arg(long)]
    coalesce: Option<bool>,
    /// Runs of this job allowed at once.
    #[arg(long)]
    max_instances: Option<u32>,
    /// Run again, for the same fire time, a run that its daemon's death interrupted
    /// (SIGKILL, crash, a node taken for dead).
    #[arg(long)]
    recover: bool,
}

/// `aps history` filters.
#[derive(Debug, clap::Args)]
pub(crate) struct HistoryArgs {
    /// Only this job's runs.
    #[arg(long)]
    job: Option<String>,
    /// Only runs with this outcome (success, failure, timeout, missed, interrupted, error, running).
    #[arg(long)]
    outcome: Option<String>,
    /// Only runs scheduled at or after this time (RFC 3339, "2026-11-23 10:00:00" in
    /// the config's timezone, or an age such as "2h").
    #[arg(long)]
    since: Option<String>,
    /// At most this many runs (newest first).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// An array of JSON objects instead of a table.
    #[arg(long)]
    json: bool,
}

/// The store, timezone and defaults a command works with.
struct Target {
    url: String,
    /// `[store] connect_timeout` (`None`: the store's default).
    connect_timeout: Option<std::time::Duration>,
    tz: Tz,
    defaults: Defaults,
    kill_grace: std::time::Duration,
    output_cap: usize,
    history_enabled: bool,
    node_timeout: std::time::Duration,
}

fn target(args: &StoreArgs) -> Result<Target, String> {
    match (&args.config, &args.store) {
        (explicit, None) | (explicit @ Some(_), _) => {
            let path =
                crate::config_path::resolve(explicit.as_deref()).map_err(|e| e.to_string())?;
            let cfg = config::load_settings(&path).map_err(|e| e.to_string())?;
            Ok(Target {
                url: cfg.store_url,
                connect_timeout: cfg.store_connect_timeout,
                tz: cfg.timezone,
                defaults: cfg.defaults.clone(),
                kill_grace: cfg.kill_grace,
                output_cap: cfg.history.output_cap,
                history_enabled: cfg.history.enabled,
                node_timeout: cfg.node_timeout,
            })
        }
        (None, Some(url)) => Ok(Target {
            url: url.clone(),
            connect_timeout: None,
            tz: apscheduler_engine::local_timezone(),
            defaults: Defaults::default(),
            kill_grace: std::time::Duration::from_secs(5),
            output_cap: 4096,
            history_enabled: true,
            node_timeout: apscheduler_engine::HistoryOptions::default().node_timeout,
        }),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `f` on the store, printing its error; exit 1 on failure.
fn on_store<F, Fut>(args: &StoreArgs, f: F) -> ExitCode
where
    F: FnOnce(Target, Opened) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, String>>,
{
    // Before the config is read: the memory its parse frees stays for the command.
    crate::daemon::heap::grow_in_large_steps();
    let target = match target(args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    runtime().block_on(async move {
        let runs = crate::daemon::Runs::new(Limits {
            kill_grace: target.kill_grace,
            output_cap: target.output_cap,
        });
        let opened = match open_scheduler(
            &target.url,
            target.connect_timeout,
            target.tz,
            None,
            &runs,
            store::Role::Manager,
        )
        .await
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let scheduler = opened.scheduler.clone();
        let code = match f(target, opened).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
        let _ = scheduler.shutdown(false).await;
        code
    })
}

/// `aps jobs ...`.
pub(crate) fn jobs_command(store_args: &StoreArgs, command: JobsCommand) -> ExitCode {
    if let JobsCommand::Run {
        id,
        daemon: true,
        url,
        token,
    } = &command
    {
        return run_on_daemon(store_args, id, url.as_deref(), token.as_deref());
    }
    on_store(store_args, move |target, opened| async move {
        let Opened {
            scheduler, history, ..
        } = opened;
        match command {
            JobsCommand::List { json } => {
                let jobs: Vec<Job> = scheduler
                    .engine()
                    .get_jobs(None)
                    .await
                    .map_err(|e| e.to_string())?;
                let last = last_outcomes(history.as_deref(), &jobs).await;
                if json {
                    print_jobs_json(&jobs, &last);
                } else {
                    print_jobs_table(&jobs, &last);
                }
                left_to_exit((jobs, last));
                Ok(ExitCode::SUCCESS)
            }
            JobsCommand::Show { id, json } => {
                let Some(h) = scheduler.get_job(&id).await.map_err(|e| e.to_string())? else {
                    return Err(format!("no job '{id}'"));
                };
                let runs = match &history {
                    Some(history) => history
                        .query_runs(&RunQuery {
                            job_id: Some(id.clone()),
                            limit: 10,
                            ..RunQuery::default()
                        })
                        .await
                        .map_err(|e| e.to_string())?,
                    None => Vec::new(),
                };
                let def = JobDef::from_kwargs(&h.job().kwargs);
                let mut out = json!(JobView::new(h.job(), describe(h.job()), runs.first()));
                out["definition"] = def.as_ref().map_or(Value::Null, |d| json!(d));
                out["failure_streak"] =
                    json!(apscheduler_engine::failure_streak(&runs, &h.job().policy));
                out["recent_runs"] = json!(runs.iter().map(run_json).collect::<Vec<_>>());
                if json {
                    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
                } else {
                    print_job(h.job(), &runs);
                }
                Ok(ExitCode::SUCCESS)
            }
            JobsCommand::Add(add) => {
                let raw = add.to_raw()?;
                let def = check_job(&raw, target.tz, &target.defaults, Origin::Cli)
                    .map_err(|e| format!("job{e}"))?;
                let h =
                    scheduler
                        .add_job(jobs::spec_of(&def))
                        .await
                        .map_err(|e| match e.kind() {
                            apscheduler_core::ErrorKind::Conflict => {
                                format!("a job with the id '{}' already exists", def.id)
                            }
                            _ => e.to_string(),
                        })?;
                println!(
                    "added job '{}': {}; next run at {}",
                    def.id,
                    def.trigger_text,
                    next_text(h.job())
                );
                Ok(ExitCode::SUCCESS)
            }
            JobsCommand::Pause { id } => {
                scheduler
                    .pause_job(&id)
                    .await
                    .map_err(|e| not_found(&id, e))?;
                println!("paused job '{id}'");
                Ok(ExitCode::SUCCESS)
            }
            JobsCommand::Resume { id } => {
                let h = scheduler
                    .resume_job(&id)
                    .await
                    .map_err(|e| not_found(&id, e))?;
                match h {
                    Some(h) => println!("resumed job '{id}'; next run at {}", next_text(h.job())),
                    None => println!("job '{id}' has no fire time left: removed"),
                }
                Ok(ExitCode::SUCCESS)
            }
            JobsCommand::Remove { id } => {
                scheduler
                    .remove_job(&id)
                    .await
                    .map_err(|e| not_found(&id, e))?;
                println!("removed job '{id}'");
                Ok(ExitCode::SUCCESS)
            }
            JobsCommand::Run { id, .. } => {
                let Some(h) = scheduler.get_job(&id).await.map_err(|e| e.to_string())? else {
                    return Err(format!("no job '{id}'"));
                };
                let def = JobDef::from_kwargs(&h.job().kwargs).ok_or_else(|| {
                    format!("job '{id}' was not made by aps (no command or http action)")
                })?;
                let history = history.filter(|_| target.history_enabled);
                run_now(&def, history, &target).await
            }
        }
    })
}

/// Leaves `value` for the process's exit to free: a management command ends right
/// after its listing, and the kernel takes its memory back at once, whereas freeing
/// 10,000 decoded jobs one allocation at a time (most of them made on other threads)
/// is a measurable part of `aps jobs list`.
fn left_to_exit<T>(value: T) {
    std::mem::forget(value);
}

fn not_found(id: &str, e: apscheduler_core::Error) -> String {
    match e.kind() {
        apscheduler_core::ErrorKind::NotFound => format!("no job '{id}'"),
        _ => e.to_string(),
    }
}

/// `aps jobs run ID --daemon`: the daemon's run-now (`POST /api/jobs/{id}/run`), which
/// the job's overlap policy governs; prints the run id the daemon started.
fn run_on_daemon(
    store_args: &StoreArgs,
    id: &str,
    url: Option<&str>,
    token: Option<&str>,
) -> ExitCode {
    let fail = |(code, message): crate::daemon_api::Failure| {
        eprintln!("error: {message}");
        ExitCode::from(code)
    };
    let api = match crate::daemon_api::DaemonApi::locate(
        url,
        store_args.config.as_deref(),
        token,
        "aps jobs run --daemon",
    ) {
        Ok(api) => api,
        Err(e) => return fail(e),
    };
    let path = format!("/api/jobs/{}/run", crate::daemon_api::path_segment(id));
    match api.post(&path, &serde_json::json!({})) {
        Ok((status, answer)) if status < 300 => {
            let run = answer["run_id"].as_str().unwrap_or("?");
            eprintln!("the daemon started run {run} of job '{id}' (follow it with: aps history --job {id})");
            ExitCode::SUCCESS
        }
        Ok((status, answer)) => fail((
            1,
            format!(
                "the daemon refused to run job '{id}' ({status}): {}",
                answer["message"].as_str().unwrap_or_default()
            ),
        )),
        Err(e) => fail(e),
    }
}

/// `aps jobs run ID`: the action now, in this process, with a history record.
async fn run_now(
    def: &JobDef,
    history: Option<Arc<dyn RunHistory>>,
    target: &Target,
) -> Result<ExitCode, String> {
    let now = Utc::now();
    let mut record = RunRecord {
        run_id: uuid::Uuid::now_v7().to_string(),
        job_id: def.id.clone(),
        scheduled_at: now,
        started_at: Some(now),
        finished_at: None,
        outcome: RunOutcome::Running,
        exit_code: None,
        http_status: None,
        output: String::new(),
        message: Some("run by `aps jobs run`".into()),
        node: store::daemon_node(None),
        attempt: 1,
        backfill: false,
        due_at: None,
    };
    if let Some(h) = &history {
        h.record_runs(std::slice::from_ref(&record))
            .await
            .map_err(|e| format!("cannot record the run: {e}"))?;
    }
    let env = RunEnv {
        job_id: def.id.clone(),
        run_id: record.run_id.clone(),
        scheduled_at: now.with_timezone(&target.tz),
        attempt: 1,
        cancel: Default::default(),
    };
    let limits = Limits {
        kill_grace: target.kill_grace,
        output_cap: target.output_cap,
    };
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let result = action::run(&def.action, &env, limits, stop_rx).await;
    record.finished_at = Some(Utc::now());
    record.message = None;
    let result = result.map_err(|e| apscheduler_core::failure_from_task_error(e.as_ref()));
    apscheduler_engine::finish_record(&mut record, &result, target.output_cap);
    if let Some(h) = &history {
        h.record_runs(std::slice::from_ref(&record))
            .await
            .map_err(|e| format!("cannot record the run's end: {e}"))?;
    }
    print!("{}", record.output);
    eprintln!(
        "run {} of job '{}': {}{}",
        record.run_id,
        def.id,
        record.outcome,
        record
            .message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    Ok(if record.outcome == RunOutcome::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

impl AddArgs {
    fn to_raw(&self) -> Result<RawJob, String> {
        let dur = |v: &Option<String>| v.clone().map(DurationText::Text);
        let env = if self.env.is_empty() {
            None
        } else {
            let mut m = BTreeMap::new();
            for kv in &self.env {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--env: '{kv}' is not NAME=VALUE"))?;
                m.insert(k.to_owned(), v.to_owned());
            }
            Some(m)
        };
        let http = match &self.http_url {
            None if self.http_method.is_some()
                || !self.http_header.is_empty()
                || self.http_body.is_some()
                || !self.expect_status.is_empty() =>
            {
                return Err(
                    "--http-method, --http-header, --http-body and --expect-status need --http-url"
                        .into(),
                )
            }
            None => None,
            Some(url) => {
                let mut headers = BTreeMap::new();
                for h in &self.http_header {
                    let (k, v) = h
                        .split_once(':')
                        .ok_or_else(|| format!("--http-header: '{h}' is not 'Name: value'"))?;
                    headers.insert(k.trim().to_owned(), v.trim().to_owned());
                }
                Some(RawHttp {
                    method: self.http_method.clone(),
                    url: Some(url.clone()),
                    headers: Some(headers),
                    body: self.http_body.clone(),
                    expect_status: (!self.expect_status.is_empty())
                        .then(|| config::ExpectStatus::Many(self.expect_status.clone())),
                })
            }
        };
        let trigger = match &self.trigger {
            Some(t) => Some(
                toml::from_str::<toml::Table>(&format!("t = {t}"))
                    .map_err(|e| format!("--trigger: not an inline TOML table: {e}"))?
                    .remove("t")
                    .and_then(|v| v.as_table().cloned())
                    .ok_or_else(|| "--trigger: not an inline TOML table".to_owned())?,
            ),
            None => None,
        };
        Ok(RawJob {
            id: Some(self.id.clone()),
            name: self.name.clone(),
            command: self.command.clone(),
            cwd: self.cwd.clone(),
            env,
            timeout: dur(&self.timeout),
            http,
            cron: self.cron.clone(),
            interval: dur(&self.interval),
            date: self.date.clone(),
            trigger,
            timezone: self.timezone.clone(),
            jitter: dur(&self.jitter),
            start_date: self.start_date.clone(),
            end_date: self.end_date.clone(),
            misfire_grace_time: dur(&self.misfire_grace_time),
            coalesce: self.coalesce,
            max_instances: self.max_instances,
            // Only when given: otherwise `[job_defaults] recover` decides.
            recover: self.recover.then_some(RecoverFlag(true)),
            // The rest (mail) from `[job_defaults]`.
            ..RawJob::default()
        })
    }
}

/// The newest run of each job (one statement on SQLite and PostgreSQL, one per 200 jobs
/// on MySQL/MariaDB).
async fn last_outcomes(
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

fn next_text(job: &Job) -> String {
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
fn trigger_text(job: &Job, def: Option<&JobDef>) -> String {
    def.map_or_else(|| job.trigger.to_string(), |d| d.trigger_text.clone())
}

/// `aps jobs list --json`: written as it is serialized, through one buffered writer,
/// without a JSON value per job first.
fn print_jobs_json(jobs: &[Job], last: &std::collections::HashMap<String, RunRecord>) {
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

fn print_table(header: &[&str], rows: &[Vec<String>]) {
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

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn print_jobs_table(jobs: &[Job], last: &std::collections::HashMap<String, RunRecord>) {
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

fn print_job(job: &Job, runs: &[RunRecord]) {
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
}

fn print_runs(runs: &[RunRecord]) {
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
                outcome_cell(r),
                code,
                took,
                clip(&note, 60),
            ]
        })
        .collect();
    print_table(
        &["SCHEDULED (UTC)", "JOB", "OUTCOME", "CODE", "TOOK", "NOTE"],
        &rows,
    );
}

/// A run's outcome, then `#N` for a retry (attempt N > 1) and `backfill` for a run a
/// backfill started: `failure #2`, `success backfill`.
fn outcome_cell(r: &RunRecord) -> String {
    let mut cell = r.outcome.to_string();
    if r.attempt > 1 {
        cell.push_str(&format!(" #{}", r.attempt));
    }
    if r.backfill {
        cell.push_str(" backfill");
    }
    cell
}

/// `aps history`.
pub(crate) fn history_command(store_args: &StoreArgs, args: HistoryArgs) -> ExitCode {
    on_store(store_args, move |target, opened| async move {
        let history = opened.history.ok_or("this store keeps no run history")?;
        let outcome = args
            .outcome
            .as_deref()
            .map(str::parse::<RunOutcome>)
            .transpose()
            .map_err(|e| format!("--outcome: {e}"))?;
        let since = args
            .since
            .as_deref()
            .map(|s| parse_since(s, target.tz))
            .transpose()?;
        let runs = history
            .query_runs(&RunQuery {
                job_id: args.job.clone(),
                outcome,
                since,
                until: None,
                node: None,
                limit: args.limit,
            })
            .await
            .map_err(|e| e.to_string())?;
        if args.json {
            let rows: Vec<Value> = runs.iter().map(run_json).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            );
        } else {
            print_runs(&runs);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `aps nodes`.
pub(crate) fn nodes_command(store_args: &StoreArgs, json: bool) -> ExitCode {
    on_store(store_args, move |target, opened| async move {
        let history = opened
            .history
            .ok_or("this store keeps no run history, and so no node registry")?;
        let registry = history
            .nodes()
            .ok_or("this store's run history keeps no node registry")?;
        let nodes = registry.list_nodes().await.map_err(|e| e.to_string())?;
        let now = Utc::now();
        if json {
            let rows: Vec<NodeView> = nodes
                .iter()
                .map(|n| NodeView::new(n, now, target.node_timeout))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            );
        } else {
            let rows: Vec<Vec<String>> = nodes
                .iter()
                .map(|n| {
                    let age = (now - n.heartbeat_at).num_milliseconds() as f64 / 1e3;
                    vec![
                        n.node.clone(),
                        n.host.clone(),
                        n.pid.to_string(),
                        n.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        format!("{age:.1}s ago"),
                        n.running.to_string(),
                        NodeView::new(n, now, target.node_timeout).state,
                    ]
                })
                .collect();
            print_table(
                &[
                    "NODE",
                    "HOST",
                    "PID",
                    "STARTED (UTC)",
                    "HEARTBEAT",
                    "RUNNING",
                    "STATE",
                ],
                &rows,
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn parse_since(s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(age) = humantime::parse_duration(s) {
        return Ok(Utc::now() - chrono::Duration::from_std(age).map_err(|e| e.to_string())?);
    }
    apscheduler_core::time::parse_datetime("since", s, tz)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("--since: {e}"))
}

/// `aps config check FILE`.
pub(crate) fn config_check(path: &std::path::Path) -> ExitCode {
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}: ok", path.display());
    println!("store:    {}", crate::daemon::redact(&cfg.store_url));
    println!("timezone: {}", cfg.timezone.name());
    match &cfg.http {
        Some(h) if h.tokens.is_empty() => println!(
            "http:     http://{}/ (no tokens: loopback clients only; metrics {})",
            h.listen,
            if h.metrics { "on" } else { "off" }
        ),
        Some(h) => println!(
            "http:     http://{}/ (tokens: {}; metrics {})",
            h.listen,
            h.tokens
                .iter()
                .map(|t| format!("{} ({})", t.name, t.role))
                .collect::<Vec<_>>()
                .join(", "),
            if h.metrics { "on" } else { "off" }
        ),
        None => println!("http:     off (no [http] table)"),
    }
    if !cfg.notifications.webhooks.is_empty() {
        println!(
            "webhooks: {} (at most {} per webhook per job an hour, {} attempts each)",
            cfg.notifications.webhooks.len(),
            cfg.notifications.flood_cap_per_hour,
            cfg.notifications.max_attempts
        );
    }
    for calendar in cfg.defaults.calendars.values() {
        println!("calendar: {}: {}", calendar.name, calendar.calendar);
    }
    println!("jobs:     {}", cfg.jobs.len());
    let now = Utc::now().with_timezone(&cfg.timezone);
    for def in &cfg.jobs {
        println!();
        println!("[[jobs]] {}", def.id);
        if def.name != def.id {
            println!("  name:    {}", def.name);
        }
        println!("  action:  {}", def.action.summary());
        if def.runs_only_at_start() {
            println!("  trigger: {}", def.trigger_text);
        } else {
            println!(
                "  trigger: {} ({} {})",
                def.trigger_text, def.trigger_kind, def.trigger_args
            );
        }
        println!(
            "  options: misfire_grace_time={}, coalesce={}, max_instances={}, recover={}",
            def.misfire_grace_time
                .map_or("none".into(), |s| format!("{s}s")),
            def.coalesce,
            def.max_instances,
            def.recover
        );
        if !def.mailto.is_empty() {
            println!(
                "  mail:    to {}, mail_when = {}",
                def.mailto.join(", "),
                def.mail_when.as_str()
            );
        }
        if let Action::Command {
            user: Some(user),
            group,
            ..
        } = &def.action
        {
            let group = group.as_deref().map_or_else(
                || "the user's primary group".to_owned(),
                |g| format!("group {g}"),
            );
            println!("  runs as: {user} ({group})");
        }
        if let Some(calendar) = &def.calendar {
            println!(
                "  calendar: {} (calendar_action = {})",
                calendar.name, def.calendar_action
            );
        }
        if def.runs_only_at_start() {
            println!("  next:    at each daemon start only");
            continue;
        }
        if def.at_start {
            println!("  next:    at each daemon start, and:");
        }
        let trigger = match def.build_trigger(cfg.timezone) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: job '{}': {e}", def.id);
                return ExitCode::from(2);
            }
        };
        use apscheduler_core::Trigger as _;
        let mut prev = None;
        let mut shown = 0;
        // With the calendar applied: fire times it excludes are not shown (bounded,
        // for a calendar that excludes nearly all of them).
        let mut looked = 0;
        while shown < 3 && looked < 10_000 {
            looked += 1;
            // After the first, each fire time is strictly after the previous one.
            let after = prev.unwrap_or(now);
            let Some(t) = trigger.next_fire_time(prev.as_ref(), &after) else {
                break;
            };
            prev = Some(t);
            if trigger.excluded_by(&t).is_some() {
                continue;
            }
            println!("  next:    {}", apscheduler_core::time::to_rfc3339(&t));
            shown += 1;
        }
        if shown == 0 {
            println!("  next:    never (no fire time left)");
        }
    }
    ExitCode::SUCCESS
}

//! The management commands: `aps jobs ...`, `aps history`, `aps config check`. Each
//! works on the store directly (a running daemon sees the change at its next poll,
//! within `poll_interval`, one second by default). `aps jobs run` is in `run_now`, the
//! listings' printing in `print`, `aps history`, `aps nodes` and `aps config check`
//! in `history`.

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

mod history;
mod print;
mod run_now;

pub(crate) use history::*;
use print::*;
use run_now::*;

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
    /// `[scheduler] leased_runs`: the daemons keep every run as a leased row.
    leased_runs: bool,
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
                leased_runs: cfg.leased_runs,
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
            // The daemons' default.
            leased_runs: true,
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
            scheduler,
            history,
            store,
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
                let job = scheduler.get_job(&id).await.map_err(|e| e.to_string())?;
                let job = job.ok_or_else(|| format!("no job '{id}'"))?;
                if let Some(why) = jobs::resume_refusal(job.job()) {
                    return Err(why);
                }
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
                run_now(&def, h.job(), history, &target, store).await
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

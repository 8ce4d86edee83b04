//! `aps run`: the daemon. It loads the config, opens the store, records history,
//! upserts the config's jobs, and runs until SIGINT/SIGTERM (SIGHUP reloads).
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | the TOML format, checks, the job definitions stored with each job |
//! | [`action`] | running a command (process group, time-out, output tail) or an HTTP request |
//! | [`run_as`] | the user and group a command runs as, and cron's environment for it |
//! | [`store`] | the store a URL names; node names |
//! | [`jobs`] | config jobs to engine jobs, and the sync that upserts them |
//! | [`http`] | `[http]` and `[notifications]`: the management plane and its webhooks |
//! | [`mail`] | `[mail]`: a run's output mailed as cron mails it (SMTP or sendmail) |
//! | [`systemd`] | the `Type=notify` protocol: readiness, reload, stop, watchdog pings |

pub(crate) mod action;
pub(crate) mod config;
pub(crate) mod heap;
pub(crate) mod http;
pub(crate) mod jobs;
pub(crate) mod mail;
pub(crate) mod run_as;
pub(crate) mod store;
pub(crate) mod systemd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    JobStore, RunHistory, RunOutcome, RunQuery, TaskContext, TaskFailure, TaskResult,
};
use apscheduler_engine::{AsyncScheduler, Engine, HistoryOptions};
use apscheduler_http::metrics::{MeteredStore, MetricsOptions, RunMetrics};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Notify};

use self::action::{Limits, RunEnv};
use self::config::{Config, JobDef, COMMAND_TASK, HTTP_TASK};

/// Options of `aps run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The TOML config file (default: $APS_CONFIG, else /etc/aps/aps.toml).
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
}

/// What the job tasks share: the stop signal, the count of runs in flight, and the
/// mailer of their output.
#[derive(Debug)]
pub(crate) struct Runs {
    limits: Limits,
    stop: watch::Sender<bool>,
    in_flight: AtomicUsize,
    idle: Notify,
    mailer: Option<Arc<mail::Mailer>>,
}

impl Runs {
    pub(crate) fn new(limits: Limits) -> Arc<Runs> {
        Runs::with_mailer(limits, None)
    }

    /// Runs whose output `mailer` mails to their jobs' `mailto`.
    pub(crate) fn with_mailer(limits: Limits, mailer: Option<Arc<mail::Mailer>>) -> Arc<Runs> {
        Arc::new(Runs {
            limits,
            stop: watch::channel(false).0,
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            mailer,
        })
    }

    /// Runs the action of the job `ctx` belongs to.
    async fn run_job(&self, ctx: TaskContext) -> TaskResult {
        let def = JobDef::from_kwargs(&ctx.kwargs).ok_or_else(|| {
            TaskFailure::new(
                "refused",
                format!("job '{}' carries no aps job definition", ctx.job_id),
            )
        })?;
        let env = RunEnv {
            job_id: ctx.job_id.to_string(),
            run_id: ctx
                .run_id
                .as_deref()
                .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned),
            scheduled_at: ctx.scheduled_run_time,
            attempt: ctx.attempt,
            idempotency_key: ctx.idempotency_key(),
            fence: ctx.fence,
            cancel: ctx.cancel.clone(),
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let capture = self.mailer.as_ref().map_or(0, |m| m.capture_for(&def));
        let (result, captured) = action::run_capturing(
            &def.action,
            &env,
            self.limits,
            capture,
            self.stop.subscribe(),
        )
        .await;
        if let Some(mailer) = &self.mailer {
            // Sent by a task of its own: the run ends now.
            mailer.after_run(&def, &env, &result, captured);
        }
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
        result
    }

    /// Registers the command and HTTP tasks on `scheduler`.
    pub(crate) fn register(self: &Arc<Self>, scheduler: &AsyncScheduler) {
        for name in [COMMAND_TASK, HTTP_TASK] {
            let runs = self.clone();
            scheduler.register_async_task(name, move |ctx| {
                let runs = runs.clone();
                async move { runs.run_job(ctx).await }
            });
        }
    }

    /// Waits up to `grace` for the runs in flight; then interrupts the rest.
    async fn drain(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.idle.notified();
            let n = self.in_flight.load(Ordering::SeqCst);
            if n == 0 {
                return;
            }
            tracing::info!(
                "waiting up to {:.1}s for {n} running job(s)",
                deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_secs_f64()
            );
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                let n = self.in_flight.load(Ordering::SeqCst);
                if n > 0 {
                    tracing::warn!("grace period over: interrupting {n} running job(s) (SIGTERM, then SIGKILL after {:.1}s)", self.limits.kill_grace.as_secs_f64());
                    let _ = self.stop.send(true);
                }
                return;
            }
        }
    }
}

/// `aps run [--config FILE]`.
pub(crate) fn run(args: &RunArgs) -> ExitCode {
    let cfg = match crate::config_path::resolve(args.config.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|path| config::load(&path).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match serve(cfg).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// A started scheduler on the config's store, paused, with the store checked.
pub(crate) struct Opened {
    pub(crate) scheduler: AsyncScheduler,
    pub(crate) history: Option<Arc<dyn RunHistory>>,
    /// The store, asked before each poll whether it tells the scheduler about other
    /// processes' changes as they happen (PostgreSQL, Redis, ZooKeeper; MongoDB while
    /// a change stream is open), so that polling is only a safety net.
    pub(crate) store: Arc<dyn JobStore>,
}

/// Opens the store `url` under a scheduler started paused (nothing runs); `history`
/// options make it record. Fails when the store cannot be reached.
pub(crate) async fn open_scheduler(
    url: &str,
    connect_timeout: Option<std::time::Duration>,
    tz: chrono_tz::Tz,
    record: Option<HistoryOptions>,
    runs: &Arc<Runs>,
    role: store::Role,
) -> Result<Opened, String> {
    let extra = DaemonExtras::default();
    open_metered(url, connect_timeout, tz, record, runs, role, extra).await
}

/// What the daemon's own scheduler adds to [`open_scheduler`]'s.
#[derive(Default, Clone, Copy)]
struct DaemonExtras<'a> {
    /// Counts the store's round trips and the runs (when recorded).
    metrics: Option<&'a RunMetrics>,
    /// `[scheduler] leased_runs`.
    leased_runs: bool,
}

/// [`open_scheduler`], with `extra`.
async fn open_metered(
    url: &str,
    connect_timeout: Option<std::time::Duration>,
    tz: chrono_tz::Tz,
    mut record: Option<HistoryOptions>,
    runs: &Arc<Runs>,
    role: store::Role,
    extra: DaemonExtras<'_>,
) -> Result<Opened, String> {
    let metrics = extra.metrics;
    let mut store = store::open(url, connect_timeout, role).map_err(|e| match role {
        store::Role::Scheduler if e.contains("single-node") => e,
        _ => format!("store.url: {e}"),
    })?;
    // Reached once before the scheduler starts: the engine would take a store that is
    // down at start for a passing outage and retry it (its run history and node
    // registry too, each waiting out a time-out), where the daemon must stop at once
    // with the cause. One lookup by id connects without reading every job.
    if let Err(e) = store.lookup_job("aps: reachability probe").await {
        let _ = store.shutdown().await;
        return Err(e.to_string());
    }
    if let Some(m) = metrics {
        store = Arc::new(MeteredStore::from_arc(store, m.clone()));
        record = record.map(|o| o.observe(Arc::new(m.clone())));
    }
    let history = store.run_history();
    let mut builder = Engine::builder()
        .timezone(tz)
        .jobstore("default", store.clone())
        .leased_runs(extra.leased_runs);
    if let (Some(options), Some(h)) = (record, &history) {
        // The node name (`<node>/<pid>`, one per process) is also the holder of the
        // runs and claims this process leases: a run taken over from it is recorded
        // on the node that ran it.
        if let Some(node) = &options.node {
            builder = builder.scheduler_id(node.clone());
        }
        builder = builder.run_history(h.clone(), options);
    }
    let scheduler = AsyncScheduler::from_builder(builder).map_err(|e| e.to_string())?;
    runs.register(&scheduler);
    scheduler
        .start(true)
        .await
        .map_err(|e| format!("cannot start on the store '{}': {e}", redact(url)))?;
    // A store that is down at start is retried by the engine; here that is an error.
    // One lookup by id reaches the store without reading every job.
    if let Err(e) = scheduler.get_job("aps: reachability probe").await {
        let _ = scheduler.shutdown(false).await;
        return Err(format!(
            "the store '{}' cannot be reached: {e}",
            redact(url)
        ));
    }
    if let Some(h) = &history {
        h.prepare().await.map_err(|e| {
            format!(
                "the run history in '{}' cannot be prepared: {e}",
                redact(url)
            )
        })?;
    }
    Ok(Opened {
        scheduler,
        history,
        store,
    })
}

/// A URL with its password hidden (and a Sentinel URL's `sentinel_password=`).
pub(crate) fn redact(url: &str) -> String {
    let mut url = redact_userinfo(url);
    if let Some(i) = url.find("sentinel_password=") {
        let start = i + "sentinel_password=".len();
        let end = url[start..].find('&').map_or(url.len(), |e| start + e);
        url.replace_range(start..end, "***");
    }
    url
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn serve(cfg: Config) -> Result<(), String> {
    for warning in &cfg.warnings {
        tracing::warn!("{warning}");
    }
    let node = store::daemon_node(cfg.node.as_deref());
    let options = cfg.history.enabled.then(|| HistoryOptions {
        node: Some(node.clone()),
        output_cap: cfg.history.output_cap,
        retention: cfg.history.retention,
        heartbeat: cfg.heartbeat,
        node_timeout: cfg.node_timeout,
        cluster_max_instances: cfg.cluster_max_instances,
        record_starts: cfg.record_starts,
        ..HistoryOptions::default()
    });
    let metrics = cfg
        .http
        .as_ref()
        .filter(|h| h.metrics)
        .map(|_| RunMetrics::prometheus(MetricsOptions::default()));
    let mailer = Arc::new(mail::Mailer::new(&cfg.mail, metrics.clone())?);
    let mailing = cfg.jobs.iter().filter(|j| !j.mailto.is_empty()).count();
    if mailing > 0 && !mailer.has_transport() {
        tracing::warn!(
            "{mailing} job(s) have a mailto, but their mail cannot be sent: {}",
            mailer.describe()
        );
    }
    let runs = Runs::with_mailer(
        Limits {
            kill_grace: cfg.kill_grace,
            output_cap: cfg.history.output_cap,
        },
        Some(mailer.clone()),
    );
    let notifier = http::notifier(&cfg.notifications)?;
    if notifier.is_some() && !cfg.history.enabled {
        tracing::warn!(
            "[notifications] needs run records: with [history] enabled = false no webhook is sent"
        );
    }
    let options = match (options, &notifier) {
        (Some(o), Some(n)) => Some(o.observe(Arc::new(n.clone()))),
        (o, _) => o,
    };
    let Opened {
        scheduler,
        history,
        store,
    } = open_metered(
        &cfg.store_url,
        cfg.store_connect_timeout,
        cfg.timezone,
        options,
        &runs,
        store::Role::Scheduler,
        DaemonExtras {
            metrics: metrics.as_ref(),
            leased_runs: cfg.leased_runs,
        },
    )
    .await?;
    if cfg.history.enabled && history.is_none() {
        tracing::warn!(
            "the store '{}' keeps no run history: runs are not recorded",
            redact(&cfg.store_url)
        );
    }
    let host = cfg.node.clone().unwrap_or_else(store::host_name);
    if let Some(h) = &history {
        // With leased runs the store's sweep takes them, once their leases ran out.
        if !cfg.leased_runs {
            recover_interrupted(&scheduler, &**h, &host, &node).await;
        }
    }
    if let Err(e) = jobs::sync(&scheduler, &cfg.jobs, history.as_deref()).await {
        let _ = scheduler.shutdown(false).await;
        return Err(e);
    }
    // Fixed before the management plane answers: a job added through it (or by `aps
    // jobs add`) from now on was not there at start.
    let at_start = jobs::at_start_jobs(&scheduler).await;
    // Taken over before the management plane answers: a SIGTERM sent as soon as the
    // daemon looks up (its health endpoint answers) waits for the loop below and stops
    // the daemon cleanly instead of killing it.
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let defaults: http::SharedDefaults = Arc::new(std::sync::RwLock::new(cfg.defaults.clone()));
    let server = match &cfg.http {
        Some(settings) => {
            match http::start(
                settings,
                &scheduler,
                history.clone(),
                defaults.clone(),
                cfg.node_timeout,
                metrics.clone(),
                &node,
            )
            .await
            {
                Ok(server) => Some(server),
                Err(e) => {
                    let _ = scheduler.shutdown(false).await;
                    return Err(e);
                }
            }
        }
        None => None,
    };
    tracing::info!(node = %node, store = %redact(&cfg.store_url), config = %cfg.path.display(), "aps daemon started");
    jobs::log_jobs(&scheduler).await;
    heap::release_freed();
    scheduler.resume().map_err(|e| e.to_string())?;
    // Once per start, never on reload: cron's `@reboot`.
    jobs::run_at_start(&scheduler, &at_start).await;

    // Other processes change jobs in the store (`aps jobs ...`, other daemons). A
    // SQLite file is watched (its changes wake the daemon at once, and nothing runs
    // while it is idle); PostgreSQL, Redis and ZooKeeper notify the scheduler
    // themselves, and MongoDB while its change stream is open (asked at each tick:
    // the stream opens after start, and may end); either way a poll a minute is the
    // safety net. Other stores are polled, every second unless `poll_interval` says
    // otherwise.
    let (changed_tx, mut changed) = tokio::sync::mpsc::unbounded_channel::<()>();
    let _watcher = match cfg.poll_interval {
        None => watch_sqlite_file(&cfg.store_url, changed_tx),
        Some(_) => None,
    };
    let every = cfg.poll_interval.unwrap_or(if _watcher.is_some() {
        WATCHED_POLL
    } else {
        Duration::from_secs(1)
    });
    let notified =
        |store: &dyn JobStore| cfg.poll_interval.is_none() && store.capabilities().notifications;
    let mut last_poll = tokio::time::Instant::now();
    let (mut file_woken, mut file_pending) = (tokio::time::Instant::now(), false);
    let mut poll = tokio::time::interval(every);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let path = cfg.path.clone();
    let mut watchdog = systemd::Watchdog::from_env();
    systemd::ready();
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                systemd::reloading();
                reload(&scheduler, &path, &cfg, history.as_deref(), &defaults).await;
                systemd::ready();
            }
            () = watchdog.ping() => {}
            _ = poll.tick() => {
                if !notified(&*store) || last_poll.elapsed() >= WATCHED_POLL {
                    last_poll = tokio::time::Instant::now();
                    scheduler.wakeup();
                }
            }
            Some(()) = changed.recv() => {
                // One wake-up for a burst of file events.
                while changed.try_recv().is_ok() {}
                // The daemon's own writes (releases, run records) change the file too,
                // many times a second under load: at most one wake-up per
                // FILE_WAKE_EVERY, and one at the window's end for the events in it.
                if file_woken.elapsed() >= FILE_WAKE_EVERY {
                    file_woken = tokio::time::Instant::now();
                    scheduler.wakeup();
                } else {
                    file_pending = true;
                }
            }
            _ = tokio::time::sleep_until(file_woken + FILE_WAKE_EVERY), if file_pending => {
                file_pending = false;
                file_woken = tokio::time::Instant::now();
                scheduler.wakeup();
            }
        }
    }
    // Stop claiming, let running jobs finish within the grace, interrupt the rest (at
    // once on a second SIGINT/SIGTERM).
    systemd::stopping();
    let _ = scheduler.pause();
    if let Some(server) = server {
        server.stop().await;
    }
    tokio::select! {
        _ = runs.drain(cfg.shutdown_grace) => {}
        _ = async { tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} } } => {
            tracing::warn!("second signal: interrupting the running jobs now");
            let _ = runs.stop.send(true);
        }
    }
    scheduler.shutdown(true).await.map_err(|e| e.to_string())?;
    let unsent = mailer.flush(Duration::from_secs(10)).await;
    if unsent > 0 {
        tracing::error!("{unsent} mail(s) of run output still being sent after 10 s are not sent");
    }
    if let Some(n) = notifier {
        if !n.flush(Duration::from_secs(10)).await {
            tracing::error!("webhook notifications still queued after 10 s are not sent");
        }
    }
    tracing::info!("aps daemon stopped");
    Ok(())
}

/// How often a daemon on a watched SQLite file, or on a store that notifies changes,
/// looks anyway: a safety net, in case a notification is missed.
const WATCHED_POLL: Duration = Duration::from_secs(60);

/// The shortest time between two wake-ups for changes of a watched SQLite file: the
/// watch cannot tell another process's writes from the daemon's own, which come many
/// times a second under load, and each wake-up costs a pass over the store.
const FILE_WAKE_EVERY: Duration = Duration::from_millis(250);

/// Watches the directory of the SQLite file `url` names, sending on `changed` whenever
/// the database or its WAL changes (another process wrote jobs). `None` when the URL is
/// not a SQLite file or the watch cannot be set up (then the daemon polls; logged).
fn watch_sqlite_file(
    url: &str,
    changed: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let file = PathBuf::from(store::sqlite_path(url)?);
    let name = file.file_name()?.to_string_lossy().into_owned();
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if !event.kind.is_modify() && !event.kind.is_create() {
            return;
        }
        let ours = event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(name.as_str()))
        });
        if ours {
            let _ = changed.send(());
        }
    };
    let watched = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(&dir, notify::RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    match watched {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "cannot watch {} for changes ({e}); polling every second",
                dir.display()
            );
            None
        }
    }
}

/// SIGHUP: applies the config's changed jobs, or keeps the old ones when the new file
/// is bad.
async fn reload(
    scheduler: &AsyncScheduler,
    path: &Path,
    running: &Config,
    history: Option<&dyn RunHistory>,
    defaults: &http::SharedDefaults,
) {
    tracing::info!(config = %path.display(), "SIGHUP: reloading the config");
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("config reload refused, the running config stays: {e}");
            return;
        }
    };
    let restart_needed: Vec<&str> = [
        ("store.url", cfg.store_url != running.store_url),
        (
            "store.connect_timeout",
            cfg.store_connect_timeout != running.store_connect_timeout,
        ),
        ("scheduler.node", cfg.node != running.node),
        (
            "scheduler.shutdown_grace",
            cfg.shutdown_grace != running.shutdown_grace,
        ),
        ("scheduler.kill_grace", cfg.kill_grace != running.kill_grace),
        (
            "scheduler.poll_interval",
            cfg.poll_interval != running.poll_interval,
        ),
        ("scheduler.heartbeat", cfg.heartbeat != running.heartbeat),
        (
            "scheduler.node_timeout",
            cfg.node_timeout != running.node_timeout,
        ),
        (
            "scheduler.cluster_max_instances",
            cfg.cluster_max_instances != running.cluster_max_instances,
        ),
        (
            "scheduler.record_starts",
            cfg.record_starts != running.record_starts,
        ),
        (
            "scheduler.leased_runs",
            cfg.leased_runs != running.leased_runs,
        ),
        (
            "history",
            format!("{:?}", cfg.history) != format!("{:?}", running.history),
        ),
        (
            "http",
            format!("{:?}", cfg.http) != format!("{:?}", running.http),
        ),
        ("notifications", cfg.notifications != running.notifications),
        ("mail", cfg.mail != running.mail),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect();
    if !restart_needed.is_empty() {
        tracing::warn!(
            "changed settings take effect at the next start, not on reload: {}",
            restart_needed.join(", ")
        );
    }
    // The API checks the jobs it is given with the new defaults and calendars.
    *defaults
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = cfg.defaults.clone();
    match jobs::sync(scheduler, &cfg.jobs, history).await {
        Ok(()) => {
            tracing::info!("config reloaded");
            jobs::log_jobs(scheduler).await;
        }
        Err(e) => tracing::error!("config reload failed part-way: {e}"),
    }
    heap::release_freed();
}

/// Runs left `running` by a daemon on this host that is gone (killed, crashed) are
/// recorded `interrupted` and handed to the scheduler, which runs again (once it
/// resumes) those of jobs with `recover` set. `interrupt_running` hands each record to
/// one caller only (each names itself, `me`, in its message), so a daemon starting
/// beside this one, or a node reaping the dead daemon, never gets the same record: each
/// run is recovered once.
async fn recover_interrupted(
    scheduler: &AsyncScheduler,
    history: &dyn RunHistory,
    host: &str,
    me: &str,
) {
    let running = match history
        .query_runs(&RunQuery {
            outcome: Some(RunOutcome::Running),
            limit: 100_000,
            ..RunQuery::default()
        })
        .await
    {
        Ok(running) => running,
        Err(e) => {
            tracing::error!("runs left running by a previous daemon cannot be read: {e}");
            return;
        }
    };
    let dead: std::collections::BTreeSet<String> = running
        .into_iter()
        .map(|r| r.node)
        .filter(|node| store::is_dead_local_node(node, host))
        .collect();
    let now = chrono::Utc::now();
    for node in dead {
        // Naming this daemon keeps the message its own: a store hands back the records
        // changed under this message (see `RunHistory::interrupt_running`).
        let message = format!(
            "the daemon ({node}) stopped during the run; found at the next start (by {me})"
        );
        match history.interrupt_running(&node, now, &message).await {
            Ok(found) => {
                for r in &found {
                    tracing::warn!(job_id = %r.job_id, run_id = %r.run_id, scheduled_at = %r.scheduled_at, "run interrupted by the previous daemon's end");
                }
                scheduler.engine().recover_runs(found);
            }
            Err(e) => tracing::error!(
                "runs left running by the daemon {node} could not be recorded interrupted: {e}"
            ),
        }
    }
}

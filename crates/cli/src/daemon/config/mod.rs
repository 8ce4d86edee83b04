//! The daemon's TOML configuration: reading it, checking every field, and the
//! normalised job definitions the daemon stores.
//!
//! Every error names the file, the line and column where the TOML parser gives them,
//! the job id and the field, and the value.
//!
//! | module | what lives there |
//! |---|---|
//! | [`raw`] | the tables as written, before any check |
//! | [`job`] | what a job runs, its checked definition, and the check of one job table |
//! | [`process`] | a command job's `user`, `group`, `shell` and `stdin`, and their checks |
//! | [`calendars`] | `[calendars.NAME]`: exclusion calendars that jobs name |
//! | this one | the whole file: settings, defaults, loading and the store URL |

#[cfg(test)]
mod calendar_tests;
mod calendars;
#[cfg(test)]
mod cron_option_tests;
mod job;
pub(crate) mod policy;
mod process;
mod raw;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apscheduler_core::Retention;
use chrono_tz::Tz;
use serde::de::IgnoredAny;
use toml::Spanned;

pub(crate) use self::calendars::{known as known_calendars, Calendars};
pub(crate) use self::job::{check_job, Action, Dst, JobDef, Origin, COMMAND_TASK, HTTP_TASK};
use self::raw::RawConfig;
pub(crate) use self::raw::{DurationText, ExpectStatus, RawHttp, RawJob, RecoverFlag};
use crate::daemon::mail::{MailSettings, MailWhen};

/// A config that cannot be used, with where and why.
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Job defaults from `[job_defaults]`.
#[derive(Debug, Clone)]
pub(crate) struct Defaults {
    pub(crate) misfire_grace_time: Option<Duration>,
    pub(crate) coalesce: bool,
    pub(crate) max_instances: u32,
    pub(crate) recover: bool,
    pub(crate) timeout: Option<Duration>,
    /// `[job_defaults] kill_grace`: between SIGTERM and SIGKILL of a command's process
    /// group; `None`: `[scheduler] kill_grace`.
    pub(crate) kill_grace: Option<Duration>,
    /// The user command jobs run as (checked per job, which names the job).
    pub(crate) user: Option<String>,
    /// Their group.
    pub(crate) group: Option<String>,
    /// Their shell (`None`: `/bin/sh`).
    pub(crate) shell: Option<String>,
    /// The DST rule of cron triggers: `[job_defaults] dst`, else `[scheduler] dst`;
    /// `None` for the trigger's default.
    pub(crate) dst: Option<Dst>,
    /// `mailto`'s addresses; `None`: not set (no mail), `Some([])`: `mailto = ""`.
    pub(crate) mailto: Option<Vec<String>>,
    pub(crate) mail_when: MailWhen,
    /// The config's `[calendars.NAME]`, which jobs name with `calendar = "NAME"`.
    pub(crate) calendars: Calendars,
    /// `[job_defaults] calendar`: the calendar of jobs that name none.
    pub(crate) calendar: Option<String>,
    /// `[job_defaults] calendar_action`.
    pub(crate) calendar_action: apscheduler_triggers::CalendarAction,
    /// `[job_defaults]` run policy (`retry`, `overlap`, ...): what jobs start from.
    pub(crate) policy: apscheduler_core::RunPolicy,
}

impl Default for Defaults {
    /// APScheduler's: 1 s grace, coalesce, one instance; no recovery, no time-out.
    fn default() -> Self {
        Defaults {
            misfire_grace_time: Some(Duration::from_secs(1)),
            coalesce: true,
            max_instances: 1,
            recover: false,
            timeout: None,
            kill_grace: None,
            user: None,
            group: None,
            shell: None,
            dst: None,
            mailto: None,
            mail_when: MailWhen::Output,
            calendars: Calendars::new(),
            calendar: None,
            calendar_action: apscheduler_triggers::CalendarAction::Skip,
            policy: apscheduler_core::RunPolicy::default(),
        }
    }
}

/// History settings from `[history]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HistorySettings {
    pub(crate) enabled: bool,
    pub(crate) retention: Retention,
    pub(crate) output_cap: usize,
}

/// A checked configuration.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) path: PathBuf,
    pub(crate) timezone: Tz,
    pub(crate) node: Option<String>,
    pub(crate) store_url: String,
    /// `[store] connect_timeout`: how long the first connection to the store may
    /// take (`None`: the store's default, 5 s; 3 s for Redis).
    pub(crate) store_connect_timeout: Option<Duration>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) kill_grace: Duration,
    /// `None`: not set (a watched SQLite file needs no polling; other stores poll
    /// every second).
    pub(crate) poll_interval: Option<Duration>,
    /// How often the daemon heartbeats in the node registry.
    pub(crate) heartbeat: Duration,
    /// How long a silent node lives on in the registry before it is taken for dead.
    pub(crate) node_timeout: Duration,
    /// `max_instances` held across the daemons sharing the store (`[scheduler]
    /// cluster_max_instances`, default true; without leased runs only).
    pub(crate) cluster_max_instances: bool,
    /// Each run's start written, awaited, before it starts (`[scheduler]
    /// record_starts`, default true): a daemon's fire times it never started run
    /// elsewhere when it dies (without leased runs only).
    pub(crate) record_starts: bool,
    /// Every run kept in the store as a row leased to one daemon (`[scheduler]
    /// leased_runs`, default true; `EngineBuilder::leased_runs`).
    pub(crate) leased_runs: bool,
    /// Settings that load but have no effect, each naming where it is set and what
    /// replaced it: `aps run` logs them, `aps config check` prints them.
    pub(crate) warnings: Vec<String>,
    pub(crate) history: HistorySettings,
    pub(crate) defaults: Defaults,
    pub(crate) jobs: Vec<JobDef>,
    /// `[http]`: the management plane, when configured.
    pub(crate) http: Option<crate::daemon::http::HttpSettings>,
    /// `[notifications]`: webhooks on failed, timed-out and missed runs.
    pub(crate) notifications: crate::daemon::http::NotificationSettings,
    /// `[mail]`: how runs' output is mailed to their `mailto`.
    pub(crate) mail: MailSettings,
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// The key whose value starts at byte `offset` (`stdin` in `stdin = 5`, `url` in
/// `http = { url = 5 }`), when the text just before it is `KEY =`.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let before = text.get(..offset)?.trim_end().strip_suffix('=')?.trim_end();
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map_or(0, |i| i + 1);
    Some(&before[start..]).filter(|k| !k.is_empty())
}

/// Reads and checks the config file at `path`.
pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read the config: {e}", path.display())))?;
    parse(path, &text, true)
}

/// Reads the config's settings (store, timezone, defaults, history) without checking
/// its jobs: what the management commands need, so that they work while the jobs in
/// the file are being fixed.
pub(crate) fn load_settings(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read the config: {e}", path.display())))?;
    parse(path, &text, false)
}

/// Checks config `text` read from `path` (relative store paths resolve beside it);
/// its jobs too when `with_jobs`.
pub(crate) fn parse(path: &Path, text: &str, with_jobs: bool) -> Result<Config, ConfigError> {
    if with_jobs {
        parse_as::<Vec<Spanned<RawJob>>>(path, text)
    } else {
        parse_as::<IgnoredAny>(path, text)
    }
}

/// The `[[jobs]]` tables a [`RawConfig`] holds.
trait JobTables {
    fn tables(&self) -> &[Spanned<RawJob>];
}

impl JobTables for Vec<Spanned<RawJob>> {
    fn tables(&self) -> &[Spanned<RawJob>] {
        self
    }
}

impl JobTables for IgnoredAny {
    fn tables(&self) -> &[Spanned<RawJob>] {
        &[]
    }
}

fn parse_as<J>(path: &Path, text: &str) -> Result<Config, ConfigError>
where
    J: JobTables + Default + serde::de::DeserializeOwned,
{
    let file = path.display().to_string();
    let raw: RawConfig<J> = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let (l, c) = line_col(text, s.start);
                format!(":{l}:{c}")
            })
            .unwrap_or_default();
        // A value of the wrong type ("invalid type: integer `5`, expected a string")
        // is named by its key, which the parser's message leaves out.
        let key = e
            .span()
            .and_then(|s| key_before(text, s.start))
            .filter(|k| !e.message().contains(k))
            .map(|k| format!("{k}: "))
            .unwrap_or_default();
        ConfigError(format!("{file}{at}: {key}{}", e.message()))
    })?;
    let at = |span: std::ops::Range<usize>| {
        let (l, c) = line_col(text, span.start);
        format!("{file}:{l}:{c}")
    };
    let duration =
        |v: &Option<Spanned<DurationText>>, field: &str| -> Result<Option<Duration>, ConfigError> {
            v.as_ref()
                .map(|d| {
                    d.get_ref()
                        .parse()
                        .map_err(|e| ConfigError(format!("{}: {field}: {e}", at(d.span()))))
                })
                .transpose()
        };

    let timezone = match &raw.scheduler.timezone {
        Some(tz) => apscheduler_core::time::parse_timezone("timezone", tz.get_ref())
            .map_err(|e| ConfigError(format!("{}: scheduler.timezone: {e}", at(tz.span()))))?,
        None => apscheduler_engine::local_timezone(),
    };
    let store_url = match &raw.store.url {
        Some(u) => {
            check_store_url(u.get_ref())
                .map_err(|e| ConfigError(format!("{}: store.url: {e}", at(u.span()))))?;
            beside(path, u.get_ref())
        }
        None => default_store_url(path),
    };
    let calendars =
        calendars::build(&raw.calendars, &config_dir(path), timezone, &at).map_err(ConfigError)?;
    if let Some(name) = &raw.job_defaults.calendar {
        let n = name.get_ref().trim();
        if !n.is_empty() && !calendars.contains_key(n) {
            return Err(ConfigError(format!(
                "{}: job_defaults.calendar: unknown calendar '{n}' (defined: {})",
                at(name.span()),
                calendars::known(&calendars)
            )));
        }
    }
    let calendar_action = match &raw.job_defaults.calendar_action {
        Some(a) => a
            .get_ref()
            .parse::<apscheduler_triggers::CalendarAction>()
            .map_err(|e| {
                ConfigError(format!(
                    "{}: job_defaults.calendar_action: {e}",
                    at(a.span())
                ))
            })?,
        None => apscheduler_triggers::CalendarAction::Skip,
    };
    let store_connect_timeout = match duration(&raw.store.connect_timeout, "store.connect_timeout")?
    {
        Some(t) if t.is_zero() => {
            let span = raw
                .store
                .connect_timeout
                .as_ref()
                .expect("just read")
                .span();
            return Err(ConfigError(format!(
                "{}: store.connect_timeout: must be more than 0 (e.g. \"5s\")",
                at(span)
            )));
        }
        t => t,
    };
    let defaults = {
        let d = Defaults::default();
        Defaults {
            misfire_grace_time: match &raw.job_defaults.misfire_grace_time {
                Some(d) if d.get_ref().is_none() => None,
                Some(_) => duration(
                    &raw.job_defaults.misfire_grace_time,
                    "job_defaults.misfire_grace_time",
                )?,
                None => d.misfire_grace_time,
            },
            coalesce: raw.job_defaults.coalesce.unwrap_or(d.coalesce),
            max_instances: raw
                .job_defaults
                .max_instances
                .unwrap_or(d.max_instances)
                .max(1),
            recover: raw.job_defaults.recover.map_or(d.recover, |r| r.0),
            timeout: duration(&raw.job_defaults.timeout, "job_defaults.timeout")?,
            kill_grace: duration(&raw.job_defaults.kill_grace, "job_defaults.kill_grace")?,
            user: raw.job_defaults.user.as_ref().map(|u| u.get_ref().clone()),
            group: raw.job_defaults.group.as_ref().map(|g| g.get_ref().clone()),
            shell: raw.job_defaults.shell.as_ref().map(|s| s.get_ref().clone()),
            // `[job_defaults]` before `[scheduler]`; "default" sets nothing.
            dst: (raw
                .job_defaults
                .dst
                .as_ref()
                .map(|v| (v, "job_defaults.dst")))
            .or(raw.scheduler.dst.as_ref().map(|v| (v, "scheduler.dst")))
            .map(|(v, field)| {
                Dst::parse(v.get_ref())
                    .map_err(|e| ConfigError(format!("{}: {field}: {e}", at(v.span()))))
            })
            .transpose()?
            .filter(|d| *d != Dst::Default),
            mailto: raw
                .job_defaults
                .mailto
                .as_ref()
                .map(|m| {
                    crate::daemon::mail::parse_mailto(m.get_ref()).map_err(|e| {
                        ConfigError(format!("{}: job_defaults.mailto: {e}", at(m.span())))
                    })
                })
                .transpose()?,
            mail_when: match &raw.job_defaults.mail_when {
                Some(w) => MailWhen::parse(w.get_ref()).map_err(|e| {
                    ConfigError(format!("{}: job_defaults.mail_when: {e}", at(w.span())))
                })?,
                None => d.mail_when,
            },
            calendars,
            calendar: raw
                .job_defaults
                .calendar
                .as_ref()
                .map(|c| c.get_ref().trim().to_owned())
                .filter(|c| !c.is_empty()),
            calendar_action,
            policy: default_policy(&raw.job_defaults, &at)?,
        }
    };
    // Checked here too (each job's check names the job): a bad default is reported
    // where it is written, even in a file without jobs.
    for (value, field) in [
        (&raw.job_defaults.user, "job_defaults.user"),
        (&raw.job_defaults.group, "job_defaults.group"),
        (&raw.job_defaults.shell, "job_defaults.shell"),
    ] {
        if let Some(v) = value {
            let checked = match field {
                "job_defaults.user" => crate::daemon::run_as::find_user(v.get_ref()).map(drop),
                "job_defaults.group" => crate::daemon::run_as::find_group(v.get_ref()).map(drop),
                _ => crate::daemon::run_as::check_shell(v.get_ref()),
            };
            checked.map_err(|e| ConfigError(format!("{}: {field}: {e}", at(v.span()))))?;
        }
    }
    let history = HistorySettings {
        enabled: raw.history.enabled.unwrap_or(true),
        retention: Retention {
            max_runs_per_job: Some(raw.history.max_runs_per_job.unwrap_or(100)),
            max_age: duration(&raw.history.max_age, "history.max_age")?,
        },
        output_cap: raw.history.output_cap.unwrap_or(4096),
    };
    let mut jobs = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (i, job) in raw.jobs.tables().iter().enumerate() {
        let where_ = at(job.span());
        let def = check_job(job.get_ref(), timezone, &defaults, Origin::Config)
            .map_err(|e| ConfigError(format!("{where_}: jobs[{i}]{e}")))?;
        if !seen.insert(def.id.clone()) {
            return Err(ConfigError(format!(
                "{where_}: jobs[{i}] (id '{}'): duplicate job id '{}' (ids must be unique)",
                def.id, def.id
            )));
        }
        jobs.push(def);
    }
    let heartbeat = duration(&raw.scheduler.heartbeat, "scheduler.heartbeat")?
        .unwrap_or(Duration::from_secs(1));
    let node_timeout = duration(&raw.scheduler.node_timeout, "scheduler.node_timeout")?
        .unwrap_or(Duration::from_secs(10));
    if heartbeat.is_zero() || node_timeout <= heartbeat {
        let (field, span) = match (&raw.scheduler.heartbeat, &raw.scheduler.node_timeout) {
            (Some(h), _) if heartbeat.is_zero() => ("scheduler.heartbeat", h.span()),
            (_, Some(t)) => ("scheduler.node_timeout", t.span()),
            (Some(h), None) => ("scheduler.heartbeat", h.span()),
            (None, None) => unreachable!("the defaults are consistent"),
        };
        return Err(ConfigError(format!(
            "{}: {field}: the node time-out ({}) must be longer than the heartbeat ({}), which must not be 0",
            at(span),
            humantime::format_duration(node_timeout),
            humantime::format_duration(heartbeat)
        )));
    }
    let leased_runs = raw.scheduler.leased_runs.unwrap_or(true);
    let mut warnings = Vec::new();
    if leased_runs {
        let replaced = [
            (
                "record_starts",
                &raw.scheduler.record_starts,
                "every run is a row the store starts at most once, and the runs a stopped \
                 daemon never started are taken over once their lease runs out",
            ),
            (
                "cluster_max_instances",
                &raw.scheduler.cluster_max_instances,
                "the store counts the started runs of every daemon toward max_instances",
            ),
        ];
        for (key, value, instead) in replaced {
            if let Some(value) = value {
                warnings.push(format!(
                    "{}: scheduler.{key}: has no effect with leased runs (on unless \
                     `leased_runs = false`): {instead}; remove it, or set leased_runs = false \
                     to keep runs as history records",
                    at(value.span())
                ));
            }
        }
    }
    let http = raw
        .http
        .as_ref()
        .map(|h| crate::daemon::http::check_http(h.get_ref(), &at(h.span())).map_err(ConfigError))
        .transpose()?;
    let notifications =
        crate::daemon::http::check_notifications(&raw.notifications, &file).map_err(ConfigError)?;
    let mail = match &raw.mail {
        Some(m) => {
            crate::daemon::mail::check_mail(m.get_ref(), &at(m.span())).map_err(ConfigError)?
        }
        None => MailSettings::default(),
    };
    Ok(Config {
        mail,
        http,
        notifications,
        path: path.to_owned(),
        timezone,
        node: raw.scheduler.node.clone(),
        store_url,
        store_connect_timeout,
        shutdown_grace: duration(&raw.scheduler.shutdown_grace, "scheduler.shutdown_grace")?
            .unwrap_or(Duration::from_secs(30)),
        kill_grace: duration(&raw.scheduler.kill_grace, "scheduler.kill_grace")?
            .unwrap_or(Duration::from_secs(5)),
        poll_interval: duration(&raw.scheduler.poll_interval, "scheduler.poll_interval")?
            .map(|d| d.max(Duration::from_millis(10))),
        heartbeat,
        node_timeout,
        cluster_max_instances: raw
            .scheduler
            .cluster_max_instances
            .as_ref()
            .is_none_or(|v| *v.get_ref()),
        record_starts: raw
            .scheduler
            .record_starts
            .as_ref()
            .is_none_or(|v| *v.get_ref()),
        leased_runs,
        warnings,
        history,
        defaults,
        jobs,
    })
}

/// A SQLite URL with a relative path made absolute beside the config; other URLs as
/// they are.
fn beside(config: &Path, url: &str) -> String {
    match super::store::sqlite_path(url) {
        Some(file) if Path::new(&file).is_relative() => {
            let query = url
                .split_once('?')
                .map(|(_, q)| format!("?{q}"))
                .unwrap_or_default();
            format!("sqlite:{}{query}", config_dir(config).join(file).display())
        }
        _ => url.to_owned(),
    }
}

fn config_dir(config: &Path) -> PathBuf {
    let dir = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned())
}

/// The default store: the SQLite file `aps.db` beside the config.
pub(crate) fn default_store_url(config: &Path) -> String {
    format!("sqlite:{}", config_dir(config).join("aps.db").display())
}

/// Checks that the URL's scheme names a store this build links: one of the schemes the
/// store crates register (`ComponentRegistry::url_opener`).
pub(crate) fn check_store_url(url: &str) -> Result<(), String> {
    apscheduler_core::component::ComponentRegistry::global()
        .url_opener(url)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `[job_defaults]`'s run policy; an error names the key and where it is written.
fn default_policy(
    d: &raw::RawDefaults,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<apscheduler_core::RunPolicy, ConfigError> {
    let raw = policy::RawPolicy {
        retry: d.retry.as_ref().map(|r| r.get_ref()),
        overlap: d.overlap.as_ref().map(|o| o.get_ref().as_str()),
        catchup: d.catchup.as_ref().map(|c| c.get_ref()),
        pause_after_failures: d.pause_after_failures.as_ref().map(|n| *n.get_ref()),
        notify_after_failures: d.notify_after_failures.as_ref().map(|n| *n.get_ref()),
    };
    policy::check_policy(raw, &apscheduler_core::RunPolicy::default()).map_err(|(field, msg)| {
        let span = match field.split('.').next().unwrap_or("") {
            "retry" => d.retry.as_ref().map(|r| r.span()),
            "overlap" => d.overlap.as_ref().map(|o| o.span()),
            "catchup" => d.catchup.as_ref().map(|c| c.span()),
            "pause_after_failures" => d.pause_after_failures.as_ref().map(|n| n.span()),
            "notify_after_failures" => d.notify_after_failures.as_ref().map(|n| n.span()),
            _ => None,
        };
        let place = span.map(|s| format!("{}: ", at(s))).unwrap_or_default();
        ConfigError(format!("{place}job_defaults.{field}: {msg}"))
    })
}

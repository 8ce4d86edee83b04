//! The daemon's TOML configuration: reading it, checking every field, and the
//! normalised job definitions the daemon stores.
//!
//! Every error names the file, the line and column where the TOML parser gives them,
//! the job id and the field, and the value.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use apscheduler_core::Retention;
use apscheduler_triggers::AnyTrigger;
use chrono::Utc;
use chrono_tz::Tz;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use toml::Spanned;

/// A config that cannot be used, with where and why.
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A duration as the config writes it: seconds (`90`, `1.5`) or text (`"90s"`,
/// `"1h30m"`); for `misfire_grace_time` also `"none"` (run however late).
#[derive(Debug, Clone)]
pub(crate) enum DurationText {
    Seconds(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration: seconds (90) or text (\"90s\", \"2h\", \"1h30m\")")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationText, E> {
                Ok(DurationText::Seconds(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationText, E> {
                Ok(DurationText::Seconds(v as f64))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DurationText, E> {
                Ok(DurationText::Seconds(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText::Text(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A `recover` value: a boolean, refused with a message naming the option and the
/// value (TOML's own says only "expected a boolean").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecoverFlag(pub(crate) bool);

impl<'de> Deserialize<'de> for RecoverFlag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::Boolean(b) => Ok(RecoverFlag(b)),
            other => Err(serde::de::Error::custom(format!(
                "invalid value for 'recover': {other}: expected true or false"
            ))),
        }
    }
}

impl DurationText {
    pub(crate) fn parse(&self) -> Result<Duration, String> {
        match self {
            DurationText::Seconds(s) if s.is_finite() && *s >= 0.0 && *s < 1e12 => {
                Ok(Duration::from_secs_f64(*s))
            }
            DurationText::Seconds(s) => Err(format!("invalid duration {s} (seconds, 0 or more)")),
            DurationText::Text(t) => match t.trim().parse::<f64>() {
                Ok(s) => DurationText::Seconds(s).parse(),
                Err(_) => humantime::parse_duration(t.trim()).map_err(|e| {
                    format!("invalid duration '{t}' ({e}; write seconds or e.g. \"90s\", \"2h\", \"1h30m\")")
                }),
            },
        }
    }

    /// Whether this is `"none"`: no limit.
    fn is_none(&self) -> bool {
        matches!(self, DurationText::Text(t) if t.trim().eq_ignore_ascii_case("none"))
    }
}

/// `[scheduler]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    timezone: Option<Spanned<String>>,
    node: Option<String>,
    shutdown_grace: Option<Spanned<DurationText>>,
    kill_grace: Option<Spanned<DurationText>>,
    poll_interval: Option<Spanned<DurationText>>,
    heartbeat: Option<Spanned<DurationText>>,
    node_timeout: Option<Spanned<DurationText>>,
    cluster_max_instances: Option<bool>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<Spanned<String>>,
}

/// `[history]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    enabled: Option<bool>,
    max_runs_per_job: Option<usize>,
    max_age: Option<Spanned<DurationText>>,
    output_cap: Option<usize>,
}

/// `[job_defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    misfire_grace_time: Option<Spanned<DurationText>>,
    coalesce: Option<bool>,
    max_instances: Option<u32>,
    recover: Option<RecoverFlag>,
    timeout: Option<Spanned<DurationText>>,
}

/// The whole file; its `[[jobs]]` as `J`: the tables, or [`IgnoredAny`] where only the
/// settings are read (parsing 10,000 job tables was most of `aps history --config`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig<J = Vec<Spanned<RawJob>>> {
    #[serde(default)]
    scheduler: RawScheduler,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    history: RawHistory,
    #[serde(default)]
    job_defaults: RawDefaults,
    #[serde(default)]
    jobs: J,
    http: Option<Spanned<super::http::RawHttpServer>>,
    #[serde(default)]
    notifications: super::http::RawNotifications,
}

/// One `[[jobs]]` table (also what `aps jobs add` builds from its options, and the
/// body of `POST /api/jobs`; its schema is in the API's OpenAPI document).
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJob {
    /// The job's id.
    pub(crate) id: Option<String>,
    /// Its name (default: the id).
    pub(crate) name: Option<String>,
    /// Shell command, run by `/bin/sh -c` in its own process group.
    pub(crate) command: Option<String>,
    /// Working directory of the command.
    pub(crate) cwd: Option<String>,
    /// Environment variables of the command.
    pub(crate) env: Option<BTreeMap<String, String>>,
    /// Time-out: seconds, or text such as "90s", "1h30m".
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) timeout: Option<DurationText>,
    /// An HTTP request instead of a command.
    #[schema(inline)]
    pub(crate) http: Option<RawHttp>,
    /// Crontab text ("*/5 * * * *", "@daily").
    pub(crate) cron: Option<String>,
    /// Interval: seconds, or text such as "90s", "2h".
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) interval: Option<DurationText>,
    /// One run at this date ("2026-12-01 09:00:00").
    pub(crate) date: Option<String>,
    /// A trigger with APScheduler's arguments: { "type": "cron", "day": "last sun", "hour": 3 }.
    #[schema(value_type = Option<Object>)]
    pub(crate) trigger: Option<toml::Table>,
    /// The trigger's timezone (IANA name).
    pub(crate) timezone: Option<String>,
    /// Random delay added to each fire time: seconds or text.
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) jitter: Option<DurationText>,
    /// First possible fire time.
    pub(crate) start_date: Option<String>,
    /// Last possible fire time.
    pub(crate) end_date: Option<String>,
    /// How late a run may start: seconds, text, or "none" (however late).
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) misfire_grace_time: Option<DurationText>,
    /// Collapse overdue runs into one.
    pub(crate) coalesce: Option<bool>,
    /// Runs of this job allowed at once.
    pub(crate) max_instances: Option<u32>,
    /// Run again a run its daemon's death interrupted.
    #[schema(value_type = Option<bool>)]
    pub(crate) recover: Option<RecoverFlag>,
}

/// `http = { method, url, headers, body, expect_status }`.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    /// The method (default GET).
    pub(crate) method: Option<String>,
    /// The URL (http:// or https://).
    pub(crate) url: Option<String>,
    /// Request headers.
    pub(crate) headers: Option<BTreeMap<String, String>>,
    /// The request body.
    pub(crate) body: Option<String>,
    /// Accepted statuses: one or a list (default: any 2xx).
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) expect_status: Option<ExpectStatus>,
}

/// One status or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum ExpectStatus {
    One(u16),
    Many(Vec<u16>),
}

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    /// `/bin/sh -c command`, in its own process group.
    Command {
        command: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        /// Seconds; on expiry the process group gets SIGTERM, then SIGKILL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<f64>,
    },
    /// An HTTP request.
    Http {
        method: String,
        url: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        /// Accepted statuses; empty = any 2xx.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        expect_status: Vec<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<f64>,
    },
}

impl Action {
    /// The task name the job is stored under.
    pub(crate) fn task_name(&self) -> &'static str {
        match self {
            Action::Command { .. } => COMMAND_TASK,
            Action::Http { .. } => HTTP_TASK,
        }
    }

    /// A one-line summary (`sh: echo hi`, `GET https://...`).
    pub(crate) fn summary(&self) -> String {
        match self {
            Action::Command { command, .. } => format!("sh: {command}"),
            Action::Http { method, url, .. } => format!("{method} {url}"),
        }
    }
}

/// The registered task that runs command jobs.
pub(crate) const COMMAND_TASK: &str = "aps.command";
/// The registered task that runs HTTP jobs.
pub(crate) const HTTP_TASK: &str = "aps.http";

/// Where a stored job came from: the config file (replaced or removed when the file
/// changes) or the CLI (kept until removed by hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Origin {
    Config,
    Cli,
    /// Added through the HTTP API (`POST /api/jobs`): kept until removed, like `Cli`.
    Api,
}

/// A checked job: what the daemon stores (in the job's kwargs) and compares on reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobDef {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) action: Action,
    /// The trigger kind for `AnyTrigger::from_args` and its arguments.
    pub(crate) trigger_kind: String,
    pub(crate) trigger_args: Value,
    /// How the config wrote the trigger (`cron = "*/5 * * * *"`), for listings.
    pub(crate) trigger_text: String,
    /// Seconds; `None` = run however late.
    pub(crate) misfire_grace_time: Option<f64>,
    pub(crate) coalesce: bool,
    pub(crate) max_instances: u32,
    /// Run again a run its daemon's death interrupted. Left out when `false`, so the
    /// definitions stored before the option existed compare equal to today's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) recover: bool,
    pub(crate) origin: Origin,
}

impl JobDef {
    /// The trigger, built now (checks every trigger field).
    pub(crate) fn build_trigger(&self, tz: Tz) -> Result<AnyTrigger, String> {
        let now = Utc::now().with_timezone(&tz);
        AnyTrigger::from_args(&self.trigger_kind, &self.trigger_args, tz, now)
            .map_err(|e| e.to_string())
    }

    /// The kwargs a stored job carries: this definition.
    pub(crate) fn to_kwargs(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut m)) => {
                let mut kw = Map::new();
                kw.insert("aps".into(), Value::Object(std::mem::take(&mut m)));
                kw
            }
            _ => unreachable!("a JobDef serializes to an object"),
        }
    }

    /// The definition a stored job carries, if it is a daemon job.
    pub(crate) fn from_kwargs(kwargs: &Map<String, Value>) -> Option<JobDef> {
        // Read in place (`&Value` is a deserializer): no copy of the definition first.
        JobDef::deserialize(kwargs.get("aps")?).ok()
    }
}

/// Job defaults from `[job_defaults]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    pub(crate) misfire_grace_time: Option<Duration>,
    pub(crate) coalesce: bool,
    pub(crate) max_instances: u32,
    pub(crate) recover: bool,
    pub(crate) timeout: Option<Duration>,
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
    /// cluster_max_instances`, default true).
    pub(crate) cluster_max_instances: bool,
    pub(crate) history: HistorySettings,
    pub(crate) defaults: Defaults,
    pub(crate) jobs: Vec<JobDef>,
    /// `[http]`: the management plane, when configured.
    pub(crate) http: Option<super::http::HttpSettings>,
    /// `[notifications]`: webhooks on failed, timed-out and missed runs.
    pub(crate) notifications: super::http::NotificationSettings,
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
        ConfigError(format!("{file}{at}: {}", e.message()))
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
        }
    };
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
    let http = raw
        .http
        .as_ref()
        .map(|h| super::http::check_http(h.get_ref(), &at(h.span())).map_err(ConfigError))
        .transpose()?;
    let notifications =
        super::http::check_notifications(&raw.notifications, &file).map_err(ConfigError)?;
    Ok(Config {
        http,
        notifications,
        path: path.to_owned(),
        timezone,
        node: raw.scheduler.node.clone(),
        store_url,
        shutdown_grace: duration(&raw.scheduler.shutdown_grace, "scheduler.shutdown_grace")?
            .unwrap_or(Duration::from_secs(30)),
        kill_grace: duration(&raw.scheduler.kill_grace, "scheduler.kill_grace")?
            .unwrap_or(Duration::from_secs(5)),
        poll_interval: duration(&raw.scheduler.poll_interval, "scheduler.poll_interval")?
            .map(|d| d.max(Duration::from_millis(10))),
        heartbeat,
        node_timeout,
        cluster_max_instances: raw.scheduler.cluster_max_instances.unwrap_or(true),
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

/// The URL schemes the daemon's stores take.
const SCHEMES: &[&str] = &[
    "sqlite",
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "redis",
    "rediss",
    "mongodb",
    "mongodb+srv",
    "zookeeper",
    "zk",
];

/// Checks that the URL's scheme names a store the daemon has.
pub(crate) fn check_store_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    if SCHEMES.contains(&scheme) {
        Ok(())
    } else {
        Err(format!(
            "unknown store URL scheme '{scheme}' in '{url}' (expected one of: {})",
            SCHEMES.join(", ")
        ))
    }
}

/// Checks one job table; errors start with ` (id 'x'): field: ...` (or `: ...` before
/// the id is known), for the caller to prefix with where the table is.
pub(crate) fn check_job(
    raw: &RawJob,
    tz: Tz,
    defaults: &Defaults,
    origin: Origin,
) -> Result<JobDef, String> {
    let id = match raw.id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => id.to_owned(),
        Some(_) => return Err(": id: must not be empty".into()),
        None => return Err(": id: missing (every job needs an id)".into()),
    };
    let ctx = format!(" (id '{id}')");
    let fail = |field: &str, msg: String| format!("{ctx}: {field}: {msg}");
    let secs = |v: &Option<DurationText>, field: &str| -> Result<Option<f64>, String> {
        v.as_ref()
            .map(|d| {
                d.parse()
                    .map(|d| d.as_secs_f64())
                    .map_err(|e| fail(field, e))
            })
            .transpose()
    };
    let timeout = secs(&raw.timeout, "timeout")?.or(defaults.timeout.map(|d| d.as_secs_f64()));
    if timeout == Some(0.0) {
        return Err(fail("timeout", "must be more than 0".into()));
    }
    let action = match (&raw.command, &raw.http) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{ctx}: two actions: give either `command` or `http`, not both"
            ))
        }
        (None, None) => {
            return Err(format!(
                "{ctx}: no action: give `command = \"...\"` or `http = {{ url = \"...\" }}`"
            ))
        }
        (Some(command), None) => {
            if command.trim().is_empty() {
                return Err(fail("command", "must not be empty".into()));
            }
            Action::Command {
                command: command.clone(),
                cwd: raw.cwd.clone(),
                env: raw.env.clone().unwrap_or_default(),
                timeout,
            }
        }
        (None, Some(http)) => {
            if raw.cwd.is_some() || raw.env.is_some() {
                return Err(fail("cwd/env", "apply to `command` jobs only".into()));
            }
            let url = http
                .url
                .clone()
                .ok_or_else(|| fail("http.url", "missing".into()))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(fail(
                    "http.url",
                    format!("'{url}' is not an http:// or https:// URL"),
                ));
            }
            let method = http
                .method
                .clone()
                .unwrap_or_else(|| "GET".into())
                .to_ascii_uppercase();
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(fail("http.method", format!("invalid method '{method}'")));
            }
            let expect_status = match &http.expect_status {
                None => Vec::new(),
                Some(ExpectStatus::One(s)) => vec![*s],
                Some(ExpectStatus::Many(v)) => v.clone(),
            };
            if let Some(bad) = expect_status.iter().find(|s| !(100..=599).contains(*s)) {
                return Err(fail(
                    "http.expect_status",
                    format!("{bad} is not an HTTP status (100-599)"),
                ));
            }
            Action::Http {
                method,
                url,
                headers: http.headers.clone().unwrap_or_default(),
                body: http.body.clone(),
                expect_status,
                timeout,
            }
        }
    };

    let forms = [
        raw.cron.is_some(),
        raw.interval.is_some(),
        raw.date.is_some(),
        raw.trigger.is_some(),
    ];
    let (kind, mut args, text) = match forms.iter().filter(|f| **f).count() {
        0 => {
            return Err(format!(
                "{ctx}: no trigger: give one of `cron`, `interval`, `date` or `trigger`"
            ))
        }
        1 => {
            if let Some(cron) = &raw.cron {
                let expr = match cron.trim() {
                    m if m.starts_with('@') => crate::import_crontab::expand_macro(m)
                        .ok_or_else(|| fail("cron", format!("unknown macro '{m}' (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)")))?
                        .to_owned(),
                    e => e.to_owned(),
                };
                (
                    "crontab".to_owned(),
                    json!({ "expr": expr }),
                    format!("cron \"{}\"", cron.trim()),
                )
            } else if let Some(every) = &raw.interval {
                let d = every.parse().map_err(|e| fail("interval", e))?;
                if d.is_zero() {
                    return Err(fail("interval", "must be more than 0".into()));
                }
                let s = d.as_secs_f64();
                (
                    "interval".to_owned(),
                    json!({ "seconds": s }),
                    format!("every {}", humantime::format_duration(d)),
                )
            } else if let Some(date) = &raw.date {
                (
                    "date".to_owned(),
                    json!({ "run_date": date }),
                    format!("once at {date}"),
                )
            } else {
                let table = raw.trigger.clone().unwrap_or_default();
                let mut args =
                    serde_json::to_value(&table).map_err(|e| fail("trigger", e.to_string()))?;
                let kind = args
                    .as_object_mut()
                    .and_then(|m| m.remove("type"))
                    .and_then(|t| t.as_str().map(str::to_owned))
                    .ok_or_else(|| {
                        fail(
                            "trigger.type",
                            "missing (cron, interval, date, calendarinterval, crontab)".into(),
                        )
                    })?;
                let text = format!(
                    "{kind} {}",
                    serde_json::to_string(&args).unwrap_or_default()
                );
                (kind, args, text)
            }
        }
        _ => {
            return Err(format!(
                "{ctx}: several triggers: give only one of `cron`, `interval`, `date` or `trigger`"
            ))
        }
    };
    let common = args.as_object_mut().expect("trigger args are an object");
    // Always explicit: a job follows a change of the scheduler's timezone as a change
    // of its definition.
    let zone = raw.timezone.as_deref().unwrap_or(tz.name());
    common.insert("timezone".into(), json!(zone));
    if let Some(j) = secs(&raw.jitter, "jitter")? {
        common.insert("jitter".into(), json!(j));
    }
    if let Some(s) = &raw.start_date {
        common.insert("start_date".into(), json!(s));
    }
    if let Some(e) = &raw.end_date {
        common.insert("end_date".into(), json!(e));
    }
    let def = JobDef {
        name: raw.name.clone().unwrap_or_else(|| id.clone()),
        id,
        action,
        trigger_kind: kind,
        trigger_args: args,
        trigger_text: text,
        misfire_grace_time: match &raw.misfire_grace_time {
            Some(d) if d.is_none() => None,
            Some(_) => secs(&raw.misfire_grace_time, "misfire_grace_time")?,
            None => defaults.misfire_grace_time.map(|d| d.as_secs_f64()),
        },
        coalesce: raw.coalesce.unwrap_or(defaults.coalesce),
        max_instances: raw.max_instances.unwrap_or(defaults.max_instances),
        recover: raw.recover.map_or(defaults.recover, |r| r.0),
        origin,
    };
    if def.max_instances == 0 {
        return Err(fail("max_instances", "must be 1 or more".into()));
    }
    def.build_trigger(tz)
        .map_err(|e| format!("{ctx}: trigger: {e}"))?;
    Ok(def)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, String> {
        parse(Path::new("/etc/aps/aps.toml"), text, true).map_err(|e| e.0)
    }

    #[test]
    fn recover_is_a_job_option_with_a_default() {
        let job = |extra: &str| {
            format!("[[jobs]]\nid = \"j\"\ncommand = \"true\"\ninterval = 5\n{extra}")
        };
        let recover = |text: &str| check(text).unwrap().jobs[0].recover;
        assert!(!recover(&job("")));
        assert!(recover(&job("recover = true\n")));
        assert!(recover(&format!(
            "[job_defaults]\nrecover = true\n{}",
            job("")
        )));
        assert!(!recover(&format!(
            "[job_defaults]\nrecover = true\n{}",
            job("recover = false\n")
        )));
        let err = check(&job("recover = \"yes\"\n")).unwrap_err();
        assert!(err.contains("'recover': \"yes\""), "{err}");
        let err = check("[job_defaults]\nrecover = 1\n").unwrap_err();
        assert!(err.contains("'recover': 1"), "{err}");
        // Stored definitions of ordinary jobs are unchanged (no reload sees a change).
        let def = &check(&job("")).unwrap().jobs[0];
        assert!(!def.to_kwargs()["aps"]
            .as_object()
            .unwrap()
            .contains_key("recover"));
    }

    #[test]
    fn heartbeat_and_node_timeout_are_read_and_checked() {
        let cfg = check("[scheduler]\nheartbeat = \"250ms\"\nnode_timeout = 3\n").unwrap();
        assert_eq!(
            (cfg.heartbeat, cfg.node_timeout),
            (Duration::from_millis(250), Duration::from_secs(3))
        );
        let cfg = check("").unwrap();
        assert_eq!(
            (cfg.heartbeat, cfg.node_timeout),
            (Duration::from_secs(1), Duration::from_secs(10))
        );
        let e = check("[scheduler]\nnode_timeout = \"1s\"\n").unwrap_err();
        assert!(
            e.contains("scheduler.node_timeout") && e.contains("(1s)") && e.contains("aps.toml:2:"),
            "{e}"
        );
        let e = check("[scheduler]\nheartbeat = 0\n").unwrap_err();
        assert!(
            e.contains("scheduler.heartbeat") && e.contains("must not be 0"),
            "{e}"
        );
    }

    #[test]
    fn each_trigger_form_and_duration_form_is_read() {
        let cfg = check(
            r#"
[scheduler]
timezone = "Europe/Helsinki"
[[jobs]]
id = "a"
command = "echo a"
cron = "*/5 * * * *"
timeout = "1h30m"
[[jobs]]
id = "b"
command = "echo b"
interval = 90
[[jobs]]
id = "c"
http = { url = "http://127.0.0.1:1/", expect_status = [200, 204] }
date = "2099-12-01 09:00:00"
[[jobs]]
id = "d"
command = "true"
trigger = { type = "cron", day = "last sun", hour = 3 }
jitter = "10s"
misfire_grace_time = "2m"
[[jobs]]
id = "e"
command = "true"
cron = "@daily"
"#,
        )
        .unwrap();
        let kinds: Vec<_> = cfg.jobs.iter().map(|j| j.trigger_kind.as_str()).collect();
        assert_eq!(kinds, ["crontab", "interval", "date", "cron", "crontab"]);
        assert_eq!(
            cfg.jobs[0].action,
            Action::Command {
                command: "echo a".into(),
                cwd: None,
                env: BTreeMap::new(),
                timeout: Some(5400.0)
            }
        );
        assert_eq!(
            cfg.jobs[1].trigger_args,
            json!({"seconds": 90.0, "timezone": "Europe/Helsinki"})
        );
        assert_eq!(cfg.jobs[3].misfire_grace_time, Some(120.0));
        assert_eq!(cfg.jobs[3].trigger_args["jitter"], json!(10.0));
        assert_eq!(cfg.jobs[4].trigger_args["expr"], json!("0 0 * * *"));
        assert!(
            cfg.store_url.ends_with("/etc/aps/aps.db"),
            "{}",
            cfg.store_url
        );
        assert_eq!(cfg.timezone, chrono_tz::Europe::Helsinki);
    }

    #[test]
    fn bad_configs_name_the_file_line_job_and_field() {
        let cases = [
            (
                "[[jobs]]\nid = \"x\"\ncommand = \"true\"\ncron = \"61 * * * *\"\n",
                &["/etc/aps/aps.toml:1:1", "id 'x'", "minute", "61"][..],
            ),
            ("[[jobs]]\nid = \"x\"\ncomand = \"true\"\n", &["/etc/aps/aps.toml:3:1", "comand"]),
            (
                "[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"* * * * *\"\n[[jobs]]\nid = \"x\"\ncommand = \"b\"\ncron = \"* * * * *\"\n",
                &[":5:1", "duplicate job id 'x'"],
            ),
            ("[[jobs]]\nid = \"x\"\ncommand = \"a\"\nhttp = { url = \"http://h/\" }\ncron = \"* * * * *\"\n", &["id 'x'", "two actions"]),
            ("[[jobs]]\nid = \"x\"\ncron = \"* * * * *\"\n", &["id 'x'", "no action"]),
            ("[store]\nurl = \"oracle://db\"\n", &[":2:7", "store.url", "'oracle'"]),
            ("[[jobs]]\nid = \"x\"\ncommand = \"a\"\ninterval = \"5 parsecs\"\n", &["id 'x'", "interval", "'5 parsecs'"]),
            ("[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"* * * * *\"\ninterval = 5\n", &["several triggers"]),
            ("[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"@reboot\"\n", &["cron", "'@reboot'"]),
            ("[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"* * * * *\"\ntimezone = \"Mars/Base\"\n", &["timezone", "Mars/Base"]),
            ("[scheduler]\nshutdown_grace = \"soon\"\n", &[":2:18", "scheduler.shutdown_grace", "'soon'"]),
        ];
        for (text, wanted) in cases {
            let err = check(text).expect_err(text);
            for w in wanted {
                assert!(err.contains(w), "{err:?} should contain {w:?}");
            }
        }
    }

    #[test]
    fn a_relative_sqlite_store_lies_beside_the_config_and_none_means_no_grace() {
        let cfg = check("[store]\nurl = \"sqlite:data/jobs.db?mode=rwc\"\n[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"* * * * *\"\nmisfire_grace_time = \"none\"\n").unwrap();
        assert_eq!(cfg.store_url, "sqlite:/etc/aps/data/jobs.db?mode=rwc");
        assert_eq!(cfg.jobs[0].misfire_grace_time, None);
        let cfg = check("[store]\nurl = \"sqlite:/var/aps.db\"\n").unwrap();
        assert_eq!(cfg.store_url, "sqlite:/var/aps.db");
        let err = check("[[jobs]]\nid = \"x\"\ncommand = \"a\"\ninterval = true\n").unwrap_err();
        assert!(err.contains("a duration: seconds"), "{err}");
    }

    #[test]
    fn a_definition_round_trips_through_kwargs() {
        let cfg = check(
            "[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"* * * * *\"\nenv = { A = \"1\" }\n",
        )
        .unwrap();
        let kw = cfg.jobs[0].to_kwargs();
        assert_eq!(JobDef::from_kwargs(&kw).unwrap(), cfg.jobs[0]);
    }
}

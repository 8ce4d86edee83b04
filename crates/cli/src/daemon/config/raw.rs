//! The config file as written: the TOML tables before any check, and the value forms
//! (durations, flags) that several tables share.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

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

/// An `at_start` value: a boolean, refused with a message naming the option and the
/// value, as [`RecoverFlag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AtStartFlag(pub(crate) bool);

impl<'de> Deserialize<'de> for AtStartFlag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::Boolean(b) => Ok(AtStartFlag(b)),
            other => Err(serde::de::Error::custom(format!(
                "invalid value for 'at_start': {other}: expected true or false"
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
    pub(super) fn is_none(&self) -> bool {
        matches!(self, DurationText::Text(t) if t.trim().eq_ignore_ascii_case("none"))
    }
}

/// `[scheduler]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScheduler {
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) node: Option<String>,
    pub(super) shutdown_grace: Option<Spanned<DurationText>>,
    pub(super) kill_grace: Option<Spanned<DurationText>>,
    pub(super) poll_interval: Option<Spanned<DurationText>>,
    pub(super) heartbeat: Option<Spanned<DurationText>>,
    pub(super) node_timeout: Option<Spanned<DurationText>>,
    pub(super) cluster_max_instances: Option<Spanned<bool>>,
    pub(super) record_starts: Option<Spanned<bool>>,
    pub(super) leased_runs: Option<bool>,
    /// The DST rule of every job's cron trigger: `"cron"` or `"default"`.
    pub(super) dst: Option<Spanned<String>>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) url: Option<Spanned<String>>,
    /// How long connecting to the store at start may take.
    pub(super) connect_timeout: Option<Spanned<DurationText>>,
}

/// `[history]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHistory {
    pub(super) enabled: Option<bool>,
    pub(super) max_runs_per_job: Option<usize>,
    pub(super) max_age: Option<Spanned<DurationText>>,
    pub(super) output_cap: Option<usize>,
}

/// `[job_defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) misfire_grace_time: Option<Spanned<DurationText>>,
    pub(super) coalesce: Option<bool>,
    pub(super) max_instances: Option<u32>,
    pub(super) recover: Option<RecoverFlag>,
    pub(super) timeout: Option<Spanned<DurationText>>,
    pub(super) user: Option<Spanned<String>>,
    pub(super) group: Option<Spanned<String>>,
    pub(super) shell: Option<Spanned<String>>,
    pub(super) dst: Option<Spanned<String>>,
    pub(super) mailto: Option<Spanned<String>>,
    pub(super) mail_when: Option<Spanned<String>>,
    pub(super) calendar: Option<Spanned<String>>,
    pub(super) calendar_action: Option<Spanned<String>>,
    pub(super) retry: Option<Spanned<super::policy::RawRetry>>,
    pub(super) overlap: Option<Spanned<String>>,
    pub(super) catchup: Option<Spanned<super::policy::RawCatchup>>,
    pub(super) pause_after_failures: Option<Spanned<i64>>,
    pub(super) notify_after_failures: Option<Spanned<i64>>,
    pub(super) kill_grace: Option<Spanned<DurationText>>,
}

/// The whole file; its `[[jobs]]` as `J`: the tables, or [`IgnoredAny`](serde::de::IgnoredAny) where only the
/// settings are read (parsing 10,000 job tables was most of `aps history --config`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig<J = Vec<Spanned<RawJob>>> {
    #[serde(default)]
    pub(super) scheduler: RawScheduler,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) history: RawHistory,
    #[serde(default)]
    pub(super) job_defaults: RawDefaults,
    #[serde(default)]
    pub(super) jobs: J,
    pub(super) http: Option<Spanned<crate::daemon::http::RawHttpServer>>,
    #[serde(default)]
    pub(super) notifications: crate::daemon::http::RawNotifications,
    pub(super) mail: Option<Spanned<crate::daemon::mail::RawMail>>,
    #[serde(default)]
    pub(super) calendars: BTreeMap<String, Spanned<super::calendars::RawCalendar>>,
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
    /// Run the command as this user (the daemon must run as root), with the user's
    /// supplementary groups and `HOME`, `LOGNAME`, `USER`, `SHELL` set as cron sets them.
    pub(crate) user: Option<String>,
    /// The command's group (default: the user's primary group); needs `user`.
    pub(crate) group: Option<String>,
    /// The shell that runs the command as `SHELL -c command` (default `/bin/sh`).
    pub(crate) shell: Option<String>,
    /// Text written to the command's standard input, which is then closed.
    pub(crate) stdin: Option<String>,
    /// Run once when the daemon starts (not on reload); such a job may have no trigger.
    #[schema(value_type = Option<bool>)]
    pub(crate) at_start: Option<AtStartFlag>,
    /// The DST rule of a cron trigger: "cron" (cronie's) or "default".
    pub(crate) dst: Option<String>,
    /// Who gets the runs' output by mail: comma-separated addresses; "" turns mail
    /// off (default: `[job_defaults] mailto`, else no mail).
    pub(crate) mailto: Option<String>,
    /// Which runs are mailed: "output" (those that wrote output, as cron; default) or
    /// "failure" (only those that did not succeed).
    pub(crate) mail_when: Option<String>,
    /// The exclusion calendar (a `[calendars.NAME]` of the daemon's config) whose
    /// excluded fire times do not run; "" for none (default: `[job_defaults] calendar`).
    pub(crate) calendar: Option<String>,
    /// What an excluded fire time becomes: "skip" (recorded missed; default) or
    /// "next_allowed" (runs at the first instant the calendar allows).
    pub(crate) calendar_action: Option<String>,
    /// Retries of a failed fire time: { attempts = 5, delay = "10s", backoff = 2.0,
    /// max_delay = "10m", jitter = true, on = ["failure", "timeout"] }.
    pub(crate) retry: Option<super::policy::RawRetry>,
    /// What a fire time does while a run of the job is in flight: "skip" (default),
    /// "buffer_one", "buffer_all", "cancel_other", "terminate_other" or "allow_all".
    pub(crate) overlap: Option<String>,
    /// How far back fire times missed during downtime still run:
    /// { window = "3h", mode = "all" | "latest" | "none" }.
    pub(crate) catchup: Option<super::policy::RawCatchup>,
    /// Pause the job after this many consecutive failed fire times (0: never).
    pub(crate) pause_after_failures: Option<i64>,
    /// Notify (through `[notifications]`) after this many consecutive failed fire
    /// times, and again at the next success (0: never).
    pub(crate) notify_after_failures: Option<i64>,
    /// Between SIGTERM and SIGKILL of the command's process group (time-out, or
    /// `cancel_other`); default: `[job_defaults] kill_grace`, else
    /// `[scheduler] kill_grace`.
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) kill_grace: Option<DurationText>,
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

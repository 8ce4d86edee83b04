//! Jobs as the daemon stores them: what a job runs ([`Action`]), its checked
//! definition ([`JobDef`]), and [`check_job`], which turns a `[[jobs]]` table into one.

use std::collections::BTreeMap;

use apscheduler_triggers::{AnyTrigger, CalendarAction, ExcludingTrigger, NamedCalendar};
use chrono::Utc;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::raw::{DurationText, ExpectStatus, RawJob};
use super::Defaults;
use crate::daemon::mail::{parse_mailto, MailWhen};
use crate::daemon::run_as::DEFAULT_SHELL;

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    /// `SHELL -c command` (`/bin/sh` by default), in its own process group.
    Command {
        command: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        /// Seconds; on expiry the process group gets SIGTERM, then SIGKILL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<f64>,
        /// Seconds between SIGTERM and SIGKILL (`None`: `[scheduler] kill_grace`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kill_grace: Option<f64>,
        /// The user it runs as (`None`: the daemon's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// Its group (`None`: the user's primary group).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// The shell (`None`: `/bin/sh`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shell: Option<String>,
        /// Written to its standard input (`None`: standard input is `/dev/null`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stdin: Option<String>,
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
            Action::Command { command, shell, .. } => {
                let shell = shell.as_deref().unwrap_or(DEFAULT_SHELL);
                let name = shell.rsplit('/').next().unwrap_or(shell);
                format!("{name}: {command}")
            }
            Action::Http { method, url, .. } => format!("{method} {url}"),
        }
    }
}

/// The trigger text of a job that runs only when the daemon starts (`at_start = true`
/// and no trigger). Such a job is stored paused, with a one-off trigger in the past
/// that never fires.
pub(crate) const AT_START_ONLY: &str = "at start";

/// The stored trigger of a job that runs only at start: a date long past.
const NEVER: &str = "1970-01-01T00:00:00+00:00";

/// The DST rule of a cron trigger (`dst`), passed to the trigger as its `dst`
/// argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dst {
    /// The trigger's own rule (the argument is left out).
    Default,
    /// cronie's rule (`"dst": "cron"`).
    Cron,
}

impl Dst {
    /// Reads `"cron"` or `"default"`.
    pub(crate) fn parse(text: &str) -> Result<Dst, String> {
        match text {
            "cron" => Ok(Dst::Cron),
            "default" => Ok(Dst::Default),
            other => Err(format!(
                "invalid value '{other}': expected \"cron\" (cronie's DST rule) or \"default\""
            )),
        }
    }
}

/// The trigger kinds that take a `dst` argument.
const DST_KINDS: &[&str] = &["cron", "crontab"];

/// Adds `"dst": "cron"` to the arguments of a cron trigger when the job's `dst` (else
/// the default) asks for cronie's rule; nothing otherwise, so that definitions stored
/// before the option existed compare equal. A job's own `dst = "cron"` on another kind
/// of trigger is an error; a default one applies to cron triggers only.
pub(crate) fn apply_dst(
    kind: &str,
    args: &mut Map<String, Value>,
    own: Option<&str>,
    default: Option<Dst>,
) -> Result<(), String> {
    let own = own.map(Dst::parse).transpose()?;
    let cron_kind = DST_KINDS.contains(&kind);
    if own == Some(Dst::Cron) && !cron_kind {
        return Err(format!(
            "applies to cron triggers only, not to a '{kind}' trigger"
        ));
    }
    if cron_kind && own.or(default) == Some(Dst::Cron) && !args.contains_key("dst") {
        args.insert("dst".into(), json!("cron"));
    }
    Ok(())
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
    /// Run once when a daemon starts. Left out when `false`, as `recover`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) at_start: bool,
    /// Who gets the runs' output by mail (empty: nobody). Left out when empty, and
    /// `mail_when` when it is the default, so that definitions stored before these
    /// options existed compare equal to today's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) mailto: Vec<String>,
    /// Which runs are mailed.
    #[serde(default, skip_serializing_if = "MailWhen::is_output")]
    pub(crate) mail_when: MailWhen,
    /// The exclusion calendar, whole (its rules, not only its name): a changed
    /// calendar changes the definition, so a reload replaces the stored job. Left out
    /// when none, as `recover`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) calendar: Option<NamedCalendar>,
    /// What an excluded fire time becomes. Left out when it is the default (skip).
    #[serde(default, skip_serializing_if = "is_skip")]
    pub(crate) calendar_action: CalendarAction,
    /// Retries, overlap, catch-up and failure streaks. Left out when it is the default.
    #[serde(
        default,
        skip_serializing_if = "apscheduler_core::RunPolicy::is_default"
    )]
    pub(crate) policy: apscheduler_core::RunPolicy,
}

fn is_skip(action: &CalendarAction) -> bool {
    *action == CalendarAction::Skip
}

impl JobDef {
    /// Whether the job runs only when a daemon starts (`at_start` without a trigger):
    /// it is stored paused, and its listings say "at start".
    pub(crate) fn runs_only_at_start(&self) -> bool {
        self.at_start && self.trigger_text == AT_START_ONLY
    }

    /// The trigger, built now (checks every trigger field), wrapped in the job's
    /// calendar when it has one.
    pub(crate) fn build_trigger(&self, tz: Tz) -> Result<AnyTrigger, String> {
        let now = Utc::now().with_timezone(&tz);
        let trigger = AnyTrigger::from_args(&self.trigger_kind, &self.trigger_args, tz, now)
            .map_err(|e| e.to_string())?;
        Ok(match &self.calendar {
            Some(calendar) => AnyTrigger::from(ExcludingTrigger::new(
                trigger,
                calendar.clone(),
                self.calendar_action,
            )),
            None => trigger,
        })
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
            let process = super::process::check(raw, defaults).map_err(|(f, m)| fail(f, m))?;
            Action::Command {
                command: command.clone(),
                cwd: raw.cwd.clone(),
                env: raw.env.clone().unwrap_or_default(),
                timeout,
                kill_grace: secs(&raw.kill_grace, "kill_grace")?
                    .or(defaults.kill_grace.map(|d| d.as_secs_f64())),
                user: process.user,
                group: process.group,
                shell: process.shell,
                stdin: process.stdin,
            }
        }
        (None, Some(http)) => {
            if raw.cwd.is_some() || raw.env.is_some() {
                return Err(fail("cwd/env", "apply to `command` jobs only".into()));
            }
            if raw.kill_grace.is_some() {
                return Err(fail(
                    "kill_grace",
                    "applies to `command` jobs only (an HTTP request is not signalled)".into(),
                ));
            }
            super::process::refuse_for_http(raw).map_err(|(f, m)| fail(f, m))?;
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

    let mailto = match &raw.mailto {
        Some(text) => parse_mailto(text).map_err(|e| fail("mailto", e))?,
        None => defaults.mailto.clone().unwrap_or_default(),
    };
    let mail_when = match &raw.mail_when {
        Some(text) => MailWhen::parse(text).map_err(|e| fail("mail_when", e))?,
        None => defaults.mail_when,
    };
    // Without recipients the rule means nothing: kept out of the stored definition.
    let mail_when = if mailto.is_empty() {
        MailWhen::Output
    } else {
        mail_when
    };

    let (calendar, calendar_action) = job_calendar(raw, defaults).map_err(|(f, m)| fail(f, m))?;
    let policy = super::policy::check_policy(
        super::policy::RawPolicy {
            retry: raw.retry.as_ref(),
            overlap: raw.overlap.as_deref(),
            catchup: raw.catchup.as_ref(),
            pause_after_failures: raw.pause_after_failures,
            notify_after_failures: raw.notify_after_failures,
        },
        &defaults.policy,
    )
    .map_err(|(f, m)| fail(&f, m))?;

    let forms = [
        raw.cron.is_some(),
        raw.interval.is_some(),
        raw.date.is_some(),
        raw.trigger.is_some(),
    ];
    let at_start = raw.at_start.is_some_and(|f| f.0);
    let (kind, mut args, text) = match forms.iter().filter(|f| **f).count() {
        0 if at_start => {
            let cron_only = [
                ("jitter", raw.jitter.is_some()),
                ("start_date", raw.start_date.is_some()),
                ("end_date", raw.end_date.is_some()),
                ("dst", raw.dst.is_some()),
            ];
            if let Some((field, _)) = cron_only.iter().find(|(_, set)| *set) {
                return Err(fail(
                    field,
                    "needs a trigger (this job has none: it runs only at the daemon's start)"
                        .into(),
                ));
            }
            (
            "date".to_owned(),
            json!({ "run_date": NEVER }),
            AT_START_ONLY.to_owned(),
            )
        }
        0 => {
            return Err(format!(
                "{ctx}: no trigger: give one of `cron`, `interval`, `date` or `trigger` (or `at_start = true` alone: run only when the daemon starts)"
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
    apply_dst(&kind, common, raw.dst.as_deref(), defaults.dst).map_err(|e| fail("dst", e))?;
    // Jenkins' `H` picks its values from the job id, so every reload and node agrees.
    let uses_hash = common
        .get("expr")
        .and_then(Value::as_str)
        .is_some_and(apscheduler_triggers::crontab_uses_hash);
    if kind == "crontab" && uses_hash && !common.contains_key("hash_key") {
        common.insert("hash_key".into(), json!(id));
    }
    let mut def = JobDef {
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
        at_start,
        mailto,
        mail_when,
        calendar,
        calendar_action,
        policy,
    };
    if def.max_instances == 0 {
        return Err(fail("max_instances", "must be 1 or more".into()));
    }
    if def.calendar.is_some() && def.runs_only_at_start() {
        if raw.calendar.as_deref().is_some_and(|c| !c.is_empty()) {
            return Err(fail(
                "calendar",
                "needs a trigger (this job has none: it runs only at the daemon's start)".into(),
            ));
        }
        // `[job_defaults] calendar` applies to jobs with a trigger only.
        def.calendar = None;
        def.calendar_action = CalendarAction::Skip;
    }
    let trigger = def
        .build_trigger(tz)
        .map_err(|e| format!("{ctx}: trigger: {e}"))?;
    let now = Utc::now().with_timezone(&tz);
    apscheduler_core::Trigger::check_runs(&trigger, &now)
        .map_err(|e| format!("{ctx}: calendar: job {} would never run: {e}", def.id))?;
    Ok(def)
}

/// The job's calendar (`calendar`, else `[job_defaults] calendar`; "" for none) and
/// its action, looked up in the config's calendars; errors as `(field, message)`.
fn job_calendar(
    raw: &RawJob,
    defaults: &Defaults,
) -> Result<(Option<NamedCalendar>, CalendarAction), (&'static str, String)> {
    let name = raw
        .calendar
        .as_deref()
        .or(defaults.calendar.as_deref())
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let action = match &raw.calendar_action {
        Some(text) => text
            .parse::<CalendarAction>()
            .map_err(|e| ("calendar_action", e.to_string()))?,
        None => defaults.calendar_action,
    };
    let Some(name) = name else {
        if raw.calendar_action.is_some() {
            return Err((
                "calendar_action",
                "needs a calendar (`calendar = \"NAME\"`)".into(),
            ));
        }
        return Ok((None, CalendarAction::Skip));
    };
    let calendar = defaults.calendars.get(name).ok_or_else(|| {
        (
            "calendar",
            format!(
                "unknown calendar '{name}' (defined: {})",
                super::calendars::known(&defaults.calendars)
            ),
        )
    })?;
    Ok((Some(calendar.clone()), action))
}

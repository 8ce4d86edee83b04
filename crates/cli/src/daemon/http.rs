//! `[http]` and `[notifications]`: the management plane of `aps run` (the
//! `apscheduler-http` router: API, dashboard, metrics) and its failure webhooks.
//!
//! ```toml
//! [http]
//! listen = "127.0.0.1:8080"     # default; any other address needs tokens
//! metrics = true                # /metrics (default true)
//! [[http.tokens]]               # from `aps token new --role operate --name ops`
//! name = "ops"
//! role = "operate"
//! hash = "sha256:..."
//!
//! [notifications]
//! flood_cap_per_hour = 20
//! [[notifications.webhooks]]
//! url = "https://hooks.example/aps"
//! on = ["failure", "timeout", "missed"]
//! jobs = ["backup"]            # default: every job
//! ```

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{Job, RunHistory, RunOutcome};
use apscheduler_engine::{AsyncScheduler, JobSpec};
use apscheduler_http::catalog::read_body;
use apscheduler_http::metrics::RunMetrics;
use apscheduler_http::notify::{Notifier, NotifyOptions, WebhookRule};
use apscheduler_http::{
    ApiError, Auth, JobCatalog, JobDescription, JobUpdate, ManagementPlane, Role, TokenEntry,
};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::PartialSchema as _;

use super::config::{check_job, Action, Defaults, JobDef, Origin, RawJob};
use super::jobs::spec_of;

/// The default `[http] listen`.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// `[http]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpServer {
    listen: Option<String>,
    metrics: Option<bool>,
    #[serde(default)]
    tokens: Vec<RawToken>,
}

/// `[[http.tokens]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    role: String,
    hash: String,
}

/// `[notifications]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotifications {
    flood_cap_per_hour: Option<u32>,
    max_attempts: Option<u32>,
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
}

/// `[[notifications.webhooks]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    on: Option<Vec<String>>,
    jobs: Option<Vec<String>>,
    headers: Option<BTreeMap<String, String>>,
}

/// A checked `[http]`.
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    pub(crate) listen: SocketAddr,
    pub(crate) metrics: bool,
    pub(crate) tokens: Vec<TokenEntry>,
}

/// One checked webhook.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) on: Vec<RunOutcome>,
    pub(crate) jobs: Option<Vec<String>>,
    pub(crate) headers: BTreeMap<String, String>,
}

/// A checked `[notifications]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NotificationSettings {
    pub(crate) flood_cap_per_hour: u32,
    pub(crate) max_attempts: u32,
    pub(crate) webhooks: Vec<Webhook>,
}

/// Checks `[http]` (`at`: where the table is, `file:line:col`).
pub(crate) fn check_http(raw: &RawHttpServer, at: &str) -> Result<HttpSettings, String> {
    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        format!(
            "{at}: http.listen: invalid address '{listen_text}': expected IP:PORT such as 127.0.0.1:8080"
        )
    })?;
    let mut tokens = Vec::new();
    let mut names = HashSet::new();
    for (i, t) in raw.tokens.iter().enumerate() {
        let field = format!("http.tokens[{i}]");
        if t.name.trim().is_empty() {
            return Err(format!("{at}: {field}.name: must not be empty"));
        }
        if !names.insert(t.name.clone()) {
            return Err(format!(
                "{at}: {field}.name: duplicate token name '{}'",
                t.name
            ));
        }
        let role: Role = t
            .role
            .parse()
            .map_err(|e| format!("{at}: {field}.role: {e}"))?;
        tokens.push(
            TokenEntry::new(t.name.clone(), role, &t.hash)
                .map_err(|e| format!("{at}: {field}.hash: {e}"))?,
        );
    }
    apscheduler_http::check_listen(listen, !tokens.is_empty())
        .map_err(|e| format!("{at}: http.listen: {e}"))?;
    Ok(HttpSettings {
        listen,
        metrics: raw.metrics.unwrap_or(true),
        tokens,
    })
}

/// Checks `[notifications]` of the config `file`.
pub(crate) fn check_notifications(
    raw: &RawNotifications,
    file: &str,
) -> Result<NotificationSettings, String> {
    let mut webhooks = Vec::new();
    for (i, w) in raw.webhooks.iter().enumerate() {
        let field = format!("notifications.webhooks[{i}]");
        if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
            return Err(format!(
                "{file}: {field}.url: '{}' is not an http:// or https:// URL",
                w.url
            ));
        }
        let on = match &w.on {
            None => vec![RunOutcome::Failure, RunOutcome::Timeout, RunOutcome::Missed],
            Some(list) => list
                .iter()
                .map(|o| match o.parse::<RunOutcome>() {
                    Ok(RunOutcome::Running) | Err(_) => Err(format!(
                        "{file}: {field}.on: invalid outcome '{o}' (success, failure, timeout, missed, interrupted, error)"
                    )),
                    Ok(outcome) => Ok(outcome),
                })
                .collect::<Result<_, _>>()?,
        };
        webhooks.push(Webhook {
            url: w.url.clone(),
            on,
            jobs: w.jobs.clone(),
            headers: w.headers.clone().unwrap_or_default(),
        });
    }
    let flood_cap_per_hour = raw.flood_cap_per_hour.unwrap_or(20);
    let max_attempts = raw.max_attempts.unwrap_or(5);
    if max_attempts == 0 {
        return Err(format!(
            "{file}: notifications.max_attempts: 0: expected 1 or more"
        ));
    }
    Ok(NotificationSettings {
        flood_cap_per_hour,
        max_attempts,
        webhooks,
    })
}

/// The daemon's jobs to the API: a body is a `[[jobs]]` table (JSON), and a job reads
/// as `aps jobs list` shows it.
#[derive(Debug)]
pub(crate) struct DaemonCatalog {
    /// The config's job defaults and calendars, replaced by each reload.
    pub(crate) defaults: SharedDefaults,
}

/// The job defaults and calendars of the config the daemon runs, shared with the API,
/// which checks new jobs with them; a reload replaces them.
pub(crate) type SharedDefaults = Arc<std::sync::RwLock<Defaults>>;

impl DaemonCatalog {
    fn defaults(&self) -> std::sync::RwLockReadGuard<'_, Defaults> {
        self.defaults
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The field a `check_job` message is about: ` (id 'x'): cron: ...` gives `cron`.
fn field_of(message: &str) -> String {
    let rest = message
        .split_once("): ")
        .map_or(message.trim_start_matches(": "), |(_, r)| r);
    rest.split_once(": ")
        .map(|(f, _)| f)
        .filter(|f| !f.contains(' '))
        .unwrap_or("body")
        .to_owned()
}

fn job_error(message: String) -> ApiError {
    let field = field_of(&message);
    ApiError::invalid(field, format!("job{message}"))
}

/// The `[[jobs]]` table (as JSON) that `def` was made from, in the `trigger` table form.
fn raw_of(def: &JobDef) -> Map<String, Value> {
    let mut raw = Map::new();
    raw.insert("id".into(), json!(def.id));
    raw.insert("name".into(), json!(def.name));
    match &def.action {
        Action::Command {
            command,
            cwd,
            env,
            timeout,
            kill_grace,
            user,
            group,
            shell,
            stdin,
        } => {
            raw.insert("command".into(), json!(command));
            for (key, value) in [
                ("user", user),
                ("group", group),
                ("shell", shell),
                ("stdin", stdin),
            ] {
                if let Some(v) = value {
                    raw.insert(key.into(), json!(v));
                }
            }
            if let Some(cwd) = cwd {
                raw.insert("cwd".into(), json!(cwd));
            }
            if !env.is_empty() {
                raw.insert("env".into(), json!(env));
            }
            if let Some(t) = timeout {
                raw.insert("timeout".into(), json!(t));
            }
            if let Some(g) = kill_grace {
                raw.insert("kill_grace".into(), json!(g));
            }
        }
        Action::Http {
            method,
            url,
            headers,
            body,
            expect_status,
            timeout,
        } => {
            raw.insert(
                "http".into(),
                json!({ "method": method, "url": url, "headers": headers, "body": body,
                        "expect_status": expect_status }),
            );
            if let Some(t) = timeout {
                raw.insert("timeout".into(), json!(t));
            }
        }
    }
    let mut trigger = def.trigger_args.as_object().cloned().unwrap_or_default();
    if let Some(tz) = trigger.remove("timezone") {
        raw.insert("timezone".into(), tz);
    }
    if def.at_start {
        raw.insert("at_start".into(), json!(true));
    }
    // Explicit, "" for none: a change keeps the job's calendar, not the default's.
    raw.insert(
        "calendar".into(),
        json!(def.calendar.as_ref().map_or("", |c| c.name.as_str())),
    );
    if def.calendar.is_some() {
        raw.insert(
            "calendar_action".into(),
            json!(def.calendar_action.to_string()),
        );
    }
    // A job that runs only at start has no trigger to write back.
    if !def.runs_only_at_start() {
        trigger.insert("type".into(), json!(def.trigger_kind));
        raw.insert("trigger".into(), Value::Object(trigger));
    }
    raw.insert(
        "misfire_grace_time".into(),
        def.misfire_grace_time.map_or(json!("none"), |s| json!(s)),
    );
    raw.insert("coalesce".into(), json!(def.coalesce));
    raw.insert("max_instances".into(), json!(def.max_instances));
    raw.insert("recover".into(), json!(def.recover));
    // Always, "" too: a job whose mail was turned off stays so when changed.
    raw.insert("mailto".into(), json!(def.mailto.join(", ")));
    raw.insert("mail_when".into(), json!(def.mail_when.as_str()));
    raw
}

/// JSON nulls dropped from a body: TOML has none, so a null means "left out".
fn without_nulls(body: &Value) -> Value {
    match body {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// How `job` reads in listings, the API's and `aps jobs list --json`'s alike: from
/// its stored definition, or (a job the daemon did not make) its trigger alone.
pub(crate) fn describe(job: &Job) -> JobDescription {
    match JobDef::from_kwargs(&job.kwargs) {
        Some(def) => JobDescription {
            trigger: def.trigger_text.clone(),
            action: Some(def.action.summary()),
            origin: Some(
                match def.origin {
                    Origin::Config => "config",
                    Origin::Cli => "cli",
                    Origin::Api => "api",
                }
                .to_owned(),
            ),
            calendar: def.calendar.as_ref().map(|c| c.name.clone()),
            calendar_action: def
                .calendar
                .is_some()
                .then(|| def.calendar_action.to_string()),
        },
        None => JobDescription {
            trigger: job.trigger.to_string(),
            ..JobDescription::default()
        }
        .with_trigger_calendar(job),
    }
}

impl JobCatalog for DaemonCatalog {
    fn describe(&self, job: &Job) -> JobDescription {
        describe(job)
    }

    fn definition(&self, job: &Job) -> Option<Value> {
        JobDef::from_kwargs(&job.kwargs).and_then(|d| serde_json::to_value(d).ok())
    }

    fn new_job(&self, body: &Value, tz: Tz) -> Result<JobSpec, ApiError> {
        let raw: RawJob = read_body(&without_nulls(body))?;
        let def = check_job(&raw, tz, &self.defaults(), Origin::Api).map_err(job_error)?;
        Ok(spec_of(&def))
    }

    fn change_job(&self, job: &Job, body: &Value, tz: Tz) -> Result<JobUpdate, ApiError> {
        let old = JobDef::from_kwargs(&job.kwargs).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "conflict",
                format!(
                    "job '{}' was not made by aps: it cannot be changed here",
                    job.id
                ),
            )
        })?;
        let changes = without_nulls(body);
        let changes = changes
            .as_object()
            .ok_or_else(|| ApiError::invalid("body", "expected a JSON object"))?;
        if let Some(id) = changes.get("id") {
            if id.as_str() != Some(old.id.as_str()) {
                return Err(ApiError::invalid(
                    "id",
                    format!("invalid value for 'id': {id}: a job's id cannot change"),
                ));
            }
        }
        let mut raw = raw_of(&old);
        let trigger_keys = ["cron", "interval", "date", "trigger"];
        let new_trigger = trigger_keys.iter().any(|k| changes.contains_key(*k));
        if new_trigger {
            for k in trigger_keys {
                raw.remove(k);
            }
        }
        if changes.contains_key("command") || changes.contains_key("http") {
            for k in [
                "command", "cwd", "env", "http", "user", "group", "shell", "stdin",
            ] {
                raw.remove(k);
            }
        }
        if changes.contains_key("calendar") {
            // A new calendar takes the action given with it, else the default.
            raw.remove("calendar_action");
        }
        for (k, v) in changes {
            raw.insert(k.clone(), v.clone());
        }
        let raw: RawJob = read_body(&Value::Object(raw))?;
        let mut def = check_job(&raw, tz, &self.defaults(), old.origin).map_err(job_error)?;
        if !new_trigger {
            // The trigger as first written (`cron "*/5 * * * *"`), not its table form.
            def.trigger_text = old.trigger_text.clone();
        }
        Ok(JobUpdate::Replace(spec_of(&def)))
    }

    fn schemas(
        &self,
    ) -> (
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    ) {
        (RawJob::schema(), RawJob::schema())
    }

    fn referenced_schemas(
        &self,
    ) -> Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )> {
        let mut schemas = Vec::new();
        <RawJob as utoipa::ToSchema>::schemas(&mut schemas);
        schemas
    }

    fn check_resume(&self, job: &Job) -> Result<(), ApiError> {
        match super::jobs::resume_refusal(job) {
            Some(why) => Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "invalid_state",
                why,
            )),
            None => Ok(()),
        }
    }

    fn calendars(&self) -> Vec<apscheduler_triggers::NamedCalendar> {
        self.defaults().calendars.values().cloned().collect()
    }
}

/// The notifier of `[notifications]`, when it names a webhook (on the current runtime).
pub(crate) fn notifier(settings: &NotificationSettings) -> Result<Option<Notifier>, String> {
    if settings.webhooks.is_empty() {
        return Ok(None);
    }
    let rules = settings
        .webhooks
        .iter()
        .map(|w| WebhookRule {
            url: w.url.clone(),
            on: w.on.clone(),
            jobs: w.jobs.clone(),
            headers: w.headers.clone(),
        })
        .collect();
    let options = NotifyOptions {
        flood_cap_per_hour: settings.flood_cap_per_hour,
        max_attempts: settings.max_attempts,
        ..NotifyOptions::default()
    };
    Notifier::new(rules, options)
        .map(Some)
        .map_err(|e| format!("notifications: {e}"))
}

/// The management plane while it serves.
#[derive(Debug)]
pub(crate) struct HttpServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Stops taking requests, lets those under way finish (up to 5 s).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the HTTP server did not stop within 5 s");
        }
    }
}

/// Binds `settings.listen` and serves the plane of `scheduler` until stopped.
pub(crate) async fn start(
    settings: &HttpSettings,
    scheduler: &AsyncScheduler,
    history: Option<Arc<dyn RunHistory>>,
    defaults: SharedDefaults,
    node_timeout: Duration,
    metrics: Option<RunMetrics>,
    node: &str,
) -> Result<HttpServer, String> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("http.listen: cannot listen on {}: {e}", settings.listen))?;
    // Port 0 asks the system for a free one: the log names the one bound.
    let bound = listener.local_addr().unwrap_or(settings.listen);
    let authenticated = !settings.tokens.is_empty();
    let mut plane = ManagementPlane::new(scheduler.clone())
        .history(history)
        .catalog(Arc::new(DaemonCatalog { defaults }))
        .auth(Auth::new(settings.tokens.clone()))
        .node_timeout(node_timeout)
        .node(node);
    if let Some(m) = metrics {
        plane = plane.metrics(m);
    }
    let router = plane.router();
    if authenticated {
        tracing::info!(listen = %bound, tokens = settings.tokens.len(), "management plane: http://{bound}/ (bearer tokens required)");
    } else {
        tracing::warn!(listen = %bound, "management plane: http://{bound}/ WITHOUT authentication: no [[http.tokens]] configured, so only loopback clients are served (`aps token new` makes one)");
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = apscheduler_http::serve(listener, router, authenticated, shutdown).await {
            tracing::error!("the HTTP server stopped: {e}");
        }
    });
    Ok(HttpServer { stop, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_of_finds_the_field_of_a_check_job_message() {
        assert_eq!(field_of(" (id 'x'): cron: bad field"), "cron");
        assert_eq!(field_of(": id: missing (every job needs an id)"), "id");
        assert_eq!(
            field_of(" (id 'x'): two actions: give either `command` or `http`, not both"),
            "body"
        );
        assert_eq!(field_of(" (id 'x'): http.url: missing"), "http.url");
    }

    #[test]
    fn without_tokens_only_a_loopback_address_is_accepted() {
        let raw = RawHttpServer {
            listen: Some("0.0.0.0:8080".into()),
            ..RawHttpServer::default()
        };
        let e = check_http(&raw, "aps.toml:3:1").unwrap_err();
        assert!(
            e.contains("http.listen") && e.contains("0.0.0.0:8080"),
            "{e}"
        );
        let raw = RawHttpServer {
            listen: Some("localhost".into()),
            ..RawHttpServer::default()
        };
        let e = check_http(&raw, "aps.toml:3:1").unwrap_err();
        assert!(e.contains("'localhost'"), "{e}");
        let ok = check_http(&RawHttpServer::default(), "x").unwrap();
        assert_eq!(ok.listen.to_string(), DEFAULT_LISTEN);
        assert!(ok.metrics);
    }
}

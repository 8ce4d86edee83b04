//! Webhooks on failed, timed-out and missed runs.
//!
//! A [`Notifier`] is a [`RunObserver`]: registered with `HistoryOptions::observe`, it
//! POSTs a JSON body to every [`WebhookRule`] whose outcomes (and jobs) match a record
//! that ended or did not run. [`RunObserver::observe`] only queues: the requests go
//! out from a task, with retries and a flood cap, so a slow or dead endpoint never
//! holds up the scheduler.
//!
//! The body (times in RFC 3339 UTC with microseconds, fields as `aps history --json`
//! prints them):
//!
//! ```json
//! {
//!   "event": "run.failure",
//!   "record": {
//!     "run_id": "0190f7b2-…", "job_id": "backup",
//!     "scheduled_at": "2030-01-01T02:00:00.000000Z",
//!     "started_at": "2030-01-01T02:00:00.004100Z",
//!     "finished_at": "2030-01-01T02:03:10.250000Z",
//!     "outcome": "failure", "exit_code": 2, "http_status": null,
//!     "output": "rsync: connection refused\n", "message": "exit code 2",
//!     "node": "host-1",
//!     "attempt": 1,
//!     "backfill": false
//!   }
//! }
//! ```
//!
//! Nothing is dropped silently: a notification given up after its attempts is logged
//! at error level, and the flood cap logs a warning (target [`LOG_TARGET`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::io::Read as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{RunObserver, RunOutcome, RunRecord, StreakChange};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::time::Instant;

/// The `tracing` target of what the notifier logs.
pub const LOG_TARGET: &str = "apscheduler::notify";

/// The longest wait between two attempts: doubling stops here.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The window of the flood cap.
const HOUR: Duration = Duration::from_secs(3600);

/// Deliveries in flight at once (each holds a blocking thread while it waits on the
/// network), so that a burst of failures cannot take every thread of the pool.
const MAX_CONCURRENT: usize = 16;

/// How much of a refusing endpoint's answer goes into the log.
const BODY_EXCERPT: u64 = 256;

/// Where to POST, and for which records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRule {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The outcomes that trigger it (default `failure`, `timeout`, `missed`);
    /// `running` never does.
    pub on: Vec<RunOutcome>,
    /// `None`: every job; `Some`: only these job ids (a per-job webhook).
    pub jobs: Option<Vec<String>>,
    /// Extra request headers (an `Authorization` token, say).
    pub headers: BTreeMap<String, String>,
}

impl WebhookRule {
    /// The outcomes a rule triggers on by default: the runs someone should look at.
    pub const DEFAULT_ON: [RunOutcome; 3] =
        [RunOutcome::Failure, RunOutcome::Timeout, RunOutcome::Missed];

    /// A rule for `url` with the default outcomes, for every job, without extra headers.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookRule {
            url: url.into(),
            ..WebhookRule::default()
        }
    }

    /// Whether `record` triggers this rule.
    pub fn matches(&self, record: &RunRecord) -> bool {
        record.outcome.is_final()
            && self.on.contains(&record.outcome)
            && self
                .jobs
                .as_ref()
                .is_none_or(|jobs| jobs.contains(&record.job_id))
    }
}

impl Default for WebhookRule {
    /// No URL (set one), the default outcomes, every job, no headers.
    fn default() -> Self {
        WebhookRule {
            url: String::new(),
            on: WebhookRule::DEFAULT_ON.to_vec(),
            jobs: None,
            headers: BTreeMap::new(),
        }
    }
}

/// How notifications are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyOptions {
    /// At most this many notifications per rule per job in any rolling hour (default
    /// 20); the rest are dropped, with a warning. `0`: no cap. A job failing every
    /// minute then pages 20 times an hour, not 60.
    pub flood_cap_per_hour: u32,
    /// Attempts per notification, the first included (default 5; `0` counts as 1).
    pub max_attempts: u32,
    /// The wait before the second attempt (default 1 s), doubled before each next one,
    /// at most 60 s.
    pub first_backoff: Duration,
    /// The time limit of one request, connection included (default 10 s).
    pub timeout: Duration,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        NotifyOptions {
            flood_cap_per_hour: 20,
            max_attempts: 5,
            first_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What a [`Notifier`] did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyStats {
    /// Notifications an endpoint accepted (a 2xx answer).
    pub sent: u64,
    /// Notifications given up (attempts exhausted, or a final refusal such as a 4xx).
    pub failed: u64,
    /// Notifications dropped by the flood cap.
    pub dropped: u64,
}

/// One notification to deliver.
struct Delivery {
    rule: usize,
    record: RunRecord,
    /// A failure-streak notification (`job.failing`, `job.recovered`) about `record`,
    /// with the streak's length; `None`: the record's own (`run.failure`, ...).
    streak: Option<(StreakChange, u32)>,
}

/// What the notifier's handles and its tasks share.
struct Shared {
    rules: Vec<WebhookRule>,
    /// Each rule's URL as logs show it (see [`shown_url`]).
    shown: Vec<String>,
    options: NotifyOptions,
    agent: ureq::Agent,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// Notifications queued or being delivered: what [`Notifier::flush`] waits for.
    pending: AtomicUsize,
    /// Woken when `pending` drops to zero.
    idle: Notify,
}

impl Shared {
    fn finished(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// Marks a notification finished when dropped, so that `pending` stays right even if a
/// delivery task panics or is cancelled.
struct Pending(Arc<Shared>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.finished();
    }
}

/// Sends webhooks for failed, timed-out and missed runs: a [`RunObserver`] to register
/// with `HistoryOptions::observe`. Clones share their queue and statistics; the sender
/// task ends once every clone is dropped and the queue is drained.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Delivery>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("rules", &self.shared.rules)
            .field("options", &self.shared.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A header name as HTTP allows it (a token), so that a typo fails at start, not at
/// each notification.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Checks `rules`; the message names the rule's index and the offending value.
fn validate(rules: &[WebhookRule], agent: &ureq::Agent) -> Result<(), String> {
    for (i, rule) in rules.iter().enumerate() {
        let url_ok = agent
            .post(&rule.url)
            .request_url()
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && !u.host().is_empty());
        if !url_ok {
            return Err(format!(
                "webhook rule {i}: url '{}' is not an http:// or https:// URL",
                rule.url
            ));
        }
        if rule.on.contains(&RunOutcome::Running) {
            return Err(format!(
                "webhook rule {i}: on: 'running' is not an outcome to notify of \
                 (success, failure, timeout, missed, interrupted, error)"
            ));
        }
        for (name, value) in &rule.headers {
            if !valid_header_name(name) {
                return Err(format!(
                    "webhook rule {i}: headers: '{name}' is not a valid header name"
                ));
            }
            if !valid_header_value(value) {
                return Err(format!(
                    "webhook rule {i}: headers: the value of '{name}' has control characters"
                ));
            }
        }
    }
    Ok(())
}

impl Notifier {
    /// Checks `rules` (http or https URLs, header names and values, no `running` in
    /// `on`) and starts the sender task on the current tokio runtime.
    ///
    /// # Errors
    /// A message naming the first invalid rule (by index) and its value, or saying that
    /// there is no tokio runtime to run on.
    pub fn new(rules: Vec<WebhookRule>, options: NotifyOptions) -> Result<Notifier, String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "webhook notifications need a tokio runtime to send from".to_owned())?;
        let agent = ureq::AgentBuilder::new()
            .timeout(options.timeout)
            // A redirected POST would arrive as a GET without its body: say so instead.
            .redirects(0)
            .user_agent(concat!("apscheduler-rs/", env!("CARGO_PKG_VERSION")))
            .build();
        validate(&rules, &agent)?;
        let shown = rules.iter().map(|r| shown_url(&r.url)).collect();
        let shared = Arc::new(Shared {
            rules,
            shown,
            options,
            agent,
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        let (queue, rx) = mpsc::unbounded_channel();
        runtime.spawn(dispatch(shared.clone(), rx));
        Ok(Notifier { shared, queue })
    }

    /// [`Notifier::new`] for rules known to be valid.
    ///
    /// # Panics
    /// On an invalid rule, or outside a tokio runtime.
    pub fn start(rules: Vec<WebhookRule>, options: NotifyOptions) -> Notifier {
        Notifier::new(rules, options).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The rules, as given.
    pub fn rules(&self) -> &[WebhookRule] {
        &self.shared.rules
    }

    /// Notifications sent, given up and dropped so far.
    pub fn stats(&self) -> NotifyStats {
        NotifyStats {
            sent: self.shared.sent.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }

    /// Waits until every notification queued so far is delivered, given up or dropped,
    /// at most `deadline` (retries included: give it the backoffs' worth). Returns
    /// whether the queue was emptied. For shutdown, and for tests.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        loop {
            let idle = self.shared.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so that a wake-up in between is not lost.
            idle.as_mut().enable();
            if self.shared.pending.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(until, idle).await.is_err() {
                return self.shared.pending.load(Ordering::Acquire) == 0;
            }
        }
    }
}

impl RunObserver for Notifier {
    fn observe(&self, record: &RunRecord) {
        if !record.outcome.is_final() {
            return;
        }
        for (rule, _) in self
            .shared
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.matches(record))
        {
            self.shared.pending.fetch_add(1, Ordering::AcqRel);
            let delivery = Delivery {
                rule,
                record: record.clone(),
                streak: None,
            };
            if self.queue.send(delivery).is_err() {
                self.shared.finished();
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    target: LOG_TARGET,
                    job_id = %record.job_id,
                    run_id = %record.run_id,
                    url = %self.shared.shown[rule],
                    "webhook notification not sent: the notifier's task has stopped \
                     (its runtime shut down)"
                );
            }
        }
    }

    /// Sent to every rule that covers the job and triggers on `failure`.
    fn streak(&self, change: StreakChange, job_id: &str, streak: u32, record: Option<&RunRecord>) {
        if change == StreakChange::Counted {
            return;
        }
        let Some(record) = record else {
            tracing::error!(target: LOG_TARGET, job_id = %job_id, "{} notification not sent: the run that changed the streak is not in the history", change.as_str());
            return;
        };
        for (rule, _) in self.shared.rules.iter().enumerate().filter(|(_, r)| {
            r.on.contains(&RunOutcome::Failure)
                && r.jobs
                    .as_ref()
                    .is_none_or(|jobs| jobs.iter().any(|j| j == job_id))
        }) {
            self.shared.pending.fetch_add(1, Ordering::AcqRel);
            let delivery = Delivery {
                rule,
                record: record.clone(),
                streak: Some((change, streak)),
            };
            if self.queue.send(delivery).is_err() {
                self.shared.finished();
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(target: LOG_TARGET, job_id = %job_id, url = %self.shared.shown[rule], "{} notification not sent: the notifier's task has stopped (its runtime shut down)", change.as_str());
            }
        }
    }
}

/// The flood cap's account of one (rule, job).
#[derive(Default)]
struct Flood {
    /// When the notifications of the last hour were admitted.
    admitted: VecDeque<Instant>,
    /// Dropped since the notifier started.
    dropped: u64,
    /// When the last warning about drops was logged.
    warned: Option<Instant>,
}

/// Takes deliveries off the queue, applies the flood cap and hands the rest to
/// delivery tasks.
async fn dispatch(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Delivery>) {
    let mut floods: HashMap<(usize, String), Flood> = HashMap::new();
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    let cap = shared.options.flood_cap_per_hour as usize;
    while let Some(delivery) = rx.recv().await {
        let pending = Pending(shared.clone());
        if cap > 0 {
            let now = Instant::now();
            if floods.len() > 10_000 {
                // Forget jobs that have been quiet for an hour (removed jobs, say).
                floods.retain(|_, f| {
                    f.admitted.back().is_some_and(|t| now - *t < HOUR)
                        || f.warned.is_some_and(|t| now - t < HOUR)
                });
            }
            let key = (delivery.rule, delivery.record.job_id.clone());
            let flood = floods.entry(key).or_default();
            while flood.admitted.front().is_some_and(|t| now - *t >= HOUR) {
                flood.admitted.pop_front();
            }
            if flood.admitted.len() >= cap {
                flood.dropped += 1;
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                if flood.warned.is_none_or(|t| now - t >= HOUR) {
                    flood.warned = Some(now);
                    tracing::warn!(
                        target: LOG_TARGET,
                        job_id = %delivery.record.job_id,
                        url = %shared.shown[delivery.rule],
                        dropped = flood.dropped,
                        "webhook notifications of job '{}' to {} dropped: over the flood cap of \
                         {cap} per hour ({} dropped so far; next warning in an hour at the \
                         earliest)",
                        delivery.record.job_id,
                        shared.shown[delivery.rule],
                        flood.dropped,
                    );
                }
                continue;
            }
            flood.admitted.push_back(now);
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            // The semaphore is never closed.
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            deliver(&shared, delivery).await;
            drop(slot);
            drop(pending);
        });
    }
}

/// The JSON body of a notification about `record`.
pub fn payload(record: &RunRecord) -> Value {
    json!({
        "event": format!("run.{}", record.outcome),
        "record": crate::views::RunView::from(record),
    })
}

/// The JSON body of a failure-streak notification: `job.failing` when a job's
/// `notify_after_failures` consecutive fire times failed, `job.recovered` at the success
/// that ended such a streak; `record` is that last run.
pub fn streak_payload(change: StreakChange, streak: u32, record: &RunRecord) -> Value {
    json!({
        "event": change.as_str(),
        "job_id": record.job_id,
        "failures": streak,
        "record": crate::views::RunView::from(record),
    })
}

/// How an attempt ended, when not with a 2xx.
struct Refusal {
    reason: String,
    retry: bool,
}

/// One POST (blocking: run it on a blocking thread).
fn post(agent: &ureq::Agent, rule: &WebhookRule, body: &[u8]) -> Result<(), Refusal> {
    let mut request = agent
        .post(&rule.url)
        .set("Content-Type", "application/json");
    for (name, value) in &rule.headers {
        request = request.set(name, value);
    }
    let excerpt = |response: ureq::Response| {
        let mut text = String::new();
        let _ = response
            .into_reader()
            .take(BODY_EXCERPT)
            .read_to_string(&mut text);
        text.trim().to_owned()
    };
    match request.send_bytes(body) {
        Ok(response) if (200..300).contains(&response.status()) => {
            // Read the answer, so that the connection can be reused.
            let _ = std::io::copy(
                &mut response.into_reader().take(64 * 1024),
                &mut std::io::sink(),
            );
            Ok(())
        }
        Ok(response) => {
            let status = response.status();
            let location = response.header("Location").unwrap_or("").to_owned();
            Err(Refusal {
                reason: format!(
                    "answered {status} (redirects are not followed; configure the final \
                     URL{})",
                    if location.is_empty() {
                        String::new()
                    } else {
                        format!(", {location}")
                    }
                ),
                retry: false,
            })
        }
        Err(ureq::Error::Status(status, response)) => {
            let body = excerpt(response);
            Err(Refusal {
                reason: if body.is_empty() {
                    format!("answered {status}")
                } else {
                    format!("answered {status}: {body}")
                },
                retry: status == 429 || status >= 500,
            })
        }
        Err(ureq::Error::Transport(transport)) => Err(Refusal {
            reason: transport.to_string(),
            retry: true,
        }),
    }
}

/// Delivers one notification, retrying connection errors, 429 and 5xx.
async fn deliver(shared: &Arc<Shared>, delivery: Delivery) {
    let rule = &shared.rules[delivery.rule];
    let shown = &shared.shown[delivery.rule];
    let record = &delivery.record;
    let body = match delivery.streak {
        Some((change, streak)) => streak_payload(change, streak, record),
        None => payload(record),
    };
    let body: Arc<[u8]> = body.to_string().into_bytes().into();
    let attempts = shared.options.max_attempts.max(1);
    let mut backoff = shared.options.first_backoff;
    let mut attempt = 1;
    let reason = loop {
        let (agent, rule_copy, body_copy) = (shared.agent.clone(), rule.clone(), body.clone());
        let outcome = tokio::task::spawn_blocking(move || post(&agent, &rule_copy, &body_copy))
            .await
            .unwrap_or_else(|e| {
                Err(Refusal {
                    reason: format!("the request's thread failed: {e}"),
                    retry: true,
                })
            });
        let refusal = match outcome {
            Ok(()) => {
                shared.sent.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    target: LOG_TARGET,
                    job_id = %record.job_id,
                    run_id = %record.run_id,
                    url = %shown,
                    attempt,
                    "webhook notification sent"
                );
                return;
            }
            Err(refusal) => refusal,
        };
        if !refusal.retry {
            break refusal.reason;
        }
        if attempt >= attempts {
            break format!("{} (after {attempt} attempts)", refusal.reason);
        }
        tracing::debug!(
            target: LOG_TARGET,
            job_id = %record.job_id,
            run_id = %record.run_id,
            url = %shown,
            attempt,
            reason = %refusal.reason,
            "webhook notification failed; retrying in {backoff:?}"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        attempt += 1;
    };
    shared.failed.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        target: LOG_TARGET,
        job_id = %record.job_id,
        run_id = %record.run_id,
        url = %shown,
        reason = %reason,
        "webhook notification of run {} ({}) of job '{}' to {} given up: {reason}",
        record.run_id,
        record.outcome,
        record.job_id,
        shown,
    );
}

/// `url` as logs show it: its scheme, host and first path segment, and `/…` for
/// whatever follows. Webhook URLs often carry their secret in the path or the query
/// (`https://hooks.example/services/T0/B0/SECRET`), and logs are read by more people
/// than the config.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(end);
    // Credentials in the authority (`user:pass@host`) are not shown either.
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let first = tail
        .strip_prefix('/')
        .map(|t| t.split(['/', '?', '#']).next().unwrap_or(""))
        .unwrap_or("");
    let shown_len = if first.is_empty() { 0 } else { first.len() + 1 };
    let more = tail.len() > shown_len;
    let mut out = format!("{scheme}://{host}");
    if !first.is_empty() {
        out.push('/');
        out.push_str(first);
    }
    if more {
        out.push_str("/…");
    }
    out
}

#[cfg(test)]
mod shown_url_tests {
    use super::shown_url;

    #[test]
    fn secrets_in_the_path_query_or_authority_are_not_shown() {
        assert_eq!(
            shown_url("https://hooks.example/services/T0/B0/SECRET"),
            "https://hooks.example/services/…"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:9/hook"),
            "http://127.0.0.1:9/hook"
        );
        assert_eq!(shown_url("http://h/hook?token=x"), "http://h/hook/…");
        assert_eq!(shown_url("https://u:pw@h.example/a"), "https://h.example/a");
        assert_eq!(shown_url("https://h.example"), "https://h.example");
        assert_eq!(shown_url("https://h.example/"), "https://h.example/…");
    }
}

//! The webhooks of `apscheduler_http::notify`, against a receiver on the loopback
//! interface: which records notify, the body, the flood cap, retries, giving up, and
//! what is logged.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use apscheduler_core::{RunObserver, RunOutcome, RunRecord};
use apscheduler_http::notify::{Notifier, NotifyOptions, NotifyStats, WebhookRule};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

// ---- a log capture: the notifier must not fail silently ----

#[derive(Debug, Clone)]
struct Log {
    level: tracing::Level,
    target: String,
    text: String,
}

static LOGS: Mutex<Vec<Log>> = Mutex::new(Vec::new());

struct Capture;

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        LOGS.lock().unwrap().push(Log {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            text: fields.0,
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| tracing::subscriber::set_global_default(Capture).unwrap());
}

/// The notifier's logs at `level` that mention `needle` (tests run in parallel: each
/// looks for its own URLs and ids).
fn logs(level: tracing::Level, needle: &str) -> Vec<Log> {
    LOGS.lock()
        .unwrap()
        .iter()
        .filter(|l| {
            l.level == level && l.target == "apscheduler::notify" && l.text.contains(needle)
        })
        .cloned()
        .collect()
}

// ---- a webhook receiver ----

#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    /// Statuses to answer, in order; 200 once they run out.
    statuses: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn at(&self, path: &str) -> Vec<Got> {
        self.got().into_iter().filter(|g| g.path == path).collect()
    }
}

async fn hook(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.got.lock().unwrap().push(Got {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let status = r.statuses.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

/// A receiver on 127.0.0.1 answering `statuses` first; returns its base URL.
async fn receiver(statuses: &[u16]) -> (String, Receiver) {
    let r = Receiver::default();
    r.statuses.lock().unwrap().extend(statuses);
    let app = Router::new().fallback(hook).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), r)
}

// ---- records ----

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 2, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn record(run_id: &str, job_id: &str, outcome: RunOutcome) -> RunRecord {
    let ran = !matches!(outcome, RunOutcome::Missed | RunOutcome::Error);
    RunRecord {
        run_id: run_id.to_owned(),
        job_id: job_id.to_owned(),
        scheduled_at: t(0),
        started_at: ran.then(|| t(0) + chrono::Duration::microseconds(4_100)),
        finished_at: (outcome != RunOutcome::Running)
            .then(|| t(190) + chrono::Duration::milliseconds(250)),
        outcome,
        exit_code: (outcome == RunOutcome::Failure).then_some(2),
        http_status: None,
        output: format!("output of {run_id}\n"),
        message: (outcome != RunOutcome::Success).then(|| format!("{outcome} message")),
        node: "host-1".to_owned(),
        attempt: 1,
        backfill: false,
        due_at: None,
    }
}

fn fast() -> NotifyOptions {
    NotifyOptions {
        first_backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        ..NotifyOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_timeouts_and_misses_notify_with_the_records_fields() {
    let (base, r) = receiver(&[]).await;
    let every = WebhookRule::new(format!("{base}/all"));
    let backup = WebhookRule {
        url: format!("{base}/backup"),
        jobs: Some(vec!["backup".to_owned()]),
        headers: BTreeMap::from([
            ("Authorization".to_owned(), "Bearer s3cret".to_owned()),
            ("X-Team".to_owned(), "ops".to_owned()),
        ]),
        ..WebhookRule::default()
    };
    let errors_only = WebhookRule {
        url: format!("{base}/errors"),
        on: vec![RunOutcome::Error, RunOutcome::Interrupted],
        ..WebhookRule::default()
    };
    let n = Notifier::new(vec![every, backup, errors_only], fast()).unwrap();
    for (i, outcome) in [
        RunOutcome::Running,
        RunOutcome::Success,
        RunOutcome::Failure,
        RunOutcome::Timeout,
        RunOutcome::Missed,
        RunOutcome::Interrupted,
        RunOutcome::Error,
    ]
    .into_iter()
    .enumerate()
    {
        n.observe(&record(&format!("web-{i}"), "web", outcome));
    }
    n.observe(&record("backup-run", "backup", RunOutcome::Running));
    n.observe(&record("backup-run", "backup", RunOutcome::Failure));
    n.observe(&record("backup-ok", "backup", RunOutcome::Success));
    assert!(n.flush(Duration::from_secs(10)).await);

    let events = |path| {
        let mut v: Vec<(String, String)> = r
            .at(path)
            .iter()
            .map(|g| {
                (
                    g.body["event"].as_str().unwrap().to_owned(),
                    g.body["record"]["run_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        events("/all"),
        pairs(&[
            ("run.failure", "backup-run"),
            ("run.failure", "web-2"),
            ("run.missed", "web-4"),
            ("run.timeout", "web-3"),
        ])
    );
    assert_eq!(events("/backup"), pairs(&[("run.failure", "backup-run")]));
    assert_eq!(
        events("/errors"),
        pairs(&[("run.error", "web-6"), ("run.interrupted", "web-5")])
    );
    assert_eq!(r.got().len(), 7, "nothing else arrived");
    assert_eq!(
        n.stats(),
        NotifyStats {
            sent: 7,
            failed: 0,
            dropped: 0
        }
    );

    // The body: every field of the record, times in RFC 3339 UTC with microseconds.
    let got = r.at("/backup").remove(0);
    assert_eq!(
        got.body,
        json!({
            "event": "run.failure",
            "record": {
                "run_id": "backup-run",
                "job_id": "backup",
                "scheduled_at": "2030-01-01T02:00:00.000000Z",
                "started_at": "2030-01-01T02:00:00.004100Z",
                "finished_at": "2030-01-01T02:03:10.250000Z",
                "outcome": "failure",
                "exit_code": 2,
                "http_status": null,
                "output": "output of backup-run\n",
                "message": "failure message",
                "node": "host-1",
                "attempt": 1,
                "backfill": false,
            }
        })
    );
    assert_eq!(got.headers["content-type"], "application/json");
    assert_eq!(got.headers["authorization"], "Bearer s3cret");
    assert_eq!(got.headers["x-team"], "ops");
    let missed = r
        .at("/all")
        .into_iter()
        .find(|g| g.body["event"] == "run.missed")
        .unwrap();
    assert_eq!(missed.body["record"]["started_at"], Value::Null);
    assert_eq!(missed.body["record"]["message"], "missed message");
    assert!(
        !r.at("/all")[0].headers.contains_key("authorization"),
        "headers are per rule"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_flood_cap_holds_per_job() {
    capture_logs();
    let (base, r) = receiver(&[]).await;
    let url = format!("{base}/flood");
    let options = NotifyOptions {
        flood_cap_per_hour: 3,
        ..fast()
    };
    let n = Notifier::new(vec![WebhookRule::new(&url)], options).unwrap();
    for i in 0..10 {
        n.observe(&record(&format!("noisy-{i}"), "noisy", RunOutcome::Failure));
    }
    for i in 0..2 {
        n.observe(&record(&format!("quiet-{i}"), "quiet", RunOutcome::Timeout));
    }
    assert!(n.flush(Duration::from_secs(10)).await);
    let jobs: Vec<String> = r
        .got()
        .iter()
        .map(|g| g.body["record"]["job_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(jobs.iter().filter(|j| *j == "noisy").count(), 3);
    assert_eq!(
        jobs.iter().filter(|j| *j == "quiet").count(),
        2,
        "other jobs unaffected"
    );
    assert_eq!(
        n.stats(),
        NotifyStats {
            sent: 5,
            failed: 0,
            dropped: 7
        }
    );
    // One warning for the (rule, job), not one per drop.
    let warnings = logs(tracing::Level::WARN, &url);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].text.contains("noisy"), "{warnings:?}");
    assert!(warnings[0].text.contains("dropped=1"), "{warnings:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_until_accepted() {
    let (base, r) = receiver(&[500, 503]).await;
    let n = Notifier::new(vec![WebhookRule::new(format!("{base}/flaky"))], fast()).unwrap();
    let started = std::time::Instant::now();
    n.observe(&record("r1", "job", RunOutcome::Failure));
    assert!(n.flush(Duration::from_secs(10)).await);
    let got = r.got();
    assert_eq!(got.len(), 3, "delivered on the 3rd attempt");
    assert!(
        got.iter().all(|g| g.body == got[0].body),
        "the same body each time"
    );
    assert_eq!(
        n.stats(),
        NotifyStats {
            sent: 1,
            failed: 0,
            dropped: 0
        }
    );
    // Backoffs of 50 ms then 100 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_requests_is_retried_and_other_client_errors_are_final() {
    capture_logs();
    let (base, r) = receiver(&[429, 404]).await;
    let url = format!("{base}/gone");
    let n = Notifier::new(vec![WebhookRule::new(&url)], fast()).unwrap();
    n.observe(&record("run-404", "job", RunOutcome::Missed));
    assert!(n.flush(Duration::from_secs(10)).await);
    assert_eq!(r.got().len(), 2, "429 retried once, then 404 is final");
    assert_eq!(
        n.stats(),
        NotifyStats {
            sent: 0,
            failed: 1,
            dropped: 0
        }
    );
    let errors = logs(tracing::Level::ERROR, &url);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].text.contains("run-404") && errors[0].text.contains("404"),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_endpoint_is_given_up_after_max_attempts() {
    capture_logs();
    // A port nobody listens on: bound, then closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hook");
    let options = NotifyOptions {
        max_attempts: 3,
        first_backoff: Duration::from_millis(20),
        ..fast()
    };
    let n = Notifier::new(vec![WebhookRule::new(&url)], options).unwrap();
    n.observe(&record("lost-run", "nightly", RunOutcome::Timeout));
    assert!(n.flush(Duration::from_secs(10)).await);
    assert_eq!(
        n.stats(),
        NotifyStats {
            sent: 0,
            failed: 1,
            dropped: 0
        }
    );
    let errors = logs(tracing::Level::ERROR, &url);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let text = &errors[0].text;
    for part in ["nightly", "lost-run", "after 3 attempts"] {
        assert!(text.contains(part), "{part} not in {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn flush_waits_for_deliveries_in_flight_and_honours_its_deadline() {
    let (base, r) = receiver(&[500, 500]).await;
    let options = NotifyOptions {
        first_backoff: Duration::from_millis(250),
        ..fast()
    };
    let n = Notifier::new(vec![WebhookRule::new(format!("{base}/slow"))], options).unwrap();
    assert!(
        n.flush(Duration::from_millis(10)).await,
        "nothing queued: flushed at once"
    );
    n.observe(&record("slow", "job", RunOutcome::Failure));
    assert!(!n.flush(Duration::from_millis(100)).await, "still retrying");
    assert!(n.flush(Duration::from_secs(10)).await);
    assert_eq!(r.got().len(), 3);
    assert_eq!(n.stats().sent, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_rules_are_refused_at_start_naming_the_rule() {
    let ok = WebhookRule::new("http://127.0.0.1:9/ok");
    for (bad, needle) in [
        (WebhookRule::new("ftp://127.0.0.1/x"), "'ftp://127.0.0.1/x'"),
        (WebhookRule::new("not a url"), "'not a url'"),
        (WebhookRule::new(""), "''"),
        (
            WebhookRule {
                on: vec![RunOutcome::Running],
                ..WebhookRule::new("http://127.0.0.1:9/x")
            },
            "running",
        ),
        (
            WebhookRule {
                headers: BTreeMap::from([("Bad Header".to_owned(), "x".to_owned())]),
                ..WebhookRule::new("http://127.0.0.1:9/x")
            },
            "'Bad Header'",
        ),
        (
            WebhookRule {
                headers: BTreeMap::from([("X-Ok".to_owned(), "a\r\nb".to_owned())]),
                ..WebhookRule::new("http://127.0.0.1:9/x")
            },
            "X-Ok",
        ),
    ] {
        let err = Notifier::new(vec![ok.clone(), bad], NotifyOptions::default()).unwrap_err();
        assert!(err.contains("rule 1") && err.contains(needle), "{err}");
    }
    assert!(Notifier::new(
        vec![ok, WebhookRule::new("HTTPS://hooks.example/x")],
        NotifyOptions::default()
    )
    .is_ok());
}

#[test]
fn a_notifier_needs_a_runtime() {
    let err = Notifier::new(vec![], NotifyOptions::default()).unwrap_err();
    assert!(err.contains("tokio runtime"), "{err}");
}

// ---- failure streaks: job.failing and job.recovered, through a scheduler ----

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_streak_notifies_failing_once_and_recovered_at_the_next_success() {
    use apscheduler_core::ManualClock;
    use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
    use std::sync::atomic::{AtomicBool, Ordering};

    let (url, rx) = receiver(&[]).await;
    let notifier = Notifier::start(vec![WebhookRule::new(format!("{url}/streak"))], fast());
    let clock = Arc::new(ManualClock::new(t(0)));
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .run_history(
            Arc::new(apscheduler_store_memory::MemoryRunHistory::new()),
            HistoryOptions::default().observe(Arc::new(notifier.clone())),
        )
        .build();
    let failing = Arc::new(AtomicBool::new(true));
    let f = failing.clone();
    engine.register_task("flaky", move |_| {
        if f.load(Ordering::SeqCst) {
            Err("boom".into())
        } else {
            Ok(json!("ok"))
        }
    });
    engine.start(false).await.unwrap();
    engine
        .add_job(
            JobSpec::task("flaky")
                .id("streaky")
                .trigger_args("interval", json!({"minutes": 1}))
                .notify_after_failures(2),
        )
        .await
        .unwrap();
    let events = |rx: &Receiver| {
        rx.at("/streak")
            .iter()
            .map(|g| g.body["event"].as_str().unwrap_or_default().to_owned())
            .filter(|e| e.starts_with("job."))
            .collect::<Vec<_>>()
    };
    // Three failures, then a success, then a failure: one job.failing (at the
    // second failure), one job.recovered.
    for (minute, fail) in [(1, true), (2, true), (3, true), (4, false), (5, true)] {
        failing.store(fail, Ordering::SeqCst);
        clock.set(t(minute * 60));
        engine.process_jobs().await;
        // Each outcome's follow-up reads the history on a task: let it finish.
        tokio::time::sleep(Duration::from_millis(300)).await;
        if minute == 2 {
            for _ in 0..100 {
                if !events(&rx).is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(notifier.flush(Duration::from_secs(10)).await);
    assert_eq!(events(&rx), ["job.failing", "job.recovered"]);
    let got = rx.at("/streak");
    let failing_body = &got
        .iter()
        .find(|g| g.body["event"] == "job.failing")
        .unwrap()
        .body;
    assert_eq!(failing_body["job_id"], "streaky");
    assert_eq!(failing_body["failures"], 2);
    assert_eq!(failing_body["record"]["outcome"], "failure");
    assert_eq!(
        failing_body["record"]["scheduled_at"],
        "2030-01-01T02:02:00.000000Z"
    );
    let recovered = &got
        .iter()
        .find(|g| g.body["event"] == "job.recovered")
        .unwrap()
        .body;
    assert_eq!(recovered["failures"], 3);
    assert_eq!(recovered["record"]["outcome"], "success");
    engine.shutdown(true).await.unwrap();
}

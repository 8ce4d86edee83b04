//! End-to-end tests of `aps run`'s management plane (`[http]`): the real binary on a
//! temporary config with the embedded SQLite store, called over loopback HTTP: tokens
//! and roles on every endpoint, the audit log, `/metrics` against the history, failure
//! webhooks to a local receiver, schemathesis against the daemon's own document, and
//! the config errors of `[http]`.

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{free_port, http_call, token, Daemon, Dir, APS};

/// A daemon with `[http]` on a port, called over loopback.
struct Http {
    daemon: Daemon,
    base: String,
    dir: Dir,
}

impl Http {
    /// `aps run` on `config`, whose `[http]` listens on `port`; up once `GET /health`
    /// answers 200.
    fn start(config: &str, port: u16) -> Http {
        let dir = Dir::new(config);
        let mut daemon = dir.spawn();
        daemon.wait_healthy(port, Duration::from_secs(30));
        Http {
            daemon,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    fn log(&self) -> String {
        self.daemon.log()
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        http_call(method, &format!("{}{path}", self.base), token, body)
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.call("GET", path, token, None)
    }

    fn json(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.get(path, Some(token));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// SIGTERM; asserts the daemon exits 0.
    fn stop(mut self) {
        let code = self.daemon.stop();
        assert_eq!(code, Some(0), "log:\n{}", self.log());
    }
}

/// A webhook receiver on loopback: every request's body, answered 200.
fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                seen.lock().unwrap().push(v);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

/// A Prometheus sample's value: `name{labels}` exactly as rendered, labels in any order.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let lines = std::io::Cursor::new(metrics.to_owned())
        .lines()
        .map(|l| Ok(l.unwrap()));
    let scrape =
        prometheus_parse::Scrape::parse(lines).expect("/metrics parses as Prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn tokens_roles_audit_metrics_and_webhooks_on_a_running_daemon() {
    let port = free_port();
    let (read, read_table) = token("read", "viewer");
    let (operate, operate_table) = token("operate", "ops");
    let (admin, admin_table) = token("admin", "root");
    let (hook_url, hooks) = receiver();
    let config = format!(
        r#"
[scheduler]
timezone = "UTC"
[http]
listen = "127.0.0.1:{port}"
{read_table}
{operate_table}
{admin_table}
[notifications]
[[notifications.webhooks]]
url = "{hook_url}"
on = ["failure"]
jobs = ["fail"]
[[jobs]]
id = "tick"
command = "echo tick-marker"
interval = "1s"
[[jobs]]
id = "fail"
command = "echo failing; exit 3"
interval = "1s"
[[jobs]]
id = "daily"
command = "echo daily"
cron = "0 3 * * *"
"#
    );
    let daemon = Http::start(&config, port);

    // Every endpoint: 401 without a token or with a wrong one; 403 below its role.
    let endpoints: [(&str, &str, &str, Option<&str>); 12] = [
        ("GET", "/api/status", "read", None),
        ("GET", "/api/jobs", "read", None),
        ("GET", "/api/jobs/daily", "read", None),
        ("GET", "/api/jobs/daily/next", "read", None),
        ("GET", "/api/history", "read", None),
        ("GET", "/api/nodes", "read", None),
        ("GET", "/metrics", "read", None),
        ("POST", "/api/jobs/daily/pause", "operate", None),
        ("POST", "/api/jobs/daily/resume", "operate", None),
        (
            "POST",
            "/api/jobs",
            "admin",
            Some(r#"{"id": "added", "command": "echo added", "cron": "0 4 * * *"}"#),
        ),
        (
            "PATCH",
            "/api/jobs/added",
            "admin",
            Some(r#"{"name": "renamed"}"#),
        ),
        ("DELETE", "/api/jobs/added", "admin", None),
    ];
    let rank = |r: &str| {
        ["read", "operate", "admin"]
            .iter()
            .position(|x| *x == r)
            .unwrap()
    };
    for (method, path, needs, body) in endpoints {
        assert_eq!(
            daemon.call(method, path, None, body).0,
            401,
            "{method} {path} without a token"
        );
        assert_eq!(
            daemon.call(method, path, Some("aps_nope"), body).0,
            401,
            "{method} {path} wrong token"
        );
        for (role, t) in [("read", &read), ("operate", &operate), ("admin", &admin)] {
            let (status, text) = daemon.call(method, path, Some(t), body);
            if rank(role) < rank(needs) {
                assert_eq!(status, 403, "{method} {path} as {role}: {text}");
            } else {
                assert!(
                    (200..300).contains(&status),
                    "{method} {path} as {role}: {status} {text}"
                );
            }
        }
    }
    let status: Value = daemon.json("/api/status", &read);
    assert!(
        status["node"].as_str().unwrap().contains('/'),
        "the daemon's host/pid: {status}"
    );
    assert_eq!(status["role"], "read");
    // The health checks and the document need no token.
    assert_eq!(daemon.get("/health/ready", None).0, 200);
    assert_eq!(daemon.get("/api/openapi.json", None).0, 200);

    // Every change is logged with the token's name.
    let log = daemon.log();
    for line in [
        "pause job 'daily' by token 'ops'",
        "add job 'added' by token 'root'",
        "remove job 'added' by token 'root'",
    ] {
        assert!(log.contains(line), "no audit line '{line}' in:\n{log}");
    }
    assert!(log.contains("bearer tokens required"), "{log}");

    // Run now, by the operator: recorded with the token's name.
    let (status, started) = daemon.call("POST", "/api/jobs/daily/run", Some(&operate), None);
    assert_eq!(status, 202, "{started}");
    let run_id = serde_json::from_str::<Value>(&started).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Let the jobs run a few times, then pause them and let the history settle.
    std::thread::sleep(Duration::from_secs(4));
    for id in ["tick", "fail"] {
        assert_eq!(
            daemon
                .call(
                    "POST",
                    &format!("/api/jobs/{id}/pause"),
                    Some(&operate),
                    None
                )
                .0,
            200
        );
    }
    let runs = |job: &str| daemon.json(&format!("/api/history?job={job}&limit=1000"), &read);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (tick_runs, fail_runs) = loop {
        let (a, b) = (runs("tick"), runs("fail"));
        let running = a
            .as_array()
            .unwrap()
            .iter()
            .chain(b.as_array().unwrap())
            .any(|r| r["outcome"] == "running");
        std::thread::sleep(Duration::from_millis(1500));
        let again = (runs("tick"), runs("fail"));
        if !running && again == (a.clone(), b.clone()) {
            break (a.as_array().unwrap().clone(), b.as_array().unwrap().clone());
        }
        assert!(Instant::now() < deadline, "the history did not settle");
    };
    assert!(
        tick_runs.len() >= 2 && fail_runs.len() >= 2,
        "{tick_runs:?} {fail_runs:?}"
    );
    let daily = daemon.json("/api/history?job=daily", &read);
    let manual = daily
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .expect("the run-now record");
    assert_eq!(manual["outcome"], "success");
    assert!(
        manual["message"].as_str().unwrap().contains("token 'ops'"),
        "{manual}"
    );
    assert_eq!(manual["output"], "daily\n");

    // /metrics counts what the history holds.
    let (status, metrics) = daemon.get("/metrics", Some(&read));
    assert_eq!(status, 200);
    let count = |runs: &[Value], outcome: &str| {
        runs.iter().filter(|r| r["outcome"] == outcome).count() as f64
    };
    assert_eq!(
        sample(
            &metrics,
            "aps_runs_total",
            &[("job", "tick"), ("outcome", "success")]
        ),
        count(&tick_runs, "success"),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "aps_runs_total",
            &[("job", "fail"), ("outcome", "failure")]
        ),
        count(&fail_runs, "failure"),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "aps_missed_total", &[("job", "fail")]),
        count(&fail_runs, "missed")
    );
    assert_eq!(sample(&metrics, "aps_runs_in_flight", &[]), 0.0);
    assert_eq!(sample(&metrics, "aps_jobs", &[("state", "paused")]), 2.0);
    assert_eq!(sample(&metrics, "aps_jobs", &[("state", "scheduled")]), 1.0);
    let ended = (tick_runs.len() + fail_runs.len() + daily.as_array().unwrap().len()) as f64;
    assert_eq!(
        sample(&metrics, "aps_run_duration_seconds_count", &[]),
        ended,
        "{metrics}"
    );
    assert!(
        sample(&metrics, "aps_store_round_trip_seconds_count", &[]) > 0.0,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "aps_last_success_timestamp_seconds",
            &[("job", "tick")]
        ) > 1.7e9
    );

    // One webhook per failure of `fail`, none for the others.
    let failures: Vec<&str> = fail_runs
        .iter()
        .filter(|r| r["outcome"] == "failure")
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while hooks.lock().unwrap().len() < failures.len() {
        assert!(
            Instant::now() < deadline,
            "webhooks: {} of {}",
            hooks.lock().unwrap().len(),
            failures.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let got = hooks.lock().unwrap().clone();
    let mut notified: Vec<&str> = got
        .iter()
        .map(|h| h["record"]["run_id"].as_str().unwrap())
        .collect();
    notified.sort_unstable();
    let mut expected = failures.clone();
    expected.sort_unstable();
    assert_eq!(notified, expected, "exactly one notification per failure");
    for h in &got {
        assert_eq!(h["event"], "run.failure");
        assert_eq!(h["record"]["job_id"], "fail");
        assert_eq!(h["record"]["exit_code"], 3);
    }
    daemon.stop();
}

fn schemathesis() -> Option<String> {
    let bin = std::env::var("APS_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned());
    match Command::new(&bin).arg("--version").output() {
        Ok(out) if out.status.success() => Some(bin),
        _ if apscheduler_testkit::server::in_ci() => {
            panic!("schemathesis is not installed ({bin}): `pip install schemathesis` (.ci/services.sh does)")
        }
        _ => {
            apscheduler_testkit::server::skip_notice("schemathesis against aps run (apscheduler-cli): schemathesis is not installed; `pip install schemathesis`");
            None
        }
    }
}

/// The daemon's own document (its `[[jobs]]` body) checked by schemathesis with an
/// `operate` token: reads, pauses, resumes and runs on generated ids; adding, changing
/// and removing answer 403 as documented, so no generated command is ever run.
#[test]
fn schemathesis_finds_no_server_error_on_the_daemon() {
    let Some(bin) = schemathesis() else { return };
    let port = free_port();
    let (operate, operate_table) = token("operate", "fuzz");
    let config = format!(
        r#"
[scheduler]
timezone = "UTC"
[http]
listen = "127.0.0.1:{port}"
{operate_table}
[[jobs]]
id = "daily"
command = "echo daily"
cron = "0 3 * * *"
"#
    );
    let daemon = Http::start(&config, port);
    let out = Command::new(bin)
        .args([
            "run",
            &format!("{}/api/openapi.json", daemon.base),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--seed",
            "1",
            "--request-timeout",
            "10",
            "-H",
            &format!("Authorization: Bearer {operate}"),
        ])
        .env("NO_COLOR", "1")
        .current_dir(daemon.dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\ndaemon log:\n{}",
        daemon.log()
    );
    daemon.stop();
}

#[test]
fn http_config_errors_name_the_field_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aps.toml");
    for (config, expected) in [
        ("[http]\nlisten = \"0.0.0.0:18999\"\n", "http.listen"),
        ("[http]\nlisten = \"localhost\"\n", "'localhost'"),
        (
            "[http]\n[[http.tokens]]\nname = \"x\"\nrole = \"root\"\nhash = \"sha256:00\"\n",
            "http.tokens[0].role: invalid role 'root'",
        ),
        (
            "[http]\n[[http.tokens]]\nname = \"x\"\nrole = \"read\"\nhash = \"md5:00\"\n",
            "http.tokens[0].hash: invalid token hash 'md5:00'",
        ),
        ("[http]\nlisten_on = 1\n", "listen_on"),
        (
            "[[notifications.webhooks]]\nurl = \"ftp://x\"\n",
            "notifications.webhooks[0].url: 'ftp://x'",
        ),
        (
            "[[notifications.webhooks]]\nurl = \"http://127.0.0.1:9/\"\non = [\"sometimes\"]\n",
            "invalid outcome 'sometimes'",
        ),
    ] {
        std::fs::write(&path, config).unwrap();
        let out = Command::new(APS)
            .args(["config", "check"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted:\n{config}");
        assert!(err.contains(expected), "{config}\n=> {err}");
        assert!(err.contains("aps.toml"), "{err}");
    }
}

//! End-to-end tests of `aps run`, the daemon, and the management commands used beside
//! it: the real binary on temporary configs with the embedded SQLite store, real
//! processes and signals. The commands that need no daemon are in `commands.rs`.
//!
//! Real time is unavoidable here: jobs fire every second at most, waits poll with a
//! generous deadline, and no test asserts on exact timings.

mod support;

use std::io::Read as _;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const HEAD: &str = "[scheduler]\ntimezone = \"UTC\"\npoll_interval = \"200ms\"\nshutdown_grace = \"5s\"\nkill_grace = \"1s\"\n";

#[test]
fn jobs_fire_their_history_appears_and_sigterm_exits_0() {
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"tick\"\ncommand = \"echo \\\"job=$APS_JOB_ID run=$APS_RUN_ID at=$APS_SCHEDULED_AT\\\"\"\ninterval = 1\n\
         [[jobs]]\nid = \"fails\"\ncommand = \"echo oops >&2; exit 7\"\ninterval = 1\n\
         [[jobs]]\nid = \"bad-cwd\"\ncommand = \"true\"\ncwd = \"/nonexistent/dir\"\ninterval = 1\n\
         [[jobs]]\nid = \"binary\"\ncommand = \"printf 'ok\\\\377\\\\376end'\"\ninterval = 1\n\
         [[jobs]]\nid = \"mixed\"\ncommand = \"echo out1; echo err1 >&2; echo out2; echo err2 >&2\"\ninterval = 1\n"
    ));
    let mut daemon = dir.start();
    // Ended runs: on a loaded machine the newest record may still be `running`, or a
    // fire time skipped (`missed`) while the run before it was late.
    let ended = |job: &str| -> Vec<serde_json::Value> {
        dir.history(job)
            .into_iter()
            .filter(|r| r["outcome"] != "running" && r["outcome"] != "missed")
            .collect()
    };
    wait_for("two runs of each job", Duration::from_secs(20), || {
        ["tick", "fails", "bad-cwd", "binary", "mixed"]
            .iter()
            .all(|j| ended(j).len() >= 2)
    });
    let tick = ended("tick");
    let r = &tick[0];
    assert_eq!(r["outcome"], "success");
    assert_eq!(r["exit_code"], 0);
    let out = r["output"].as_str().unwrap();
    assert!(out.contains("job=tick"), "{out}");
    assert!(
        out.contains(&format!("run={}", r["run_id"].as_str().unwrap())),
        "{out}"
    );
    // APS_SCHEDULED_AT is the fire time the run is for (RFC 3339, same instant).
    let at = out.split("at=").nth(1).unwrap().trim();
    let at = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    let scheduled =
        chrono::DateTime::parse_from_rfc3339(r["scheduled_at"].as_str().unwrap()).unwrap();
    assert_eq!(at, scheduled);
    for field in [
        "run_id",
        "job_id",
        "scheduled_at",
        "started_at",
        "finished_at",
        "outcome",
        "exit_code",
        "output",
        "node",
        "attempt",
        "backfill",
    ] {
        assert!(r.get(field).is_some(), "history JSON lacks {field}: {r}");
    }
    // A scheduled run is the first attempt at its fire time, not a backfill, not waiting.
    assert_eq!(
        (&r["attempt"], &r["backfill"]),
        (&1.into(), &false.into()),
        "{r}"
    );
    assert!(r.get("due_at").is_none(), "{r}");

    let f = &ended("fails")[0];
    assert_eq!(
        (f["outcome"].as_str(), f["exit_code"].as_i64()),
        (Some("failure"), Some(7))
    );
    assert_eq!(f["output"], "oops\n");
    let e = &ended("bad-cwd")[0];
    assert_eq!(e["outcome"], "error", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("/nonexistent/dir"),
        "{e}"
    );
    let b = &ended("binary")[0];
    assert_eq!(b["outcome"], "success");
    assert_eq!(
        b["output"], "ok\u{fffd}\u{fffd}end",
        "non-UTF-8 output is kept lossily"
    );
    let m = &ended("mixed")[0];
    assert_eq!(
        m["output"], "out1\nerr1\nout2\nerr2\n",
        "stdout and stderr in write order"
    );

    let list = dir.jobs();
    let tick = list.iter().find(|j| j["id"] == "tick").unwrap();
    assert_eq!(tick["paused"], false);
    assert!(tick["next_run_time"].is_string());
    assert_eq!(tick["trigger"], "every 1s");

    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(15)), Some(0));
}

#[test]
fn pause_from_a_second_process_stops_the_next_run_and_resume_restarts_it() {
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"p\"\ncommand = \"true\"\ninterval = 1\n"
    ));
    let _daemon = dir.start();
    wait_for("a first run", Duration::from_secs(10), || {
        !dir.history("p").is_empty()
    });
    let out = dir.aps(&["jobs", "pause", "p"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dir.jobs()[0]["paused"], true);
    // A run already claimed when the pause landed may still finish; then nothing.
    std::thread::sleep(Duration::from_millis(1500));
    let after_pause = dir.history("p").len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(dir.history("p").len(), after_pause, "a paused job ran");

    assert!(dir.aps(&["jobs", "resume", "p"]).status.success());
    wait_for("a run after resume", Duration::from_secs(10), || {
        dir.history("p").len() > after_pause
    });
}

#[test]
fn a_watched_sqlite_store_wakes_the_daemon_for_a_job_added_from_a_second_process() {
    // No poll_interval: the daemon watches its SQLite file and otherwise polls once a minute.
    let dir = Dir::new("[scheduler]\ntimezone = \"UTC\"\n[[jobs]]\nid = \"later\"\ncommand = \"true\"\ncron = \"0 3 1 1 *\"\n");
    let daemon = dir.start();
    let out = dir.aps(&[
        "jobs",
        "add",
        "--id",
        "new",
        "--command",
        "echo added",
        "--interval",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the added job to run (well before the minute poll)",
        Duration::from_secs(15),
        || dir.outcomes("new").contains(&"success".to_owned()),
    );
    drop(daemon);
}

#[test]
fn sigterm_waits_for_a_running_job_then_interrupts_it_past_the_grace() {
    // Finishes within the grace: waited for.
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"short\"\ncommand = \"sleep 1; echo done\"\ninterval = 1\n"
    ));
    let mut daemon = dir.start();
    wait_for("a run in flight", Duration::from_secs(10), || {
        dir.outcomes("short").contains(&"running".to_owned())
    });
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(15)), Some(0));
    let outcomes = dir.outcomes("short");
    assert!(
        !outcomes.contains(&"running".to_owned()) && outcomes.contains(&"success".to_owned()),
        "{outcomes:?}"
    );

    // Outlives the grace: its process group is signalled, the run recorded interrupted.
    let dir = Dir::new(
        "[scheduler]\ntimezone = \"UTC\"\npoll_interval = \"200ms\"\nshutdown_grace = \"1s\"\nkill_grace = \"1s\"\n\
         [[jobs]]\nid = \"long\"\ncommand = \"trap '' TERM; sleep 4711 & sleep 4711; wait\"\ninterval = 1\n",
    );
    let mut daemon = dir.start();
    wait_for("the long job to start", Duration::from_secs(10), || {
        count_processes("sleep 4711") >= 2
    });
    let t0 = Instant::now();
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(20)), Some(0));
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "it waited for the grace"
    );
    wait_for(
        "the job's processes to be gone",
        Duration::from_secs(5),
        || count_processes("sleep 4711") == 0,
    );
    let runs = dir.history("long");
    assert_eq!(runs[0]["outcome"], "interrupted", "{runs:?}");
}

#[test]
fn a_timeout_kills_the_whole_process_group_grandchildren_included() {
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"slow\"\ncommand = \"(sleep 5813 &); sh -c 'sleep 5813' & sleep 5813\"\ninterval = \"1h\"\nstart_date = \"2000-01-01 00:00:00\"\ntimeout = \"1s\"\nmisfire_grace_time = \"1h\"\n"
    ));
    let _daemon = dir.start();
    // `aps jobs run` runs it now in the CLI's own process, under the same rules.
    let runner = std::thread::spawn({
        let config = dir.config();
        move || {
            Command::new(APS)
                .args(["jobs", "run", "slow", "--config"])
                .arg(config)
                .output()
                .unwrap()
        }
    });
    wait_for(
        "three sleeps (child, grandchildren)",
        Duration::from_secs(10),
        || count_processes("sleep 5813") >= 3,
    );
    let out = runner.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("every sleep to be gone", Duration::from_secs(5), || {
        count_processes("sleep 5813") == 0
    });
    let runs = dir.history("slow");
    assert!(runs.iter().any(|r| r["outcome"] == "timeout"), "{runs:?}");
}

#[test]
fn after_sigkill_and_restart_jobs_remain_missed_runs_follow_the_rules_and_the_run_in_flight_is_interrupted(
) {
    // A configured node name: the restart still finds the dead process's runs.
    let config = format!(
        "{HEAD}node = \"worker-a\"\n[[jobs]]\nid = \"busy\"\ncommand = \"sleep 6607\"\ninterval = 1\nmax_instances = 1\n\
         [[jobs]]\nid = \"strict\"\ncommand = \"true\"\ninterval = 1\nmisfire_grace_time = 0.5\ncoalesce = false\n\
         [[jobs]]\nid = \"lenient\"\ncommand = \"true\"\ninterval = 1\nmisfire_grace_time = \"1h\"\ncoalesce = true\n"
    );
    let dir = Dir::new(&config);
    let mut daemon = dir.start();
    wait_for("busy to be running", Duration::from_secs(10), || {
        dir.outcomes("busy").contains(&"running".to_owned())
    });
    wait_for("strict and lenient to run", Duration::from_secs(10), || {
        !dir.history("strict").is_empty() && !dir.history("lenient").is_empty()
    });
    daemon.signal("KILL");
    assert_eq!(daemon.wait(Duration::from_secs(5)), None);
    // The orphaned job process is the operator's; end it so the test leaves nothing.
    let _ = Command::new("pkill").args(["-f", "sleep 6607"]).status();
    let strict_before = dir.history("strict").len();
    let lenient_before = dir.history("lenient").len();
    std::thread::sleep(Duration::from_secs(3));

    let _daemon = dir.start();
    wait_for(
        "the run in flight to be recorded interrupted",
        Duration::from_secs(10),
        || {
            dir.history("busy")
                .iter()
                .any(|r| r["outcome"] == "interrupted")
        },
    );
    let ids: Vec<_> = dir
        .jobs()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    wait_for("runs after the restart", Duration::from_secs(10), || {
        dir.history("strict").len() > strict_before + 2
            && dir.history("lenient").len() > lenient_before
    });
    // Fire times passed while down: beyond the grace they are recorded missed ...
    assert!(
        dir.outcomes("strict").contains(&"missed".to_owned()),
        "{:?}",
        dir.outcomes("strict")
    );
    // ... within it, coalesced into one late run.
    assert!(!dir.outcomes("lenient").contains(&"missed".to_owned()));
    let busy = dir.history("busy");
    let interrupted = busy.iter().find(|r| r["outcome"] == "interrupted").unwrap();
    assert!(interrupted["finished_at"].is_string(), "{interrupted}");
    let _ = Command::new("pkill").args(["-f", "sleep 6607"]).status();
}

#[test]
fn a_recover_job_interrupted_by_sigkill_runs_again_for_its_fire_time_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (ran, flag, pid) = (
        dir.path().join("ran.txt"),
        dir.path().join("first.flag"),
        dir.path().join("first.pid"),
    );
    // Each run notes its fire time; the first one then sleeps until it is killed, the
    // others (the recovery among them) end at once.
    let command = format!(
        "echo \"$APS_SCHEDULED_AT\" >> {ran}; [ -e {flag} ] && exit 0; touch {flag}; echo $$ > {pid}; exec sleep 6608",
        ran = ran.display(),
        flag = flag.display(),
        pid = pid.display()
    );
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"report\"\ncommand = '{command}'\ninterval = 3\nrecover = true\n\
         [[jobs]]\nid = \"plain\"\ncommand = \"true\"\ninterval = 3\n"
    ));
    let mut daemon = dir.start();
    let listed = dir.jobs();
    let recover_of = |id: &str| {
        listed
            .iter()
            .find(|j| j["id"] == id)
            .map(|j| j["recover"].clone())
    };
    assert_eq!(
        (recover_of("report"), recover_of("plain")),
        (Some(Value::Bool(true)), Some(Value::Bool(false)))
    );
    wait_for(
        "the first run to be in flight",
        Duration::from_secs(15),
        || pid.exists() && dir.outcomes("report").contains(&"running".to_owned()),
    );
    daemon.signal("KILL");
    assert_eq!(daemon.wait(Duration::from_secs(5)), None);
    // The orphaned first run is ended by its pid, so the test leaves nothing behind.
    let first_pid = std::fs::read_to_string(&pid).unwrap();
    let _ = Command::new("kill").arg(first_pid.trim()).status();

    let restarted = dir.start();
    wait_for(
        "the recovery run to succeed",
        Duration::from_secs(15),
        || {
            dir.history("report").iter().any(|r| {
                r["outcome"] == "success"
                    && r["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("recovery of run"))
            })
        },
    );
    let history = dir.history("report");
    let interrupted = history
        .iter()
        .find(|r| r["outcome"] == "interrupted")
        .unwrap();
    let recovery = history
        .iter()
        .find(|r| {
            r["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("recovery of run"))
        })
        .unwrap();
    assert_eq!(
        recovery["scheduled_at"], interrupted["scheduled_at"],
        "{history:#?}"
    );
    assert_ne!(recovery["run_id"], interrupted["run_id"]);
    let message = recovery["message"].as_str().unwrap();
    assert!(
        message.contains(interrupted["run_id"].as_str().unwrap())
            && message.contains(interrupted["node"].as_str().unwrap()),
        "{message}"
    );
    // The command saw the same fire time twice: the first run and its recovery, once.
    let times = std::fs::read_to_string(&ran).unwrap();
    let first = times.lines().next().unwrap().to_owned();
    assert_eq!(
        times.lines().filter(|t| **t == *first).count(),
        2,
        "{times}"
    );
    assert!(
        restarted.log().contains("recovering run"),
        "{}",
        restarted.log()
    );
    // A job without `recover` is not run again (it had nothing in flight; nothing of it
    // says recovery).
    assert!(dir.history("plain").iter().all(|r| r["message"]
        .as_str()
        .is_none_or(|m| !m.starts_with("recovery"))));
    // `aps jobs add --recover`, shown by `aps jobs show`.
    let added = dir.aps(&[
        "jobs",
        "add",
        "--id",
        "added",
        "--command",
        "true",
        "--interval",
        "60",
        "--recover",
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let shown = dir.aps(&["jobs", "show", "added"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("recover: true"), "{shown}");
}

#[test]
fn a_date_job_runs_once_across_restarts() {
    let at = (chrono::Utc::now() - chrono::Duration::seconds(30)).format("%Y-%m-%d %H:%M:%S");
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"once\"\ncommand = \"true\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\n"
    ));
    for _ in 0..2 {
        let mut daemon = dir.start();
        wait_for("the one run", Duration::from_secs(10), || {
            dir.outcomes("once").contains(&"success".to_owned())
        });
        std::thread::sleep(Duration::from_millis(500));
        daemon.signal("TERM");
        assert_eq!(daemon.wait(Duration::from_secs(15)), Some(0));
    }
    assert_eq!(
        dir.outcomes("once"),
        ["success"],
        "ran once, not again at the restart"
    );
}

/// A job of the reload test whose command changes and whose schedule does not.
const KEPT: &str = "[[jobs]]\nid = \"kept\"\ncommand = \"true\"\ninterval = 3600\n";

#[test]
fn sighup_applies_a_changed_config_and_refuses_a_broken_one() {
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"a\"\ncommand = \"true\"\ninterval = 60\n[[jobs]]\nid = \"b\"\ncommand = \"true\"\ninterval = 60\n{KEPT}"
    ));
    let daemon = dir.start();
    let next_of = |id: &str| {
        let jobs = dir.jobs();
        let job = jobs.iter().find(|j| j["id"] == id).unwrap();
        job["next_run_time"].as_str().map(str::to_owned)
    };
    let kept_next = next_of("kept");
    assert!(kept_next.is_some());
    assert!(dir.aps(&["jobs", "pause", "b"]).status.success());
    assert!(dir
        .aps(&[
            "jobs",
            "add",
            "--id",
            "manual",
            "--command",
            "true",
            "--cron",
            "0 3 * * *"
        ])
        .status
        .success());
    // a removed, b changed (stays paused), c added; the CLI's job is kept.
    // The reload comes at least a second after the start, so that a next run time
    // computed again would differ.
    std::thread::sleep(Duration::from_millis(1100));
    dir.write(&format!(
        "{HEAD}[[jobs]]\nid = \"b\"\ncommand = \"echo changed\"\ninterval = 30\n[[jobs]]\nid = \"c\"\ncommand = \"true\"\ncron = \"*/5 * * * *\"\n{}",
        KEPT.replace("command = \"true\"", "command = \"echo changed\"")
    ));
    daemon.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        daemon.log().contains("config reloaded")
    });
    let jobs = dir.jobs();
    let mut ids: Vec<_> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["b", "c", "kept", "manual"]);
    let b = jobs.iter().find(|j| j["id"] == "b").unwrap();
    assert_eq!(
        (b["paused"].as_bool(), b["trigger"].as_str()),
        (Some(true), Some("every 30s"))
    );
    // Only its command changed: its next run is where it was.
    assert_eq!(next_of("kept"), kept_next, "kept's schedule goes on");
    let shown = dir.aps(&["jobs", "show", "kept"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("echo changed"), "{shown}");

    dir.write(&format!(
        "{HEAD}[[jobs]]\nid = \"d\"\ncommand = \"true\"\ncron = \"99 * * * *\"\n"
    ));
    daemon.signal("HUP");
    wait_for("the refusal", Duration::from_secs(10), || {
        daemon.log().contains("config reload refused")
    });
    let log = daemon.log();
    assert!(
        log.contains("aps.toml:"),
        "the refusal names the file: {log}"
    );
    let mut ids: Vec<_> = dir
        .jobs()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["b", "c", "kept", "manual"],
        "the running config stays"
    );
}

/// A one-connection-at-a-time HTTP server answering each request with the next status.
fn http_server(statuses: Vec<u16>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for status in statuses {
            let (mut conn, _) = listener.accept().unwrap();
            // Headers, then the body their Content-Length announces (maybe in later reads).
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            requests.push(String::from_utf8_lossy(&got).into_owned());
            let body = format!("status {status}");
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        requests
    });
    (port, handle)
}

#[test]
fn http_jobs_record_their_status_and_body() {
    let (port, server) = http_server(vec![200, 503]);
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"web\"\nhttp = {{ method = \"POST\", url = \"http://127.0.0.1:{port}/hook\", headers = {{ X-Token = \"t1\" }}, body = \"ping\" }}\ninterval = 1\n"
    ));
    let _daemon = dir.start();
    wait_for("two ended requests", Duration::from_secs(15), || {
        dir.history("web")
            .iter()
            .filter(|r| r["outcome"] != "running")
            .count()
            >= 2
    });
    let requests = server.join().unwrap();
    assert!(requests[0].starts_with("POST /hook"), "{}", requests[0]);
    assert!(
        requests[0].to_ascii_lowercase().contains("x-token: t1"),
        "{}",
        requests[0]
    );
    assert!(requests[0].ends_with("ping"), "{}", requests[0]);
    let runs = dir.history("web");
    let ended: Vec<_> = runs
        .iter()
        .filter(|r| r["outcome"] != "running")
        .rev()
        .collect();
    assert_eq!(
        (
            ended[0]["outcome"].as_str(),
            ended[0]["http_status"].as_u64()
        ),
        (Some("success"), Some(200))
    );
    assert_eq!(ended[0]["output"], "status 200");
    assert_eq!(
        (
            ended[1]["outcome"].as_str(),
            ended[1]["http_status"].as_u64()
        ),
        (Some("failure"), Some(503))
    );
}

#[test]
fn a_second_daemon_on_the_same_sqlite_file_is_refused_until_the_first_stops() {
    let dir = Dir::new("[scheduler]\ntimezone = \"UTC\"\n[[jobs]]\nid = \"later\"\ncommand = \"true\"\ncron = \"0 3 1 1 *\"\n");
    let mut first = dir.start();
    let second = dir.aps(&["run"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("single-node") && stderr.contains(&format!("process {}", first.child.id())),
        "{stderr}"
    );
    // Managing the jobs is not running them: `aps jobs` works beside the daemon.
    assert_eq!(dir.jobs().len(), 1);
    first.signal("TERM");
    assert_eq!(first.wait(Duration::from_secs(20)), Some(0));
    let again = dir.start();
    drop(again);
}

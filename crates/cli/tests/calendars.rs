//! Exclusion calendars end to end: `aps run` with `[calendars.NAME]` tables on
//! temporary configs (the embedded SQLite store), checked through `aps history`,
//! `aps jobs list`/`show`, a reload, `aps next --calendar`, `aps config check` and the
//! HTTP API.
//!
//! Real time: jobs fire every second, and the calendars exclude a window of a few
//! minutes around the test's start (`windows = ["HH:MM-HH:MM"]`, which may cross
//! midnight), so no test waits for a calendar to open.

mod support;

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;
use support::*;

const HEAD: &str = "[scheduler]\ntimezone = \"UTC\"\npoll_interval = \"200ms\"\nshutdown_grace = \"5s\"\nkill_grace = \"1s\"\n";

/// A window (UTC) from the start of the previous minute to 6 minutes from now, and
/// the instant it ends.
fn window_around_now() -> (String, DateTime<Utc>) {
    let now = Utc::now();
    let start = now - chrono::Duration::minutes(1);
    let end = (now + chrono::Duration::minutes(6))
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    (
        format!("{}-{}", start.format("%H:%M"), end.format("%H:%M")),
        end,
    )
}

fn calendars(window: &str) -> String {
    format!(
        "[calendars.now]\nwindows = [\"{window}\"]\n[calendars.far]\ndates = [\"2099-01-01\"]\n"
    )
}

#[test]
fn fire_times_a_calendar_excludes_are_recorded_missed_and_never_run() {
    let (window, end) = window_around_now();
    let dir = Dir::new(&format!(
        "{HEAD}{}[[jobs]]\nid = \"quiet\"\ncommand = \"echo ran\"\ninterval = 1\ncalendar = \"now\"\n\
         [[jobs]]\nid = \"moved\"\ncommand = \"echo ran\"\ninterval = 1\ncalendar = \"now\"\ncalendar_action = \"next_allowed\"\n",
        calendars(&window)
    ));
    let mut daemon = dir.start();
    wait_for("two excluded fire times", Duration::from_secs(20), || {
        dir.history("quiet").len() >= 2
    });
    let history = dir.history("quiet");
    for r in &history {
        assert_eq!(r["outcome"], "missed", "{r}");
        assert_eq!(r["message"], "excluded by calendar now", "{r}");
        assert!(r["started_at"].is_null(), "{r}");
    }
    // `next_allowed`: its fire times inside the window collapse into the window's end,
    // so nothing is recorded meanwhile.
    assert!(
        dir.history("moved").is_empty(),
        "{:?}",
        dir.history("moved")
    );

    let jobs = dir.jobs();
    for id in ["quiet", "moved"] {
        let job = jobs.iter().find(|j| j["id"] == id).unwrap();
        assert_eq!(job["calendar"], "now", "{job}");
        let next = DateTime::parse_from_rfc3339(job["next_run_time"].as_str().unwrap()).unwrap();
        // With exclusions applied: at the window's end (moved there), or the first fire
        // time of the interval after it (skipped to), not the next second.
        if id == "moved" {
            assert_eq!(next, end, "{job}");
        } else {
            assert!(
                next >= end && next < end + chrono::Duration::seconds(1),
                "{job}"
            );
        }
    }
    let quiet = jobs.iter().find(|j| j["id"] == "quiet").unwrap();
    assert_eq!(quiet["calendar_action"], "skip");
    let moved = jobs.iter().find(|j| j["id"] == "moved").unwrap();
    assert_eq!(moved["calendar_action"], "next_allowed");

    let show = String::from_utf8(succeeded(
        "aps jobs show",
        dir.aps(&["jobs", "show", "moved"]),
    ))
    .unwrap();
    assert!(
        show.contains("calendar:  now (calendar_action = next_allowed): "),
        "{show}"
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(15)), Some(0));
}

#[test]
fn a_reload_with_a_changed_calendar_changes_the_stored_trigger() {
    let (window, _) = window_around_now();
    let config = |calendar: &str| {
        format!(
            "{HEAD}{}[[jobs]]\nid = \"j\"\ncommand = \"echo ran\"\ninterval = 1\ncalendar = \"{calendar}\"\n",
            calendars(&window)
        )
    };
    let dir = Dir::new(&config("now"));
    let daemon = dir.start();
    wait_for("an excluded fire time", Duration::from_secs(20), || {
        !dir.history("j").is_empty()
    });
    let shown = |dir: &Dir| -> Value {
        serde_json::from_slice(&succeeded(
            "aps jobs show --json",
            dir.aps(&["jobs", "show", "j", "--json"]),
        ))
        .unwrap()
    };
    assert_eq!(shown(&dir)["calendar"], "now");
    // The calendar `far` excludes nothing now: the job runs after the reload.
    dir.write(&config("far"));
    daemon.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        daemon.log().contains("config reloaded")
    });
    let job = shown(&dir);
    assert_eq!(job["calendar"], "far", "{job}");
    assert_eq!(job["definition"]["calendar"]["name"], "far", "{job}");
    wait_for("a run after the reload", Duration::from_secs(20), || {
        dir.outcomes("j").iter().any(|o| o == "success")
    });
    // The same calendar under the same name, with changed rules, is a change too.
    let changed = config("far").replace("2099-01-01", "2099-01-02");
    dir.write(&changed);
    daemon.signal("HUP");
    wait_for("the second reload", Duration::from_secs(10), || {
        daemon.log().matches("config reloaded").count() >= 2
    });
    let job = shown(&dir);
    assert!(
        job["definition"].to_string().contains("2099-01-02"),
        "{job}"
    );
}

#[test]
fn config_check_and_next_apply_calendars_and_name_bad_ones() {
    let dir = Dir::new(&format!(
        "{HEAD}[calendars.weekend]\nweekdays = [\"sat\", \"sun\"]\n\
         [[jobs]]\nid = \"daily\"\ncommand = \"true\"\ncron = \"0 9 * * *\"\ncalendar = \"weekend\"\n"
    ));
    let check = String::from_utf8(succeeded("aps config check", dir.config_check())).unwrap();
    assert!(check.contains("calendar: weekend: "), "{check}");
    assert!(
        check.contains("calendar: weekend (calendar_action = skip)"),
        "{check}"
    );
    // Its fire times shown skip Saturdays and Sundays.
    for line in check
        .lines()
        .filter(|l| l.trim_start().starts_with("next:"))
    {
        let t = DateTime::parse_from_rfc3339(line.trim_start()["next:".len()..].trim()).unwrap();
        let day = t.format("%a").to_string();
        assert!(day != "Sat" && day != "Sun", "{check}");
    }

    // 2026-12-25 is a Friday: the weekend's fire times are marked, five allowed shown.
    let out = String::from_utf8(succeeded(
        "aps next --calendar",
        std::process::Command::new(APS)
            .args([
                "next",
                "0 9 * * *",
                "--after",
                "2026-12-25T00:00:00Z",
                "--calendar",
                "weekend",
                "--config",
            ])
            .arg(dir.config())
            .output()
            .unwrap(),
    ))
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].contains("calendar weekend (skip)"), "{out}");
    assert!(
        lines[2].starts_with("2026-12-25 09:00:00") && !lines[2].contains("excluded"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("2026-12-26 09:00:00")
            && lines[3].ends_with("excluded by calendar weekend"),
        "{out}"
    );
    assert!(
        lines[4].starts_with("2026-12-27 09:00:00")
            && lines[4].ends_with("excluded by calendar weekend"),
        "{out}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(" 09:00:00") && !l.contains("excluded"))
            .count(),
        5,
        "{out}"
    );
    let out = std::process::Command::new(APS)
        .args(["next", "0 9 * * *", "--calendar", "nope", "--config"])
        .arg(dir.config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown calendar 'nope'") && err.contains("weekend"),
        "{err}"
    );

    for (text, want) in [
        (
            format!("{HEAD}[[jobs]]\nid = \"j\"\ncommand = \"true\"\ncron = \"0 9 * * *\"\ncalendar = \"nope\"\n"),
            "aps.toml:6:1: jobs[0] (id 'j'): calendar: unknown calendar 'nope'",
        ),
        (
            format!("{HEAD}[calendars.c]\nweekdays = [\"someday\"]\n"),
            "aps.toml:7:13: calendars.c.weekdays: unknown weekday 'someday'",
        ),
        (
            format!("{HEAD}[calendars.c]\nics = \"missing.ics\"\n"),
            "aps.toml:7:7: calendars.c.ics: cannot read",
        ),
        (
            format!("{HEAD}[calendars.all]\nweekdays = [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"]\n[[jobs]]\nid = \"j\"\ncommand = \"true\"\ncron = \"0 9 * * *\"\ncalendar = \"all\"\n"),
            "jobs[0] (id 'j'): calendar: job j would never run",
        ),
    ] {
        dir.write(&text);
        let out = dir.config_check();
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "want '{want}' in: {err}");
    }
}

#[test]
fn the_api_lists_calendars_and_takes_a_calendar_for_a_new_job() {
    let port = free_port();
    let (window, end) = window_around_now();
    let dir = Dir::new(&format!(
        "{HEAD}[http]\nlisten = \"127.0.0.1:{port}\"\n{}",
        calendars(&window)
    ));
    let mut daemon = dir.spawn();
    daemon.wait_healthy(port, Duration::from_secs(30));
    let base = format!("http://127.0.0.1:{port}");
    let (status, body) = http_call("GET", &format!("{base}/api/calendars"), None, None);
    assert_eq!(status, 200, "{body}");
    let listed: Vec<Value> = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = listed.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["far", "now"]);
    assert!(
        listed[1]["rules"].as_str().unwrap().contains(&window[..5]),
        "{body}"
    );

    let (status, body) = http_call(
        "POST",
        &format!("{base}/api/jobs"),
        None,
        Some(r#"{"id": "api-job", "command": "true", "interval": 1, "calendar": "nope"}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("unknown calendar 'nope'") && body.contains("\"field\":\"calendar\""),
        "{body}"
    );
    let (status, body) = http_call(
        "POST",
        &format!("{base}/api/jobs"),
        None,
        Some(
            r#"{"id": "api-job", "command": "true", "interval": 1, "calendar": "now", "calendar_action": "next_allowed"}"#,
        ),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = http_call("GET", &format!("{base}/api/jobs/api-job"), None, None);
    assert_eq!(status, 200, "{body}");
    let job: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (job["calendar"].as_str(), job["calendar_action"].as_str()),
        (Some("now"), Some("next_allowed")),
        "{job}"
    );
    assert!(
        job["calendar_rules"]
            .as_str()
            .unwrap()
            .contains(&window[..5]),
        "{job}"
    );
    let (status, body) = http_call(
        "GET",
        &format!("{base}/api/jobs/api-job/next?count=3"),
        None,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let next: Value = serde_json::from_str(&body).unwrap();
    let first = DateTime::parse_from_rfc3339(next["fire_times"][0].as_str().unwrap()).unwrap();
    assert_eq!(first, end, "{next}");
    // A change keeps the calendar unless it names another.
    let (status, body) = http_call(
        "PATCH",
        &format!("{base}/api/jobs/api-job"),
        None,
        Some(r#"{"name": "renamed"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let (_, body) = http_call("GET", &format!("{base}/api/jobs/api-job"), None, None);
    let job: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (job["name"].as_str(), job["calendar"].as_str()),
        (Some("renamed"), Some("now")),
        "{job}"
    );
    let (status, body) = http_call(
        "PATCH",
        &format!("{base}/api/jobs/api-job"),
        None,
        Some(r#"{"calendar": ""}"#),
    );
    assert_eq!(status, 200, "{body}");
    let (_, body) = http_call("GET", &format!("{base}/api/jobs/api-job"), None, None);
    let job: Value = serde_json::from_str(&body).unwrap();
    assert!(job["calendar"].is_null(), "{job}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(15)), Some(0));
}

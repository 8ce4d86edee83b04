//! End-to-end tests of retries and buffered fire times: the real `aps` daemon on
//! temporary configs with the embedded SQLite store, real commands.
//!
//! Real time: jobs fire every second at most, waits poll with a generous deadline, and
//! no test asserts on exact timings.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use support::*;

const HEAD: &str = "[scheduler]\ntimezone = \"UTC\"\npoll_interval = \"200ms\"\nshutdown_grace = \"5s\"\nkill_grace = \"1s\"\n";

fn time(r: &Value, field: &str) -> DateTime<Utc> {
    r[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing: {r}"))
        .parse()
        .unwrap()
}

#[test]
fn a_command_failing_twice_succeeds_on_its_third_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    // Fails on its first two runs, succeeds from the third on; says its attempt each
    // time. Every 6 s: the retries of the first fire time come before the second.
    let config = format!(
        "{HEAD}[[jobs]]\nid = \"flaky\"\n\
         command = 'echo x >> {c}; echo attempt=$APS_ATTEMPT; test $(wc -l < {c}) -ge 3'\n\
         interval = 6\n\
         retry = {{ attempts = 5, delay = \"1s\" }}\n",
        c = counter.display()
    );
    let d = Dir::new(&config);
    let mut daemon = d.start();
    let show = succeeded("aps jobs show", d.aps(&["jobs", "show", "flaky", "--json"]));
    let show: Value = serde_json::from_slice(&show).unwrap();
    assert_eq!(show["policy"]["retry"]["attempts"], 5, "{show}");
    assert_eq!(show["policy"]["retry"]["delay"], 1.0, "{show}");
    wait_for("three attempts", Duration::from_secs(30), || {
        d.outcomes("flaky").iter().any(|o| o == "success")
    });
    assert_eq!(daemon.stop(), Some(0));
    let all = d.history("flaky");
    let first = all.iter().map(|r| time(r, "scheduled_at")).min().unwrap();
    let mut runs: Vec<Value> = all
        .into_iter()
        .filter(|r| time(r, "scheduled_at") == first)
        .collect();
    runs.sort_by_key(|r| r["attempt"].as_u64());
    let rows: Vec<(u64, &str)> = runs
        .iter()
        .map(|r| {
            (
                r["attempt"].as_u64().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [(1, "failure"), (2, "failure"), (3, "success")],
        "{runs:#?}"
    );
    for r in &runs {
        // One fire time; each attempt says which it is.
        assert_eq!(r["scheduled_at"], runs[0]["scheduled_at"]);
        let n = r["attempt"].as_u64().unwrap();
        assert!(
            r["output"]
                .as_str()
                .unwrap()
                .contains(&format!("attempt={n}")),
            "{r}"
        );
    }
    // Each retry starts a delay (1 s) after the attempt before it ended.
    for pair in runs.windows(2) {
        let gap = time(&pair[1], "started_at") - time(&pair[0], "finished_at");
        assert!(
            gap >= chrono::Duration::milliseconds(990),
            "{gap} {pair:#?}"
        );
    }
    assert!(
        runs[0]["message"]
            .as_str()
            .unwrap()
            .contains("retry scheduled: attempt 2"),
        "{}",
        runs[0]
    );
}

#[test]
fn a_buffer_one_job_longer_than_its_interval_runs_once_after_the_long_run() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("first-done");
    let release = dir.path().join("release");
    // The first run lasts until the test releases it, the job fires every second; later
    // runs are quick.
    let config = format!(
        "{HEAD}[[jobs]]\nid = \"long\"\n\
         command = 'if [ -e {m} ]; then exit 0; fi; \
         while [ ! -e {r} ]; do sleep 0.05; done; touch {m}'\n\
         interval = 1\noverlap = \"buffer_one\"\n",
        m = marker.display(),
        r = release.display()
    );
    let d = Dir::new(&config);
    let mut daemon = d.start();
    // Released right after the third fire time skipped with a full buffer: the run then
    // ends well before the next fire time (most of a second later), so that each fire
    // time is plainly before or after its end, on a loaded machine too.
    let missed = || d.outcomes("long").iter().filter(|o| *o == "missed").count();
    wait_for("three fire times skipped", Duration::from_secs(30), || {
        missed() >= 3
    });
    std::fs::write(&release, "").unwrap();
    wait_for(
        "the long run and the fire times after it",
        Duration::from_secs(30),
        || {
            d.outcomes("long")
                .iter()
                .filter(|o| *o == "success")
                .count()
                >= 4
        },
    );
    assert_eq!(daemon.stop(), Some(0));
    let runs = d.history("long");
    let long = runs
        .iter()
        .filter(|r| r["outcome"] == "success")
        .min_by_key(|r| time(r, "scheduled_at"))
        .unwrap();
    let (from, to) = (time(long, "started_at"), time(long, "finished_at"));
    assert!(to - from >= chrono::Duration::seconds(3), "{long}");
    // The fire times that came while the long run ran: exactly one of them ran (after
    // it), the others were skipped with a full buffer.
    let during: Vec<&Value> = runs
        .iter()
        .filter(|r| {
            let t = time(r, "scheduled_at");
            t > time(long, "scheduled_at") && t < to
        })
        .collect();
    let ran: Vec<&&Value> = during
        .iter()
        .filter(|r| r["outcome"] == "success")
        .collect();
    assert_eq!(ran.len(), 1, "{during:#?}");
    assert!(time(ran[0], "started_at") >= to, "{:#?}", ran[0]);
    let skipped: Vec<&&Value> = during.iter().filter(|r| r["outcome"] == "missed").collect();
    assert!(!skipped.is_empty(), "{during:#?}");
    for r in skipped {
        assert!(
            r["message"].as_str().unwrap().contains("buffer full"),
            "{r}"
        );
    }
}

//! End-to-end tests of the run policies that act on commands: `terminate_other` and
//! `cancel_other` stop the command in flight (its whole process group) before the next
//! fire time runs. The real binary, the embedded SQLite store, real processes.
//!
//! Real time: jobs fire every 2 s, waits poll with generous deadlines.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

const HEAD: &str = "[scheduler]\ntimezone = \"UTC\"\npoll_interval = \"200ms\"\nshutdown_grace = \"1s\"\nkill_grace = \"1s\"\n";

/// The lines of `file` in `dir` (none while it does not exist).
fn lines(dir: &Dir, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.path().join(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The job's first record whose message says it was cancelled.
fn cancelled_record(dir: &Dir, job: &str) -> Option<Value> {
    dir.history(job).into_iter().find(|r| {
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("cancelled by the fire time of"))
    })
}

#[test]
fn terminate_other_kills_the_old_commands_whole_group_then_runs_the_new_fire_time() {
    let dir = Dir::new("");
    // A child in the background, in the command's process group: killed with it.
    dir.write(&format!(
        "{HEAD}[[jobs]]\nid = \"term\"\ncommand = \"sleep 7301 & echo $! >> '{d}/pids'; wait\"\ninterval = \"2s\"\noverlap = \"terminate_other\"\n",
        d = dir.path().display()
    ));
    let mut daemon = dir.start();
    wait_for("two runs started", Duration::from_secs(30), || {
        lines(&dir, "pids").len() >= 2
    });
    let first: u32 = lines(&dir, "pids")[0].parse().unwrap();
    // The second run started only once the first one's group was gone.
    wait_for(
        "the first run's child to be gone",
        Duration::from_secs(5),
        || {
            !std::fs::read(format!("/proc/{first}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("7301"))
        },
    );
    let mut record = None;
    wait_for(
        "the cancelled run's record",
        Duration::from_secs(10),
        || {
            record = cancelled_record(&dir, "term");
            record.is_some()
        },
    );
    let record = record.unwrap();
    assert_eq!(record["outcome"], "failure", "{record}");
    let message = record["message"].as_str().unwrap();
    assert!(
        message.contains("overlap = terminate_other") && message.contains("SIGKILL"),
        "{message}"
    );
    daemon.stop();
    wait_for("every sleep to be gone", Duration::from_secs(10), || {
        count_processes("sleep 7301") == 0
    });
}

#[test]
fn cancel_other_sends_sigterm_first() {
    let dir = Dir::new("");
    dir.write(&format!(
        "{HEAD}[[jobs]]\nid = \"polite\"\ncommand = \"trap 'echo term >> {d}/term; exit 3' TERM; sleep 7302 & echo $! >> '{d}/pids'; wait\"\ninterval = \"2s\"\noverlap = \"cancel_other\"\n",
        d = dir.path().display()
    ));
    let mut daemon = dir.start();
    wait_for("two runs started", Duration::from_secs(30), || {
        lines(&dir, "pids").len() >= 2
    });
    // The first run's shell trapped SIGTERM and wrote its marker.
    assert!(!lines(&dir, "term").is_empty());
    let mut record = None;
    wait_for(
        "the cancelled run's record",
        Duration::from_secs(10),
        || {
            record = cancelled_record(&dir, "polite");
            record.is_some()
        },
    );
    let record = record.unwrap();
    let message = record["message"].as_str().unwrap();
    assert!(
        message.contains("overlap = cancel_other")
            && message.contains("SIGTERM")
            && message.contains("exit status 3"),
        "{message}"
    );
    daemon.stop();
    wait_for("every sleep to be gone", Duration::from_secs(10), || {
        count_processes("sleep 7302") == 0
    });
}

#[test]
fn pause_after_failures_pauses_an_always_failing_job_and_jobs_show_says_why() {
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"broken\"\ncommand = \"exit 1\"\ninterval = \"2s\"\npause_after_failures = 2\n"
    ));
    let mut daemon = dir.start();
    let paused = || {
        dir.jobs()
            .into_iter()
            .find(|j| j["id"] == "broken")
            .and_then(|j| j["paused_reason"].as_str().map(str::to_owned))
    };
    wait_for(
        "the job paused by its policy",
        Duration::from_secs(30),
        || paused().is_some(),
    );
    let reason = paused().unwrap();
    assert!(
        reason.starts_with("paused after 2 consecutive failures; last: run ")
            && reason.contains("exit status 1"),
        "{reason}"
    );
    // Two runs, then no more.
    let outcomes = dir.outcomes("broken");
    assert_eq!(outcomes, ["failure", "failure"], "{outcomes:?}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(dir.outcomes("broken").len(), 2);
    let show = String::from_utf8(succeeded(
        "aps jobs show",
        dir.aps(&["jobs", "show", "broken"]),
    ))
    .unwrap();
    assert!(show.contains(&format!("paused:    {reason}")), "{show}");
    assert!(
        show.contains("failures:  2 in a row (pause after 2"),
        "{show}"
    );
    let runs = dir.history("broken");
    assert!(
        runs[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("paused by its policy after 2 consecutive failures")),
        "{runs:?}"
    );
    assert!(daemon.log().contains("paused after 2 consecutive failures"));
    // Resuming clears the reason.
    succeeded("aps jobs resume", dir.aps(&["jobs", "resume", "broken"]));
    let job = dir
        .jobs()
        .into_iter()
        .find(|j| j["id"] == "broken")
        .unwrap();
    assert_eq!(job["paused"], false, "{job}");
    assert_eq!(job["paused_reason"], Value::Null, "{job}");
    daemon.stop();
}

#[test]
fn a_jobs_kill_grace_overrides_the_daemons_for_a_command_that_ignores_sigterm() {
    let dir = Dir::new("");
    // The shell and its child ignore SIGTERM: only the SIGKILL after the job's 1 s grace
    // ends them (the daemon's grace is 60 s).
    dir.write(&format!(
        "[scheduler]\ntimezone = \"UTC\"\npoll_interval = \"200ms\"\nshutdown_grace = \"1s\"\nkill_grace = \"60s\"\n[[jobs]]\nid = \"deaf\"\ncommand = \"trap '' TERM; sleep 7303 & echo $! >> '{d}/pids'; wait\"\ninterval = \"2s\"\noverlap = \"cancel_other\"\nkill_grace = \"1s\"\n",
        d = dir.path().display()
    ));
    let mut daemon = dir.start();
    wait_for("two runs started", Duration::from_secs(30), || {
        lines(&dir, "pids").len() >= 2
    });
    let mut record = None;
    wait_for(
        "the cancelled run's record",
        Duration::from_secs(10),
        || {
            record = cancelled_record(&dir, "deaf");
            record.is_some()
        },
    );
    let record = record.unwrap();
    let message = record["message"].as_str().unwrap();
    assert!(
        message.contains("the process group got SIGTERM, then SIGKILL after the 1s grace"),
        "{message}"
    );
    daemon.stop();
    wait_for("every sleep to be gone", Duration::from_secs(10), || {
        count_processes("sleep 7303") == 0
    });
}

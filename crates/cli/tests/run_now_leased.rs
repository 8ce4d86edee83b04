//! End-to-end: `aps jobs run ID` on a store whose daemons keep every run as a leased
//! row (`[scheduler] leased_runs = true`): the run is a row the store starts, so that
//! it counts toward `max_instances` wherever it runs. A second `aps jobs run` while the
//! first is in flight is refused and recorded missed; the command gets its run's fence
//! and idempotency key.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{wait_for, Dir, APS};

#[test]
fn a_run_now_is_a_leased_row_counted_toward_max_instances() {
    let dir = Dir::new("[scheduler]\ntimezone = \"UTC\"\nleased_runs = true\n");
    let (started, release) = (dir.path().join("started"), dir.path().join("release"));
    // Waits for the test's word (at most 30 s), so that the second run surely finds
    // the first going.
    let command = format!(
        "echo fence=$APS_FENCE key=$APS_IDEMPOTENCY_KEY; touch {}; \
         for i in $(seq 600); do [ -e {} ] && break; sleep 0.05; done",
        started.display(),
        release.display()
    );
    let out = dir.aps(&[
        "jobs",
        "add",
        "--id",
        "once",
        "--command",
        &command,
        "--interval",
        "3600",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let first = Command::new(APS)
        .args(["jobs", "run", "once", "--config"])
        .arg(dir.config())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first run to start", Duration::from_secs(60), || {
        started.exists()
    });
    let second = dir.aps(&["jobs", "run", "once"]);
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second run started: {said}");
    assert!(
        said.contains("was not run now") && said.contains("maximum number of running instances"),
        "{said}"
    );
    std::fs::write(&release, "").unwrap();
    let first = first.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // The run's fence (a number) and its key, `job@fire-time#attempt`.
    let fence = fence_in(&printed);
    assert!(fence > 0, "{printed}");
    assert!(
        printed.contains("key=once@") && printed.contains("#1"),
        "{printed}"
    );

    let mut outcomes = dir.outcomes("once");
    outcomes.sort();
    assert_eq!(outcomes, ["missed", "success"]);
    // Its row ended with its record: a run now finds room again, with a greater fence.
    let third = dir.aps(&["jobs", "run", "once"]);
    let printed = String::from_utf8_lossy(&third.stdout);
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert!(fence_in(&printed) > fence, "{printed}");
}

/// The fence the command printed (`fence=N`); 0 when it printed none.
fn fence_in(printed: &str) -> u64 {
    printed
        .split_once("fence=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|f| f.parse().ok())
        .unwrap_or_default()
}

//! End-to-end: `aps jobs run ID --daemon` asks the running daemon (its `[http]` API) to
//! run the job now, so the job's overlap policy governs it: under `skip` a second run
//! while the first is in flight is refused; under `allow_all` both run.

mod support;

use std::time::Duration;

use support::{free_port, wait_for, Dir};

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn run_now_through_the_daemon_follows_the_overlap_policy() {
    let port = free_port();
    let dir = Dir::new(&format!(
        r#"
[scheduler]
timezone = "UTC"
[http]
listen = "127.0.0.1:{port}"
[[jobs]]
id = "one-at-a-time"
command = "sleep 4"
interval = "1h"
start_date = "2100-01-01 00:00:00"
[[jobs]]
id = "any-number"
command = "sleep 4"
interval = "1h"
start_date = "2100-01-01 00:00:00"
overlap = "allow_all"
"#
    ));
    let mut daemon = dir.spawn();
    daemon.wait_healthy(port, Duration::from_secs(30));

    let first = dir.aps(&["jobs", "run", "one-at-a-time", "--daemon"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stderr).contains("the daemon started run"),
        "{}",
        text(&first.stderr)
    );
    let second = dir.aps(&["jobs", "run", "one-at-a-time", "--daemon"]);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr).contains("refused to run job 'one-at-a-time'"),
        "{}",
        text(&second.stderr)
    );

    for _ in 0..2 {
        let out = dir.aps(&["jobs", "run", "any-number", "--daemon"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    wait_for(
        "both allow_all runs in flight",
        Duration::from_secs(10),
        || {
            dir.history("any-number")
                .iter()
                .filter(|r| r["outcome"] == "running" && !r["started_at"].is_null())
                .count()
                == 2
        },
    );

    // Without [http] (or --url) there is no daemon to ask: a usage error.
    let bare = Dir::new("[[jobs]]\nid = \"x\"\ncommand = \"true\"\ninterval = \"1h\"\n");
    let out = bare.aps(&["jobs", "run", "x", "--daemon"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("has no [http] table"),
        "{}",
        text(&out.stderr)
    );
}

//! End-to-end: `aps run` daemons of two run protocols never share a store. A daemon
//! with leased runs refuses to start while a daemon without them is live on the same
//! PostgreSQL database (`APS_TEST_POSTGRES_URL`, a database of its own, dropped at the
//! end), exits 1 saying which node and what to do, and starts once that daemon stopped;
//! `aps nodes` shows each node's protocol.

mod support;

use std::path::Path;
use std::time::Duration;

use apscheduler_testkit::server::server_url;
use serde_json::Value;
use support::databases::Database;
use support::{aps_ok, Daemon};

fn config(dir: &Path, name: &str, url: &str, leased: bool) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[scheduler]\ntimezone = \"UTC\"\nnode = \"{name}\"\nleased_runs = {leased}\n\
             [store]\nurl = \"{url}\"\n\
             [[jobs]]\nid = \"tick\"\ninterval = 3600\ncommand = \"true\"\n"
        ),
    )
    .unwrap();
    path
}

fn protocols(url: &str) -> Vec<(String, String)> {
    let listed: Vec<Value> =
        serde_json::from_slice(&aps_ok(&["nodes", "--json", "--store", url])).unwrap();
    listed
        .iter()
        .map(|n| {
            let name = n["node"].as_str().unwrap();
            let host = name.split('/').next().unwrap().to_owned();
            (host, n["protocol"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn a_daemon_of_the_other_protocol_is_refused_while_one_is_live() {
    let Some(admin) = server_url(
        "APS_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "daemons of two run protocols on one PostgreSQL database",
    ) else {
        return;
    };
    let db = Database::postgres(&admin);
    let dir = tempfile::tempdir().unwrap();
    let old = config(dir.path(), "old", &db.url, false);
    let new = config(dir.path(), "new", &db.url, true);

    let mut first = Daemon::spawn(&old, dir.path().join("old.log"));
    first.wait_started(Duration::from_secs(60));
    assert_eq!(
        protocols(&db.url),
        [("old".to_owned(), "history_records".to_owned())]
    );

    let mut refused = Daemon::spawn(&new, dir.path().join("new.log"));
    assert_eq!(refused.wait(Duration::from_secs(60)), Some(1));
    let said = refused.log();
    for part in [
        "cannot start: node old/",
        "keeps its runs as history_records and node new/",
        "as leased_runs.2: schedulers of two run protocols must not share one store",
        "[scheduler] leased_runs",
    ] {
        assert!(said.contains(part), "{part:?} not in:\n{said}");
    }
    assert!(!said.contains("Resumed scheduler job processing"), "{said}");

    // Once the first stopped cleanly (its entry removed), the second starts.
    assert_eq!(first.stop(), Some(0));
    let mut second = Daemon::spawn(&new, dir.path().join("new-again.log"));
    second.wait_started(Duration::from_secs(60));
    assert_eq!(
        protocols(&db.url),
        [("new".to_owned(), "leased_runs.2".to_owned())]
    );
    assert_eq!(second.stop(), Some(0));
}

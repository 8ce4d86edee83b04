//! The run history conformance suite: every [`RunHistory`] proves its contract with
//!
//! ```ignore
//! apscheduler_testkit::history::run_all(store.run_history().unwrap()).await;
//! ```
//!
//! on a fresh, empty namespace. Times are fixed instants; nothing sleeps.
//!
//! | check | contract |
//! |---|---|
//! | [`check_record_and_read_back`] | every field comes back identical, times to the microsecond; a second write of a run id replaces the first |
//! | [`check_query_filters_and_order`] | job, outcome, since/until, node filters combine; newest first; the limit holds |
//! | [`check_prune_by_count`] | the newest `keep` ended runs of a job stay; running ones always stay; other jobs untouched |
//! | [`check_prune_by_age`] | ended runs scheduled before the cut go, running ones stay |
//! | [`check_interrupt_running`] | a node's running records become `interrupted`; other nodes' stay running |
//! | [`check_interrupt_running_hands_each_record_once`] | callers interrupting the same node at once (each with its own message) each get different records, together all of them (each run is recovered once) |
//! | [`check_latest_runs`] | the newest record of each job asked for, across more jobs than one batch |
//! | [`check_large_and_odd_output`] | 4 KiB of output, quotes, newlines, NUL and non-ASCII text round-trip |
//! | [`check_attempt_backfill_due_at`](crate::history_fields::check_attempt_backfill_due_at) | attempt, backfill and due time round-trip through every read and rewrite; a waiting record is interrupted with its due time |
//! | [`check_record_starts`](crate::history_starts::check_record_starts) | a start is written only on a `running` record without one (or an absent one, whole); refused on an `interrupted` or ended record, which stays as it is; accepted again, unchanged, on a started one |
//! | [`check_record_starts_against_interrupt`](crate::history_starts::check_record_starts_against_interrupt) | racing an interruption, each start is accepted exactly when the interrupted record shows it |
//! | [`check_node_registry`] | heartbeats create and replace a node's entry, listed by name, times to the microsecond; removal says whether there was one |

use std::sync::Arc;

use apscheduler_core::{NodeInfo, RunHistory, RunOutcome, RunProtocol, RunQuery, RunRecord};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// A fixed instant the checks count from (2100-01-01 00:00:00.000001 UTC).
pub fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap() + Duration::microseconds(1)
}

/// A finished, successful record of `job` scheduled `secs` after [`base`].
pub fn record(run_id: &str, job: &str, secs: i64) -> RunRecord {
    let at = base() + Duration::seconds(secs);
    RunRecord {
        run_id: run_id.to_owned(),
        job_id: job.to_owned(),
        scheduled_at: at,
        started_at: Some(at + Duration::microseconds(1500)),
        finished_at: Some(at + Duration::milliseconds(250)),
        outcome: RunOutcome::Success,
        exit_code: Some(0),
        http_status: None,
        output: format!("output of {run_id}\n"),
        message: None,
        node: "node-a".to_owned(),
        attempt: 1,
        backfill: false,
        due_at: None,
    }
}

fn ids(records: &[RunRecord]) -> Vec<&str> {
    records.iter().map(|r| r.run_id.as_str()).collect()
}

fn query(job: &str) -> RunQuery {
    RunQuery {
        job_id: Some(job.to_owned()),
        limit: 1000,
        ..RunQuery::default()
    }
}

/// Runs every check against `history` (prepared first), each on its own job ids.
pub async fn run_all(history: Arc<dyn RunHistory>) {
    history.prepare().await.expect("prepare");
    history.prepare().await.expect("prepare is idempotent");
    check_record_and_read_back(&*history).await;
    check_query_filters_and_order(&*history).await;
    check_prune_by_count(&*history).await;
    check_prune_by_age(&*history).await;
    check_interrupt_running(&*history).await;
    check_interrupt_running_hands_each_record_once(&*history).await;
    check_large_and_odd_output(&*history).await;
    check_latest_runs(&*history).await;
    check_node_registry(&*history).await;
    check_running_elsewhere(&*history).await;
    crate::history_fields::check_attempt_backfill_due_at(&*history).await;
    crate::history_starts::check_record_starts(&*history).await;
    crate::history_starts::check_record_starts_against_interrupt(&*history).await;
}

/// `running_elsewhere` lists the `running` records of the other nodes: not the asking
/// node's, not ended ones; a run that ends leaves the list.
pub async fn check_running_elsewhere(history: &dyn RunHistory) {
    let run = |id: &str, job: &str, node: &str, running: bool| {
        let mut r = record(id, job, 0);
        r.node = node.to_owned();
        if running {
            r.outcome = RunOutcome::Running;
            r.finished_at = None;
        }
        r
    };
    let records = vec![
        run("re-1", "re-a", "re-n1", true),
        run("re-2", "re-a", "re-n1", true),
        run("re-3", "re-a", "re-n2", true),
        run("re-4", "re-a", "re-n1", false),
        run("re-5", "re-b", "re-n2", true),
        run("re-6", "re-c", "re-self", true),
    ];
    history.record_runs(&records).await.unwrap();
    // Other checks leave running records of their own jobs: only these count here.
    let ours = |node: &'static str| async move {
        let mut runs: Vec<(String, String, String)> = history
            .running_elsewhere(node)
            .await
            .expect("running_elsewhere")
            .into_iter()
            .filter(|r| r.job_id.starts_with("re-"))
            .map(|r| (r.job_id, r.run_id, r.node))
            .collect();
        runs.sort();
        runs
    };
    let runs = |p: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
        p.iter()
            .map(|(j, r, n)| ((*j).to_owned(), (*r).to_owned(), (*n).to_owned()))
            .collect()
    };
    assert_eq!(
        ours("re-self").await,
        runs(&[
            ("re-a", "re-1", "re-n1"),
            ("re-a", "re-2", "re-n1"),
            ("re-a", "re-3", "re-n2"),
            ("re-b", "re-5", "re-n2"),
        ])
    );
    assert_eq!(
        ours("re-n2").await,
        runs(&[
            ("re-a", "re-1", "re-n1"),
            ("re-a", "re-2", "re-n1"),
            ("re-c", "re-6", "re-self"),
        ])
    );
    // re-1 ends.
    history
        .record_runs(&[run("re-1", "re-a", "re-n1", false)])
        .await
        .unwrap();
    assert_eq!(
        ours("re-self").await,
        runs(&[
            ("re-a", "re-2", "re-n1"),
            ("re-a", "re-3", "re-n2"),
            ("re-b", "re-5", "re-n2"),
        ])
    );
}

/// A node entry named `node`, heartbeating `secs` after [`base`].
pub fn node(node: &str, secs: i64, running: u32) -> NodeInfo {
    NodeInfo {
        node: node.to_owned(),
        host: node.split('/').next().unwrap_or(node).to_owned(),
        pid: 4242,
        started_at: base(),
        heartbeat_at: base() + Duration::seconds(secs) + Duration::microseconds(7),
        running,
        protocol: RunProtocol::LeasedRuns,
    }
}

/// The node registry kept beside the history (every history with records keeps one).
pub async fn check_node_registry(history: &dyn RunHistory) {
    let nodes = history
        .nodes()
        .expect("a store with run history keeps a node registry");
    let b = NodeInfo {
        protocol: RunProtocol::HistoryRecords,
        ..node("host-b/17", 1, 0)
    };
    let a = node("host-a/9 ünïcode", 2, 3);
    nodes.heartbeat(&b).await.expect("heartbeat b");
    nodes.heartbeat(&a).await.expect("heartbeat a");
    let listed = nodes.list_nodes().await.expect("list");
    let ours: Vec<&NodeInfo> = listed
        .iter()
        .filter(|n| n.node.starts_with("host-"))
        .collect();
    assert_eq!(ours, vec![&a, &b], "listed by name, every field back");
    // A protocol a later release may name is kept as written.
    let later = NodeInfo {
        protocol: RunProtocol::Other("runs_v3".into()),
        ..node("host-b/17", 5, 12)
    };
    nodes.heartbeat(&later).await.expect("heartbeat again");
    let listed = nodes.list_nodes().await.expect("list");
    let b_now: Vec<&NodeInfo> = listed.iter().filter(|n| n.node == "host-b/17").collect();
    assert_eq!(b_now, vec![&later], "a heartbeat replaces the entry");
    assert!(nodes.remove_node("host-b/17").await.expect("remove"));
    assert!(!nodes.remove_node("host-b/17").await.expect("remove again"));
    assert!(nodes
        .remove_node("host-a/9 ünïcode")
        .await
        .expect("remove a"));
    let listed = nodes.list_nodes().await.expect("list");
    assert!(
        listed.iter().all(|n| !n.node.starts_with("host-")),
        "{listed:?}"
    );
}

/// The newest record of each job asked for; jobs without records are left out.
pub async fn check_latest_runs(history: &dyn RunHistory) {
    let mut records = Vec::new();
    for job in 0..250 {
        for i in 0..3 {
            records.push(record(
                &format!("lr-{job}-{i}"),
                &format!("lr-job-{job}"),
                2000 + i,
            ));
        }
    }
    history.record_runs(&records).await.unwrap();
    let mut ids: Vec<String> = (0..250).map(|j| format!("lr-job-{j}")).collect();
    ids.push("lr-nobody".into());
    let mut latest: Vec<String> = history
        .latest_runs(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    latest.sort();
    let mut want: Vec<String> = (0..250).map(|j| format!("lr-{j}-2")).collect();
    want.sort();
    assert_eq!(latest, want);
    assert!(history.latest_runs(&[]).await.unwrap().is_empty());
}

/// Every field round-trips; a second write replaces the first.
pub async fn check_record_and_read_back(history: &dyn RunHistory) {
    let mut running = record("rb-1", "rb-job", 0);
    running.outcome = RunOutcome::Running;
    running.finished_at = None;
    running.exit_code = None;
    running.output = String::new();
    history.record_runs(&[running.clone()]).await.unwrap();
    assert_eq!(
        history.query_runs(&query("rb-job")).await.unwrap(),
        vec![running.clone()]
    );

    let mut ended = running.clone();
    ended.outcome = RunOutcome::Failure;
    ended.finished_at = Some(running.scheduled_at + Duration::seconds(3));
    ended.exit_code = Some(-2);
    ended.output = "boom\n".into();
    ended.message = Some("exit status 254".into());
    let mut http = record("rb-2", "rb-job", -10);
    http.exit_code = None;
    http.http_status = Some(503);
    http.started_at = None;
    history
        .record_runs(&[ended.clone(), http.clone()])
        .await
        .unwrap();
    assert_eq!(
        history.query_runs(&query("rb-job")).await.unwrap(),
        vec![ended, http],
        "the second write of a run id replaces the first; fields and microseconds kept"
    );
}

/// Filters combine; newest first by scheduled time then run id; the limit holds.
pub async fn check_query_filters_and_order(history: &dyn RunHistory) {
    let mut records = Vec::new();
    for i in 0..6 {
        let job = if i % 2 == 0 { "q-even" } else { "q-odd" };
        // From base() + 1000 s on: clear of the other checks' records.
        let mut r = record(&format!("q-{i}"), job, 1000 + i);
        if i == 3 {
            r.outcome = RunOutcome::Missed;
            r.node = "node-b".into();
        }
        records.push(r);
    }
    // Same scheduled time as q-5: the run id breaks the tie.
    records.push(record("q-9", "q-odd", 1005));
    history.record_runs(&records).await.unwrap();

    let all = RunQuery {
        limit: 1000,
        since: Some(base() + Duration::seconds(1000)),
        until: Some(base() + Duration::seconds(1100)),
        ..RunQuery::default()
    };
    let found = history.query_runs(&all).await.unwrap();
    assert_eq!(
        ids(&found),
        ["q-9", "q-5", "q-4", "q-3", "q-2", "q-1", "q-0"]
    );

    let odd = history.query_runs(&query("q-odd")).await.unwrap();
    assert_eq!(ids(&odd), ["q-9", "q-5", "q-3", "q-1"]);

    let missed = RunQuery {
        outcome: Some(RunOutcome::Missed),
        ..all.clone()
    };
    assert_eq!(ids(&history.query_runs(&missed).await.unwrap()), ["q-3"]);

    let on_b = RunQuery {
        node: Some("node-b".into()),
        ..all.clone()
    };
    assert_eq!(ids(&history.query_runs(&on_b).await.unwrap()), ["q-3"]);

    let window = RunQuery {
        since: Some(base() + Duration::seconds(1002)),
        until: Some(base() + Duration::seconds(1004)),
        ..all.clone()
    };
    assert_eq!(
        ids(&history.query_runs(&window).await.unwrap()),
        ["q-3", "q-2"],
        "since is inclusive, until exclusive"
    );

    let limited = RunQuery {
        limit: 2,
        ..all.clone()
    };
    assert_eq!(
        ids(&history.query_runs(&limited).await.unwrap()),
        ["q-9", "q-5"]
    );

    let nobody = RunQuery {
        job_id: Some("q-nobody".into()),
        ..all
    };
    assert!(history.query_runs(&nobody).await.unwrap().is_empty());
}

/// Keeps the newest `keep` ended runs of one job; running records and other jobs stay.
pub async fn check_prune_by_count(history: &dyn RunHistory) {
    let mut records: Vec<RunRecord> = (0..10)
        .map(|i| record(&format!("pc-{i}"), "pc-job", i))
        .collect();
    let mut running = record("pc-run", "pc-job", -100);
    running.outcome = RunOutcome::Running;
    running.finished_at = None;
    records.push(running);
    records.push(record("pc-other", "pc-other-job", -50));
    history.record_runs(&records).await.unwrap();

    let removed = history.prune_job_runs("pc-job", 3).await.unwrap();
    assert_eq!(removed, 7);
    let left = history.query_runs(&query("pc-job")).await.unwrap();
    assert_eq!(ids(&left), ["pc-9", "pc-8", "pc-7", "pc-run"]);
    assert_eq!(
        history
            .query_runs(&query("pc-other-job"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(history.prune_job_runs("pc-job", 3).await.unwrap(), 0);
    assert_eq!(history.prune_job_runs("pc-job", 0).await.unwrap(), 3);
    assert_eq!(
        ids(&history.query_runs(&query("pc-job")).await.unwrap()),
        ["pc-run"]
    );
}

/// Ended runs scheduled before the cut go; running records stay.
pub async fn check_prune_by_age(history: &dyn RunHistory) {
    // Far before base(): the other checks' records (at or after base() - 100 s) stay.
    let old = |id: &str, secs: i64| record(id, "pa-job", -1_000_000 + secs);
    let mut running = old("pa-running", 0);
    running.outcome = RunOutcome::Running;
    running.finished_at = None;
    history
        .record_runs(&[old("pa-0", 0), old("pa-1", 10), old("pa-2", 20), running])
        .await
        .unwrap();
    let cut = base() + Duration::seconds(-1_000_000 + 10);
    assert_eq!(history.prune_runs_before(cut).await.unwrap(), 1);
    assert_eq!(
        ids(&history.query_runs(&query("pa-job")).await.unwrap()),
        ["pa-2", "pa-1", "pa-running"],
        "the cut is exclusive: a run scheduled at it stays"
    );
}

/// Four callers interrupting the same node at once (live nodes reaping the same dead
/// one, each naming itself in its message as the reaper does) get disjoint records,
/// together every one: the caller that gets a record is the one that recovers its run,
/// so no run may go to two.
pub async fn check_interrupt_running_hands_each_record_once(history: &dyn RunHistory) {
    let running: Vec<RunRecord> = (0..40)
        .map(|i| {
            let mut r = record(&format!("iro-{i:02}"), "iro-job", i);
            r.outcome = RunOutcome::Running;
            r.finished_at = None;
            r.node = "dead-twice".to_owned();
            r
        })
        .collect();
    history.record_runs(&running).await.unwrap();
    let now = base() + Duration::seconds(60);
    let messages: Vec<String> = (0..4)
        .map(|i| format!("taken for dead; recorded by node-{i}"))
        .collect();
    let reap = |i: usize| history.interrupt_running("dead-twice", now, &messages[i]);
    let (a, b, c, d) = tokio::join!(reap(0), reap(1), reap(2), reap(3));
    let mut handed: Vec<String> = [a, b, c, d]
        .into_iter()
        .flat_map(|got| got.unwrap())
        .map(|r| r.run_id)
        .collect();
    handed.sort_unstable();
    let all: Vec<String> = running.iter().map(|r| r.run_id.clone()).collect();
    assert_eq!(
        handed, all,
        "each running record is handed to exactly one of the callers"
    );
}

/// A node's running records become interrupted; another node's stay running.
pub async fn check_interrupt_running(history: &dyn RunHistory) {
    let running = |id: &str, node: &str| {
        let mut r = record(id, "ir-job", 0);
        r.run_id = id.to_owned();
        r.outcome = RunOutcome::Running;
        r.finished_at = None;
        r.node = node.to_owned();
        r
    };
    history
        .record_runs(&[
            running("ir-1", "dead"),
            running("ir-2", "dead"),
            running("ir-3", "alive"),
        ])
        .await
        .unwrap();
    let now = base() + Duration::seconds(60);
    let changed = history
        .interrupt_running("dead", now, "the scheduler stopped during the run")
        .await
        .unwrap();
    let mut changed_ids = ids(&changed);
    changed_ids.sort_unstable();
    assert_eq!(changed_ids, ["ir-1", "ir-2"]);
    let mut found = history.query_runs(&query("ir-job")).await.unwrap();
    found.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    let states: Vec<_> = found
        .iter()
        .map(|r| {
            (
                r.run_id.as_str(),
                r.outcome,
                r.finished_at,
                r.message.as_deref(),
            )
        })
        .collect();
    let why = Some("the scheduler stopped during the run");
    assert_eq!(
        states,
        [
            ("ir-1", RunOutcome::Interrupted, Some(now), why),
            ("ir-2", RunOutcome::Interrupted, Some(now), why),
            ("ir-3", RunOutcome::Running, None, None),
        ]
    );
}

/// Large and awkward output survives.
pub async fn check_large_and_odd_output(history: &dyn RunHistory) {
    let mut r = record("odd-1", "odd 'job' \"quoted\" ünïcode", 0);
    r.output = "x".repeat(4000) + "'\"\\\n\t\0ü€😀";
    r.message = Some("it's \"odd\"; DROP TABLE runs; --".into());
    history.record_runs(&[r.clone()]).await.unwrap();
    let found = history.query_runs(&query(&r.job_id)).await.unwrap();
    assert_eq!(found, vec![r]);
}

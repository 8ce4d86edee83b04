//! The Redis run history (`APS_TEST_REDIS_URL`): the testkit's history suite, index
//! consistency across rewrites and pruning, unreadable records, query order and paging
//! against the reference semantics, and (ignored) a 1,000,000-record measurement.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use apscheduler_core::{ErrorKind, JobStore, RunHistory, RunOutcome, RunQuery, RunRecord};
use apscheduler_testkit::history::{base, record};
use apscheduler_testkit::history_fields::{check_old_format_record, old_format_record};
use chrono::Duration;
use redis::AsyncCommands;

fn history(url: &str, prefix: &str) -> Arc<dyn RunHistory> {
    common::store(url, prefix)
        .run_history()
        .expect("the Redis store keeps history")
}

fn ids(records: &[RunRecord]) -> Vec<&str> {
    records.iter().map(|r| r.run_id.as_str()).collect()
}

fn running(mut r: RunRecord) -> RunRecord {
    r.outcome = RunOutcome::Running;
    r.finished_at = None;
    r.exit_code = None;
    r
}

/// What `query` must return from `all`: the reference semantics (as the memory store).
fn expected(all: &[RunRecord], query: &RunQuery) -> Vec<RunRecord> {
    let mut found: Vec<RunRecord> = all.iter().filter(|r| query.matches(r)).cloned().collect();
    found.sort_by(|a, b| (b.scheduled_at, &b.run_id).cmp(&(a.scheduled_at, &a.run_id)));
    found.truncate(query.limit);
    found
}

/// Members of a sorted set.
async fn members(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> BTreeSet<String> {
    conn.zrange::<_, Vec<String>>(key, 0, -1)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Every key under `prefix`.
async fn keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        found.extend(batch);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

/// Checks that the index sets hold exactly the stored runs: `runs` every run id, each
/// run in the job, outcome and node set its hash names and in no other, scored by its
/// `scheduled_at`. Returns the stored run ids.
async fn assert_consistent(url: &str, prefix: &str) -> BTreeSet<String> {
    let mut conn = common::raw(url).await;
    let mut runs = BTreeMap::new();
    let mut sets = Vec::new();
    for key in keys(&mut conn, prefix).await {
        let name = &key[prefix.len()..];
        if let Some(id) = name.strip_prefix("run:") {
            let fields: BTreeMap<String, String> = conn.hgetall(&key).await.unwrap();
            runs.insert(id.to_owned(), fields);
        } else if name.starts_with("runs") {
            sets.push(name.to_owned());
        }
    }
    let ids: BTreeSet<String> = runs.keys().cloned().collect();
    let all = format!("{prefix}runs");
    assert_eq!(
        members(&mut conn, &all).await,
        ids,
        "`runs` holds every run"
    );
    let mut placed: BTreeMap<(String, String), usize> = BTreeMap::new();
    for set in sets.iter().filter(|s| *s != "runs") {
        let (kind, value) = set["runs:".len()..].split_once(':').expect("an index set");
        let field = match kind {
            "job" => "job_id",
            "outcome" => "outcome",
            "node" => "node",
            other => panic!("unexpected key {prefix}{set} ({other})"),
        };
        let scored: Vec<(String, i64)> = conn
            .zrange_withscores(format!("{prefix}{set}"), 0, -1)
            .await
            .unwrap();
        assert!(!scored.is_empty(), "{set}: empty sets are deleted");
        for (id, score) in scored {
            let fields = runs
                .get(&id)
                .unwrap_or_else(|| panic!("{set} holds {id}, which is not stored"));
            assert_eq!(fields[field], value, "{set} holds {id}");
            assert_eq!(
                fields["scheduled_at"],
                score.to_string(),
                "{set}: {id}'s score"
            );
            *placed.entry((id, kind.to_owned())).or_default() += 1;
        }
    }
    for id in &ids {
        for kind in ["job", "outcome", "node"] {
            assert_eq!(
                placed.get(&(id.clone(), kind.to_owned())),
                Some(&1),
                "{id} is in exactly one {kind} set"
            );
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_history_conformance() {
    let Some(url) = common::redis_url("run_history_conformance") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    let store = common::store(&url, &prefix);
    apscheduler_testkit::history::run_all(store.run_history().unwrap()).await;
    assert_consistent(&url, &prefix).await;
}

/// A run rewritten from `running` to `success` is found only as a success, in the
/// success set only; a rewrite to another job and node moves it between those sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_move_runs_between_index_sets() {
    let Some(url) = common::redis_url("rewrites_move_runs_between_index_sets") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    let history = history(&url, &prefix);
    let by = |outcome| RunQuery {
        outcome: Some(outcome),
        ..RunQuery::default()
    };

    let started = running(record("mv-1", "mv-job", 0));
    history
        .record_runs(std::slice::from_ref(&started))
        .await
        .unwrap();
    assert_eq!(
        ids(&history.query_runs(&by(RunOutcome::Running)).await.unwrap()),
        ["mv-1"]
    );

    let mut ended = started.clone();
    ended.outcome = RunOutcome::Success;
    ended.finished_at = Some(started.scheduled_at + Duration::seconds(2));
    ended.exit_code = Some(0);
    history
        .record_runs(std::slice::from_ref(&ended))
        .await
        .unwrap();
    assert!(history
        .query_runs(&by(RunOutcome::Running))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        history.query_runs(&by(RunOutcome::Success)).await.unwrap(),
        [ended.clone()]
    );
    let mut conn = common::raw(&url).await;
    let running_set = format!("{prefix}runs:outcome:running");
    assert!(!conn.exists::<_, bool>(&running_set).await.unwrap());
    assert_consistent(&url, &prefix).await;

    // Another job, node and time: the old job and node sets go, fields dropped go too.
    let mut moved = ended.clone();
    moved.job_id = "mv-other".into();
    moved.node = "node-z".into();
    moved.scheduled_at = ended.scheduled_at + Duration::microseconds(7);
    moved.exit_code = None;
    moved.message = Some(String::new());
    history
        .record_runs(std::slice::from_ref(&moved))
        .await
        .unwrap();
    let old_job = RunQuery {
        job_id: Some("mv-job".into()),
        ..RunQuery::default()
    };
    assert!(history.query_runs(&old_job).await.unwrap().is_empty());
    let old_node = RunQuery {
        node: Some("node-a".into()),
        ..RunQuery::default()
    };
    assert!(history.query_runs(&old_node).await.unwrap().is_empty());
    assert_eq!(
        history.query_runs(&RunQuery::default()).await.unwrap(),
        [moved]
    );
    assert_eq!(assert_consistent(&url, &prefix).await.len(), 1);
}

/// Both prunings leave the hash and every index set agreeing, running runs in place,
/// and return what they removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_the_index_sets_consistent() {
    let Some(url) = common::redis_url("pruning_keeps_the_index_sets_consistent") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    let history = history(&url, &prefix);
    // 2,500 runs of one job (more than one pruning batch), every 10th running, over two
    // nodes and three outcomes, many of them at the same time; and another job.
    let mut all = Vec::new();
    for i in 0..2500i64 {
        let mut r = record(&format!("p-{i:05}"), "p-job", i / 7);
        r.node = format!("node-{}", i % 2);
        r.outcome = [RunOutcome::Success, RunOutcome::Failure, RunOutcome::Missed][i as usize % 3];
        if i % 10 == 0 {
            r = running(r);
        }
        all.push(r);
    }
    all.extend((0..50).map(|i| record(&format!("o-{i:02}"), "p-other", i)));
    for batch in all.chunks(700) {
        history.record_runs(batch).await.unwrap();
    }
    assert_eq!(assert_consistent(&url, &prefix).await.len(), 2550);

    // Keep the newest 100 ended runs of p-job: 2,250 ended, so 2,150 go.
    assert_eq!(history.prune_job_runs("p-job", 100).await.unwrap(), 2150);
    let left = assert_consistent(&url, &prefix).await;
    let ended: Vec<&RunRecord> = {
        let mut ended: Vec<&RunRecord> = all
            .iter()
            .filter(|r| r.job_id == "p-job" && r.outcome.is_final())
            .collect();
        ended.sort_by(|a, b| (b.scheduled_at, &b.run_id).cmp(&(a.scheduled_at, &a.run_id)));
        ended
    };
    let want: BTreeSet<String> = all
        .iter()
        .filter(|r| r.job_id != "p-job" || !r.outcome.is_final())
        .chain(ended.iter().take(100).copied())
        .map(|r| r.run_id.clone())
        .collect();
    assert_eq!(left, want);
    assert_eq!(history.prune_job_runs("p-job", 100).await.unwrap(), 0);

    // Everything ended before base() + 200 s goes; the 250 running runs stay.
    let cut = base() + Duration::seconds(200);
    let doomed = all
        .iter()
        .filter(|r| left.contains(&r.run_id) && r.outcome.is_final() && r.scheduled_at < cut)
        .count() as u64;
    assert_eq!(history.prune_runs_before(cut).await.unwrap(), doomed);
    let left = assert_consistent(&url, &prefix).await;
    let running_left = all
        .iter()
        .filter(|r| left.contains(&r.run_id) && r.outcome == RunOutcome::Running)
        .count();
    assert_eq!(running_left, 250);
    assert_eq!(history.prune_runs_before(cut).await.unwrap(), 0);

    // Keeping none leaves only the running runs of p-job.
    history.prune_job_runs("p-job", 0).await.unwrap();
    let left = assert_consistent(&url, &prefix).await;
    assert!(left
        .iter()
        .filter(|id| id.starts_with("p-"))
        .all(|id| id[2..].parse::<u32>().unwrap() % 10 == 0));
    // Removing everything ended leaves no empty set behind (checked by assert_consistent).
    history
        .prune_runs_before(base() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(assert_consistent(&url, &prefix).await.len(), 250);
}

/// Queries walk pages of the index across runs with equal times and agree with the
/// reference semantics for every filter combination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_match_the_reference_across_pages_and_ties() {
    let Some(url) = common::redis_url("queries_match_the_reference_across_pages_and_ties") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let history = history(&url, &prefixes.fresh());
    // A small linear congruential generator: the same records every run.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % n
    };
    let outcomes = [
        RunOutcome::Success,
        RunOutcome::Failure,
        RunOutcome::Running,
    ];
    let mut all = Vec::new();
    for i in 0..5000 {
        // 2,500 runs at base() (more than a page share that score), the others at 16
        // distinct times (hundreds share each).
        let mut r = record(&format!("t-{:08x}", next(1 << 32)), "", 0);
        if i >= 2500 {
            r.scheduled_at += Duration::seconds(next(8) as i64 + 1);
            r.scheduled_at += Duration::microseconds(next(2) as i64);
        }
        r.run_id.push_str(&format!("-{i}"));
        r.job_id = format!("job-{}", next(3));
        r.outcome = outcomes[next(3) as usize];
        r.node = format!("node-{}", next(2));
        all.push(r);
    }
    history.record_runs(&all).await.unwrap();

    let mut checked = 0;
    for job in [None, Some("job-1")] {
        for outcome in [None, Some(RunOutcome::Failure)] {
            for node in [None, Some("node-0"), Some("node-9")] {
                for (since, until) in [(None, None), (Some(2), Some(6)), (Some(0), Some(1))] {
                    for limit in [1, 7, 1001, 6000] {
                        let query = RunQuery {
                            job_id: job.map(str::to_owned),
                            outcome,
                            node: node.map(str::to_owned),
                            since: since.map(|s| base() + Duration::seconds(s)),
                            until: until.map(|s| base() + Duration::seconds(s)),
                            limit,
                        };
                        let found = history.query_runs(&query).await.unwrap();
                        assert!(found == expected(&all, &query), "{query:?}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 144);
    // A bound with a fraction of a microsecond: since is inclusive, until exclusive.
    let at = base() + Duration::seconds(3);
    let query = RunQuery {
        since: Some(at - Duration::nanoseconds(1)),
        until: Some(at + Duration::nanoseconds(1500)),
        limit: 6000,
        ..RunQuery::default()
    };
    let found = history.query_runs(&query).await.unwrap();
    assert!(!found.is_empty());
    assert_eq!(found, expected(&all, &query));
    let zero = RunQuery {
        limit: 0,
        ..RunQuery::default()
    };
    assert!(history.query_runs(&zero).await.unwrap().is_empty());
}

/// A stored record with an unknown outcome is a `Serialization` error naming the run and
/// the value; a record whose hash is gone is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_records_are_serialization_errors() {
    let Some(url) = common::redis_url("unreadable_records_are_serialization_errors") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    let history = history(&url, &prefix);
    history
        .record_runs(&[
            record("bad-1", "bad-job", 0),
            record("gone-1", "bad-job", 1),
        ])
        .await
        .unwrap();
    let mut conn = common::raw(&url).await;
    let _: i64 = conn.del(format!("{prefix}run:gone-1")).await.unwrap();
    assert_eq!(
        ids(&history.query_runs(&RunQuery::default()).await.unwrap()),
        ["bad-1"]
    );

    let _: i64 = conn
        .hset(format!("{prefix}run:bad-1"), "outcome", "exploded")
        .await
        .unwrap();
    let err = history.query_runs(&RunQuery::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(
        err.message().contains("'bad-1'") && err.message().contains("'exploded'"),
        "{err}"
    );
}

/// A record as written before `attempt`, `backfill` and `due_at` existed (a hash
/// without those fields: what a first, scheduled run still writes) reads as attempt 1,
/// not a backfill, with no due time; a retry's hash holds the three fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_format_record_reads_with_defaults() {
    let Some(url) = common::redis_url("an_old_format_record_reads_with_defaults") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    let history = history(&url, &prefix);
    history.record_runs(&[old_format_record()]).await.unwrap();
    let mut conn = common::raw(&url).await;
    let mut fields: Vec<String> = conn.hkeys(format!("{prefix}run:old-1")).await.unwrap();
    fields.sort();
    assert_eq!(
        fields,
        [
            "exit_code",
            "finished_at",
            "job_id",
            "message",
            "node",
            "outcome",
            "output",
            "scheduled_at",
            "started_at"
        ],
        "the hash layout of the earlier release"
    );
    check_old_format_record(&*history).await;

    let mut retry = record("new-1", "new-job", 0);
    retry.attempt = 3;
    retry.backfill = true;
    retry.due_at = Some(base() + Duration::microseconds(5));
    history.record_runs(&[retry.clone()]).await.unwrap();
    let stored: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(format!("{prefix}run:new-1"))
        .arg(&["attempt", "backfill", "due_at"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let due = (base() + Duration::microseconds(5))
        .timestamp_micros()
        .to_string();
    assert_eq!(
        stored,
        [Some("3".to_owned()), Some("1".to_owned()), Some(due)]
    );
    assert_eq!(
        history
            .query_runs(&RunQuery {
                job_id: Some("new-job".to_owned()),
                ..RunQuery::default()
            })
            .await
            .unwrap(),
        [retry]
    );
}

/// Redis down: `Unavailable`, for the history as for the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable() {
    let store = apscheduler_store_redis::RedisJobStore::builder("redis://127.0.0.1:1/")
        .connection_timeout(StdDuration::from_millis(500))
        .reconnect_retries(0)
        .build()
        .unwrap();
    let history = store.run_history().unwrap();
    let err = history.prepare().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let err = history.query_runs(&RunQuery::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

/// The server's `used_memory`, in bytes.
async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Loads 1,000,000 records (10,000 jobs × 100 runs, through `record_runs` in batches of
/// 1,000) and times `query_runs(limit 100)` without a filter and with each filter; the
/// keys are deleted afterwards. Run it with
///
/// ```text
/// APS_TEST_REDIS_URL=redis://127.0.0.1:6379/ cargo test -p apscheduler-store-redis \
///     --release --test history -- --ignored --nocapture million_runs
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "loads 1,000,000 records into Redis (about 1.2 GB, one to two minutes)"]
async fn million_runs() {
    let Some(url) = common::redis_url("million_runs") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let history = history(&url, &prefixes.fresh());
    const JOBS: usize = 10_000;
    const RUNS: usize = 100;
    let nodes = ["node-a", "node-b", "node-c", "node-d"];
    let mut conn = common::raw(&url).await;
    let memory_before = used_memory(&mut conn).await;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for run in 0..RUNS {
        for job in 0..JOBS {
            let n = run * JOBS + job;
            // Every job fires at the same minute: 10,000 runs share each score.
            let mut r = record(
                &format!(
                    "{:08x}-{run:03}-{job:05}",
                    (n as u64).wrapping_mul(2_654_435_761) as u32
                ),
                &format!("job-{job:05}"),
                60 * run as i64,
            );
            r.node = nodes[job % nodes.len()].to_owned();
            r.output = format!("run {run} of job {job}: {}\n", "ok ".repeat(20));
            // Outcomes spread over jobs and runs, except `missed`: every run of every
            // 100th job (all on node-c), so `missed` + `node-d` has no match at all.
            r.outcome = match (job % 100, (run * 31 + job * 7) % 100) {
                (98, _) => RunOutcome::Missed,
                (_, 0..=89) => RunOutcome::Success,
                (_, 90..=97) => RunOutcome::Failure,
                _ => RunOutcome::Timeout,
            };
            if run == RUNS - 1 && job % 100 == 0 {
                r = running(r);
            }
            batch.push(r);
            if batch.len() == 1000 {
                history.record_runs(&batch).await.unwrap();
                batch.clear();
            }
        }
    }
    let loaded = started.elapsed();
    println!(
        "loaded {} records in {loaded:.1?}; Redis memory grew by {} MB",
        JOBS * RUNS,
        used_memory(&mut conn).await.saturating_sub(memory_before) >> 20
    );

    let at = |secs: i64| Some(base() + Duration::seconds(secs));
    let q = |job: Option<&str>, outcome, node: Option<&str>, since, until| RunQuery {
        job_id: job.map(str::to_owned),
        outcome,
        node: node.map(str::to_owned),
        since,
        until,
        limit: 100,
    };
    let (failure, missed) = (Some(RunOutcome::Failure), Some(RunOutcome::Missed));
    let queries = [
        ("no filter", q(None, None, None, None, None)),
        (
            "job (100 runs)",
            q(Some("job-04242"), None, None, None, None),
        ),
        ("outcome failure (8%)", q(None, failure, None, None, None)),
        ("outcome missed (1%)", q(None, missed, None, None, None)),
        (
            "outcome running (100 runs)",
            q(None, Some(RunOutcome::Running), None, None, None),
        ),
        ("node (25%)", q(None, None, Some("node-c"), None, None)),
        (
            "node without runs",
            q(None, None, Some("node-z"), None, None),
        ),
        (
            "since/until (10 of 100 minutes)",
            q(None, None, None, at(60 * 40), at(60 * 50)),
        ),
        (
            "until (the oldest minute)",
            q(None, None, None, None, at(60)),
        ),
        (
            "job + outcome failure",
            q(Some("job-00007"), failure, None, None, None),
        ),
        (
            "job + node + since",
            q(Some("job-00042"), None, Some("node-c"), at(600), None),
        ),
        (
            "outcome failure + node",
            q(None, failure, Some("node-b"), None, None),
        ),
        (
            "outcome failure + node + since/until",
            q(None, failure, Some("node-b"), at(60 * 40), at(60 * 50)),
        ),
        (
            "outcome missed + node-d (no common run: walks all 10,000 missed)",
            q(None, missed, Some("node-d"), None, None),
        ),
    ];
    for (name, query) in &queries {
        let mut times = Vec::new();
        let mut count = 0;
        for _ in 0..5 {
            let t = Instant::now();
            count = history.query_runs(query).await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "query_runs(limit 100) {name}: {count} records, median {:.2?}, max {:.2?}",
            times[2], times[4]
        );
        assert!(
            times[2] < StdDuration::from_millis(200),
            "{name}: {:?}",
            times[2]
        );
    }
    let t = Instant::now();
    let interrupted = history
        .interrupt_running("node-a", base() + Duration::days(1), "stopped")
        .await
        .unwrap();
    println!(
        "interrupt_running: {} records in {:.2?}",
        interrupted.len(),
        t.elapsed()
    );
    let t = Instant::now();
    let removed = history.prune_job_runs("job-00001", 10).await.unwrap();
    println!(
        "prune_job_runs(keep 10): {removed} removed in {:.2?}",
        t.elapsed()
    );
    let t = Instant::now();
    let removed = history.prune_runs_before(at(60).unwrap()).await.unwrap();
    println!(
        "prune_runs_before (one minute's runs): {removed} removed in {:.2?}",
        t.elapsed()
    );
    let t = Instant::now();
    drop(prefixes);
    println!("deleted the keys in {:.1?}", t.elapsed());
}

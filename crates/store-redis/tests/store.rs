//! Redis-specific behaviour: corrupt rows, the key layout, prefixes, lazy connection.

mod common;

use std::time::Duration;

use apscheduler_core::{ErrorKind, Job, JobRelease, JobStore};
use apscheduler_store_redis::{validate_prefix, RedisJobStore, DEFAULT_PREFIX};
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};
use chrono_tz::Tz;
use redis::AsyncCommands;
use serde_json::{json, Value};

fn job(id: &str, t: i64) -> Job {
    sample_job(id, Some(at(t)), interval_trigger(60))
}

fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| &*j.id).collect()
}

/// The micros score of `at(t)`.
fn micros(t: i64) -> i64 {
    at(t).timestamp_micros()
}

/// The testkit's shared scheduler check, each store opened anew on one prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_over_store_shared_check() {
    let Some(url) = common::redis_url("scheduler_over_store_shared_check") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    apscheduler_testkit::scheduler::check_scheduler_over_store(|| {
        std::sync::Arc::new(common::store(&url, &prefix)) as std::sync::Arc<dyn JobStore>
    })
    .await;
}

/// Declared jobs across restarts and replicas (`apscheduler_testkit::declared`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_jobs_keep_their_schedule() {
    let Some(url) = common::redis_url("declared_jobs_keep_their_schedule") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    apscheduler_testkit::declared::check_declared_jobs(|| {
        std::sync::Arc::new(common::store(&url, &prefix)) as std::sync::Arc<dyn JobStore>
    })
    .await;
}

/// The testkit's shared corrupt-job check, with entries planted directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_job_set_aside_shared_check() {
    let Some(url) = common::redis_url("corrupt_job_set_aside_shared_check") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let store = common::store(&url, &prefixes.fresh());
    let keys = store.keys().clone();
    apscheduler_testkit::store::check_corrupt_job_set_aside(&store, |id, bytes, t| {
        let (url, keys) = (&url, &keys);
        async move {
            let mut conn = common::raw(url).await;
            let _: i64 = conn.hset(&keys.jobs, &id, bytes).await.unwrap();
            let _: i64 = conn.zadd(&keys.run_times, &id, t).await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_are_reported_once_and_kept() {
    let Some(url) = common::redis_url("corrupt_rows_are_reported_once_and_kept") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    let store = RedisJobStore::builder(&url)
        .prefix(&prefix)
        .max_state_bytes(4096)
        .build()
        .unwrap();
    store.start("default").await.unwrap();
    let keys = store.keys().clone();
    store.add_job(job("good-1", 0), false).await.unwrap();
    store.add_job(job("good-2", 1), false).await.unwrap();

    // Garbage written behind the store's back, due with the good jobs.
    let valid = {
        let mut conn = common::raw(&url).await;
        let state: Vec<u8> = conn.hget(&keys.jobs, "good-1").await.unwrap();
        serde_json::from_slice::<Value>(&state).unwrap()
    };
    let with = |id: &str, field: &str, value: Value| {
        let mut v = valid.clone();
        v["id"] = json!(id);
        v[field] = value;
        serde_json::to_vec(&v).unwrap()
    };
    let rows: Vec<(&str, Vec<u8>, i64)> = vec![
        ("bad-json", b"{not json".to_vec(), 0),
        ("bad-bytes", vec![0xff, 0xfe, 0x00, 0x80], 0),
        ("bad-version", with("bad-version", "version", json!(99)), 0),
        (
            "bad-trigger",
            with("bad-trigger", "trigger", json!({"type": "lunar"})),
            0,
        ),
        ("bad-id", with("somebody-else", "version", json!(1)), 0),
        (
            "bad-zone",
            with("bad-zone", "next_run_time_zone", json!("Mars/Olympus")),
            0,
        ),
        (
            "bad-huge",
            with("bad-huge", "name", json!("x".repeat(5000))),
            0,
        ),
        ("bad-later", b"[]".to_vec(), 500),
    ];
    {
        let mut conn = common::raw(&url).await;
        for (id, state, t) in &rows {
            let _: i64 = conn.hset(&keys.jobs, *id, state).await.unwrap();
            let _: i64 = conn.zadd(&keys.run_times, *id, micros(*t)).await.unwrap();
        }
    }

    let first = store
        .acquire_due_jobs("s1", utc(10), 100, LEASE)
        .await
        .unwrap();
    assert_eq!(
        ids(&first.jobs),
        ["good-1", "good-2"],
        "good jobs keep running"
    );
    let mut reported: Vec<&str> = first.corrupt.iter().map(|c| c.id.as_str()).collect();
    reported.sort_unstable();
    assert_eq!(
        reported,
        [
            "bad-bytes",
            "bad-huge",
            "bad-id",
            "bad-json",
            "bad-trigger",
            "bad-version",
            "bad-zone"
        ],
        "every corrupt due job is reported: {:?}",
        first.corrupt
    );
    let reason = |id: &str| {
        first
            .corrupt
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.error.clone())
            .unwrap()
    };
    assert!(
        reason("bad-json").contains("invalid state JSON"),
        "{}",
        reason("bad-json")
    );
    assert!(
        reason("bad-version").contains("version 99"),
        "{}",
        reason("bad-version")
    );
    assert!(
        reason("bad-trigger").contains("trigger"),
        "{}",
        reason("bad-trigger")
    );
    assert!(
        reason("bad-id").contains("somebody-else"),
        "{}",
        reason("bad-id")
    );
    assert!(
        reason("bad-zone").contains("Mars/Olympus"),
        "{}",
        reason("bad-zone")
    );
    assert!(
        reason("bad-huge").contains("4096"),
        "{}",
        reason("bad-huge")
    );

    // Released with a new run time, the good jobs come due again; the corrupt ones are
    // never reported again, by this scheduler or another, however late.
    let releases = first
        .jobs
        .iter()
        .map(|j| {
            JobRelease::Update(Job {
                next_run_time: Some(at(20)),
                ..j.clone()
            })
        })
        .collect();
    store.release_jobs("s1", releases).await.unwrap();
    let second = store
        .acquire_due_jobs("s2", utc(100), 100, LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&second.jobs), ["good-1", "good-2"]);
    assert!(
        second.corrupt.is_empty(),
        "reported twice: {:?}",
        second.corrupt
    );
    let releases = second
        .jobs
        .iter()
        .map(|j| {
            JobRelease::Update(Job {
                next_run_time: Some(at(1_000_000)),
                ..j.clone()
            })
        })
        .collect();
    store.release_jobs("s2", releases).await.unwrap();
    let late = store
        .acquire_due_jobs("s3", utc(10_000), 100, LEASE)
        .await
        .unwrap();
    let late_ids: Vec<&str> = late.corrupt.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        late_ids,
        ["bad-later"],
        "a corrupt job is reported when it comes due"
    );
    assert!(late.jobs.is_empty());
    let again = store
        .acquire_due_jobs("s3", utc(20_000), 100, LEASE)
        .await
        .unwrap();
    assert!(again.corrupt.is_empty() && again.jobs.is_empty());

    // Kept, marked, out of the run times; nothing deleted.
    let mut conn = common::raw(&url).await;
    for (id, state, _) in &rows {
        let stored: Option<Vec<u8>> = conn.hget(&keys.jobs, *id).await.unwrap();
        assert_eq!(stored.as_ref(), Some(state), "{id} was changed or deleted");
        let score: Option<f64> = conn.zscore(&keys.run_times, *id).await.unwrap();
        assert_eq!(score, None, "{id} is still in run_times");
        let claimed: Option<f64> = conn.zscore(&keys.claimed, *id).await.unwrap();
        assert_eq!(claimed, None, "{id} is still claimed");
        let lease: Option<String> = conn.hget(&keys.leases, *id).await.unwrap();
        assert_eq!(lease, None, "{id} is still leased");
        let why: Option<String> = conn.hget(&keys.corrupt, *id).await.unwrap();
        assert!(why.is_some(), "{id} is not marked corrupt");
    }
    let listed = store.corrupt_jobs().await.unwrap();
    assert_eq!(listed.len(), rows.len());

    // Reading a corrupt job is a Serialization error; listing skips it.
    let err = store.lookup_job("bad-json").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    let all = store.get_all_jobs().await.unwrap();
    assert_eq!(ids(&all), ["good-1", "good-2"]);
    assert_eq!(
        store.get_next_run_time().await.unwrap(),
        Some(utc(1_000_000)),
        "corrupt jobs are not scheduled"
    );

    // A corrupt job can be removed, or replaced by a good state.
    store.remove_job("bad-json").await.unwrap();
    let gone: bool = conn.hexists(&keys.jobs, "bad-json").await.unwrap();
    let mark: bool = conn.hexists(&keys.corrupt, "bad-json").await.unwrap();
    assert!(!gone && !mark, "remove_job left bad-json behind");
    store
        .add_job(job("bad-version", 30_000), true)
        .await
        .unwrap();
    let mark: bool = conn.hexists(&keys.corrupt, "bad-version").await.unwrap();
    assert!(!mark, "a replaced job is still marked corrupt");
    let fixed = store
        .acquire_due_jobs("s4", utc(30_000), 100, LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&fixed.jobs), ["bad-version"]);
    assert!(fixed.corrupt.is_empty());
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_layout() {
    let Some(url) = common::redis_url("key_layout") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    let store = common::store(&url, &prefix);
    store.start("default").await.unwrap();
    let keys = store.keys().clone();
    assert_eq!(keys.jobs, format!("{prefix}jobs"));
    assert_eq!(keys.run_times, format!("{prefix}run_times"));
    assert_eq!(keys.claimed, format!("{prefix}claimed"));
    assert_eq!(keys.leases, format!("{prefix}leases"));
    assert_eq!(keys.corrupt, format!("{prefix}corrupt"));

    let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
    let a = sample_job(
        "a",
        Some(at(10).with_timezone(&tokyo)),
        interval_trigger(60),
    );
    store.add_job(a, false).await.unwrap();
    store
        .add_job(sample_job("p", None, interval_trigger(60)), false)
        .await
        .unwrap();

    let mut conn = common::raw(&url).await;
    let state: String = conn.hget(&keys.jobs, "a").await.unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["version"], json!(1));
    assert_eq!(state["id"], json!("a"));
    assert_eq!(state["task"], json!("noop"), "tasks are stored by name");
    assert_eq!(state["trigger"]["type"], json!("interval"));
    assert_eq!(state["next_run_time"], json!("2100-01-01T09:00:10+09:00"));
    assert_eq!(state["next_run_time_zone"], json!("Asia/Tokyo"));
    let score: Option<i64> = conn.zscore(&keys.run_times, "a").await.unwrap();
    assert_eq!(score, Some(micros(10)));
    let paused: Option<i64> = conn.zscore(&keys.run_times, "p").await.unwrap();
    assert_eq!(paused, None, "a paused job is not in run_times");

    let before = chrono::Utc::now().timestamp_micros();
    let claimed = store
        .acquire_due_jobs("node-1", utc(15), 10, Duration::from_secs(30))
        .await
        .unwrap();
    let after = chrono::Utc::now().timestamp_micros();
    assert_eq!(ids(&claimed.jobs), ["a"]);
    assert_eq!(
        claimed.jobs[0].next_run_time.map(|t| t.timezone()),
        Some(tokyo),
        "the run time comes back in its zone"
    );
    let score: Option<i64> = conn.zscore(&keys.run_times, "a").await.unwrap();
    assert_eq!(score, None, "a claimed job leaves run_times");
    // The lease runs 30 s from the server's `TIME` (the same machine's clock here),
    // not from the caller's `now`; the job is claimable again at the later of its run
    // time (in 2100) and the lease's end.
    let lease: String = conn.hget(&keys.leases, "a").await.unwrap();
    let (expiry, rest) = lease.split_once('|').unwrap();
    assert_eq!(rest, format!("{}|node-1", micros(10)));
    let expiry: i64 = expiry.parse().unwrap();
    let lease_us = 30_000_000;
    assert!(
        (before + lease_us - 1_000_000..=after + lease_us + 1_000_000).contains(&expiry),
        "the lease ends 30 s after the server's time: {expiry} not within [{before}, {after}] + 30 s"
    );
    let until: Option<i64> = conn.zscore(&keys.claimed, "a").await.unwrap();
    assert_eq!(
        until,
        Some(micros(10)),
        "claimable again at the later of its run time and the lease's end"
    );
    assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(10)));

    let mut next = claimed.jobs[0].clone();
    next.next_run_time = Some(at(70).with_timezone(&tokyo));
    store
        .release_jobs("node-1", vec![JobRelease::Update(next)])
        .await
        .unwrap();
    let score: Option<i64> = conn.zscore(&keys.run_times, "a").await.unwrap();
    assert_eq!(score, Some(micros(70)));
    let lease: Option<String> = conn.hget(&keys.leases, "a").await.unwrap();
    assert_eq!(lease, None, "released");
    let until: Option<i64> = conn.zscore(&keys.claimed, "a").await.unwrap();
    assert_eq!(until, None, "released");

    store.remove_all_jobs().await.unwrap();
    let left: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
    assert!(left.is_empty(), "remove_all_jobs left {left:?}");
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_check_never_runs_early_below_the_microsecond() {
    let Some(url) = common::redis_url("due_check_never_runs_early_below_the_microsecond") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let store = common::store(&url, &prefixes.fresh());
    store.start("default").await.unwrap();
    let t = at(1) + chrono::Duration::nanoseconds(500);
    store
        .add_job(sample_job("a", Some(t), interval_trigger(60)), false)
        .await
        .unwrap();
    let early = store
        .acquire_due_jobs("s1", utc(1), 10, LEASE)
        .await
        .unwrap();
    assert!(early.jobs.is_empty(), "due 500 ns after now");
    let next = utc(1) + chrono::Duration::microseconds(1);
    assert_eq!(store.get_next_run_time().await.unwrap(), Some(next));
    let due = store.acquire_due_jobs("s1", next, 10, LEASE).await.unwrap();
    assert_eq!(ids(&due.jobs), ["a"]);
    assert_eq!(
        due.jobs[0].next_run_time,
        Some(t),
        "the exact run time is kept"
    );
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_jobs_are_refused() {
    let Some(url) = common::redis_url("oversized_jobs_are_refused") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let store = RedisJobStore::builder(&url)
        .prefix(prefixes.fresh())
        .max_state_bytes(2048)
        .build()
        .unwrap();
    let big = Job {
        args: std::sync::Arc::new(vec![json!("y".repeat(4000))]),
        ..job("big", 1)
    };
    let err = store.add_job(big.clone(), false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(err.message().contains("2048"), "{err}");
    assert!(store.lookup_job("big").await.unwrap().is_none());
    store.add_job(job("big", 1), false).await.unwrap();
    let err = store.update_job(big).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(store
        .lookup_job("big")
        .await
        .unwrap()
        .unwrap()
        .args
        .is_empty());
    store.shutdown().await.unwrap();
}

#[test]
fn prefixes_are_validated() {
    for bad in [
        "",
        "a b",
        "tab\there",
        "line\n",
        "nul\0",
        "del\u{7f}",
        "nbsp\u{a0}x",
    ] {
        let err = validate_prefix(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert!(err.message().contains("'prefix'"), "{err}");
        let err = RedisJobStore::builder("redis://127.0.0.1/")
            .prefix(bad)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
    }
    let long = "p".repeat(257);
    assert!(validate_prefix(&long).is_err());
    for good in ["apscheduler.", "{aps}:", "app:jobs/", "ünï-çødé.", "x"] {
        validate_prefix(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
    let store = RedisJobStore::new("redis://127.0.0.1/").unwrap();
    assert_eq!(store.prefix(), DEFAULT_PREFIX);
    assert_eq!(store.keys().jobs, "apscheduler.jobs");
    assert_eq!(store.keys().run_times, "apscheduler.run_times");
    let err = RedisJobStore::new("http://not-redis/").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn connects_lazily_and_reports_unavailable() {
    let url = format!("redis://127.0.0.1:{}/", closed_port());
    // Building never connects.
    let store = RedisJobStore::builder(&url)
        .connection_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(
        format!("{store:?}").contains("connected: false"),
        "{store:?}"
    );
    let err = store.start("default").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(
        std::error::Error::source(&err).is_some(),
        "the redis error is the source"
    );
    let err = store.lookup_job("a").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let err = store
        .acquire_due_jobs("s1", utc(0), 10, LEASE)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

/// Redis tells the other schedulers on a prefix about each change (`PUBLISH` on
/// `<prefix>changes`), and a subscriber whose connection was killed subscribes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifies_changes() {
    let Some(url) = common::redis_url("notifies_changes") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    let listening = common::store(&url, &prefix);
    let writer = common::store(&url, &prefix);
    apscheduler_testkit::store::check_change_notifications(&listening, &writer, || async {
        let mut raw = common::raw(&url).await;
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut raw)
            .await
            .unwrap();
    })
    .await;
}

/// Two schedulers 5 s apart on one prefix (`apscheduler_testkit::scheduler::check_clock_skew`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_never_starts_a_fire_time_twice() {
    let Some(url) = common::redis_url("clock_skew_never_starts_a_fire_time_twice") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    let (ahead, on_time) = apscheduler_testkit::scheduler::check_clock_skew(|| {
        std::sync::Arc::new(common::store(&url, &prefix)) as std::sync::Arc<dyn JobStore>
    })
    .await;
    eprintln!("clock skew: runs by the node ahead {ahead}, on time {on_time}");
}

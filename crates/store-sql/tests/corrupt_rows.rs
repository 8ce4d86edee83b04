//! Rows that cannot be read, on every backend: reported once when claimed (with their
//! id and why), marked, kept and never due again, left out of listings, refused by
//! lookup, repaired by a valid write; through the engine, reported as job errors.
//! And listing reads every readable row, in order.

mod support;

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{ErrorKind, Job, JobRelease, JobStore, Task};
use apscheduler_store_sql::SqlJobStore;
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};
use chrono::Utc;
use serde_json::{json, Value};
use support::{ids, job, on_every_backend, Raw, Tables, TempDir};

/// The state JSON of a valid job, to damage.
fn state_of(id: &str, t: i64) -> Value {
    serde_json::to_value(job(id, t).to_state().unwrap()).unwrap()
}

fn micros(t: i64) -> Option<i64> {
    Some(at(t).timestamp_micros())
}

on_every_backend!(
    listing_reads_every_readable_row_in_order,
    corrupt_rows_are_reported_once_and_kept,
    corrupt_job_set_aside_shared_check,
);

/// The testkit's shared corrupt-job check, with rows planted in the table directly.
async fn corrupt_job_set_aside_shared_check(tables: &Tables) {
    let table = tables.table();
    let store = tables.store_on(&table);
    let raw = Raw::connect(tables.url()).await;
    apscheduler_testkit::store::check_corrupt_job_set_aside(&store, |id, bytes, t| {
        let (raw, table) = (&raw, &table);
        async move {
            let state = String::from_utf8_lossy(&bytes);
            raw.insert_row(table, &id, Some(t), &state, 1).await;
        }
    })
    .await;
    raw.close().await;
}

/// Rows that cannot be read are reported once (in `Acquired::corrupt`, with their id),
/// marked, kept, never due again; other jobs keep being claimed; listing skips them,
/// lookup fails with `Serialization`; writing a valid job over one repairs it.
async fn corrupt_rows_are_reported_once_and_kept(tables: &Tables) {
    let table = tables.table();
    let store = SqlJobStore::builder(tables.url())
        .table_name(table.clone())
        .max_state_bytes(4096)
        .build()
        .unwrap();
    store.start("default").await.unwrap();
    store.add_job(job("a", 0), false).await.unwrap();
    store.add_job(job("c", 2), false).await.unwrap();
    store
        .add_job(sample_job("p", None, interval_trigger(60)), false)
        .await
        .unwrap();
    // A task nobody registered is not corruption: the engine reports it when it runs.
    let unknown_task = Job {
        task: Task::Named("no-such-task".into()),
        ..job("u", 3)
    };
    store.add_job(unknown_task, false).await.unwrap();

    let raw = Raw::connect(tables.url()).await;
    let mut version = state_of("b-version", 1);
    version["version"] = json!(99);
    let mut trigger = state_of("b-trigger", 1);
    trigger["trigger"] = json!({"type": "lunar", "phase": "full"});
    let mut zone = state_of("b-zone", 1);
    zone["next_run_time_zone"] = json!("Mars/Olympus_Mons");
    let mut big = state_of("b-big", 1);
    big["args"] = json!(["x".repeat(5000)]);
    let mut deep = state_of("b-deep", 1);
    let mut nested = json!(1);
    for _ in 0..100 {
        nested = json!([nested]);
    }
    deep["args"] = json!([nested]);
    let planted: Vec<(&str, String, i32, &str)> = vec![
        ("b-json", "{not json".to_owned(), 1, "invalid state JSON"),
        (
            "b-version",
            version.to_string(),
            1,
            "unknown format version 99",
        ),
        (
            "b-column-version",
            state_of("b-column-version", 1).to_string(),
            7,
            "unknown format version 7",
        ),
        ("b-trigger", trigger.to_string(), 1, "lunar"),
        ("b-zone", zone.to_string(), 1, "Mars/Olympus_Mons"),
        (
            "b-big",
            big.to_string(),
            1,
            "over this store's limit of 4096 bytes",
        ),
        ("b-deep", deep.to_string(), 1, "deeper than 64 levels"),
        (
            "b-other",
            state_of("someone-else", 1).to_string(),
            1,
            "belongs to job 'someone-else'",
        ),
    ];
    for (id, state, fv, _) in &planted {
        raw.insert_row(&table, id, micros(1), state, *fv).await;
    }
    let mut planted_ids: Vec<&str> = planted.iter().map(|p| p.0).collect();
    planted_ids.sort_unstable();

    // The first claim reports each damaged row once, with its id and why.
    let first = store
        .acquire_due_jobs("s1", utc(10), 100, LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&first.jobs), ["a", "c", "u"]);
    let mut reported: Vec<&str> = first.corrupt.iter().map(|c| c.id.as_str()).collect();
    reported.sort_unstable();
    assert_eq!(reported, planted_ids);
    for (id, _, _, why) in &planted {
        let c = first.corrupt.iter().find(|c| c.id == *id).unwrap();
        assert!(c.error.contains(id), "{c:?}");
        assert!(
            c.error.contains(why),
            "{id}: expected '{why}' in {:?}",
            c.error
        );
    }

    // Kept, marked, not leased.
    let t = raw.quote(&table);
    assert_eq!(
        raw.int(&format!(
            "SELECT COUNT(*) FROM {t} WHERE corrupt IS NOT NULL AND lease_holder IS NULL"
        ))
        .await,
        Some(planted.len() as i64)
    );
    let listed = store.corrupt_jobs().await.unwrap();
    assert_eq!(listed.len(), planted.len());
    assert!(listed.iter().all(|c| c.error.contains(&c.id)));

    // Never due again, never counted as the next run time.
    let again = store
        .acquire_due_jobs("s2", utc(20), 100, LEASE)
        .await
        .unwrap();
    assert!(
        again.jobs.is_empty() && again.corrupt.is_empty(),
        "{again:?}"
    );
    let releases = first
        .jobs
        .iter()
        .map(|j| {
            JobRelease::Update(Job {
                next_run_time: Some(at(30)),
                ..j.clone()
            })
        })
        .collect();
    store.release_jobs("s1", releases).await.unwrap();
    assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(30)));
    let later = store
        .acquire_due_jobs("s2", utc(100), 100, LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&later.jobs), ["a", "c", "u"]);
    assert!(
        later.corrupt.is_empty(),
        "reported twice: {:?}",
        later.corrupt
    );

    // Listing skips them; lookup says why.
    let all = store.get_all_jobs().await.unwrap();
    assert_eq!(ids(&all), ["a", "c", "u", "p"]);
    let err = store.lookup_job("b-json").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    assert!(err.message().contains("b-json"), "{err}");
    // An unmarked damaged row (never due, so never claimed) is refused the same way.
    raw.insert_row(&table, "b-paused", None, "[]", 1).await;
    assert_eq!(
        store.lookup_job("b-paused").await.unwrap_err().kind(),
        ErrorKind::Serialization
    );
    assert_eq!(store.get_all_jobs().await.unwrap().len(), 4);
    // Its id is taken.
    assert_eq!(
        store
            .add_job(job("b-json", 1), false)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );

    // A valid job written over a corrupt row repairs it; remove deletes one.
    store.update_job(job("b-json", 40)).await.unwrap();
    store.add_job(job("b-trigger", 41), true).await.unwrap();
    store.remove_job("b-version").await.unwrap();
    assert_eq!(store.corrupt_jobs().await.unwrap().len(), planted.len() - 3);
    let repaired = store
        .acquire_due_jobs("s3", utc(50), 100, LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&repaired.jobs), ["b-json", "b-trigger"]);
    assert!(repaired.corrupt.is_empty());
    store.shutdown().await.unwrap();
    raw.close().await;
}

/// Through the engine: a corrupt row is reported once as `EVENT_JOB_ERROR` of kind
/// `corrupt`, and a job whose task is not registered as kind `unknown-task`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_reports_corrupt_rows_and_unknown_tasks() {
    use apscheduler_core::event::EVENT_JOB_ERROR;
    use apscheduler_core::Event;
    use apscheduler_engine::{BackgroundScheduler, Engine};
    use std::sync::Mutex;

    let dir = TempDir::new();
    let url = dir.sqlite_url("jobs.sqlite");
    let table = "jobs";
    let setup = SqlJobStore::builder(url.clone())
        .table_name(table)
        .build()
        .unwrap();
    setup.start("default").await.unwrap();
    let now = Utc::now().with_timezone(&chrono_tz::UTC);
    let unknown = Job {
        task: Task::Named("no-such-task".into()),
        next_run_time: Some(now),
        misfire_grace_time: None,
        ..job("unknown", 0)
    };
    setup.add_job(unknown, false).await.unwrap();
    setup.shutdown().await.unwrap();
    let raw = Raw::connect(&url).await;
    raw.insert_row(table, "broken", Some(now.timestamp_micros()), "{oops", 1)
        .await;
    raw.close().await;

    let errors: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = errors.clone();
    let store = SqlJobStore::builder(url).table_name(table).build().unwrap();
    let engine = Engine::builder()
        .timezone(chrono_tz::UTC)
        .jobstore("default", Arc::new(store))
        .build();
    tokio::task::spawn_blocking(move || {
        let scheduler = BackgroundScheduler::from_engine(engine).unwrap();
        scheduler.add_listener(
            move |event: &Event| {
                if let Event::Execution {
                    job_id,
                    exception: Some(failure),
                    ..
                } = event
                {
                    seen.lock()
                        .unwrap()
                        .push((job_id.to_string(), failure.kind.clone()));
                }
            },
            EVENT_JOB_ERROR,
        );
        scheduler.start(false).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        scheduler.shutdown(true).unwrap();
    })
    .await
    .unwrap();
    let mut errors = errors.lock().unwrap().clone();
    errors.sort();
    assert_eq!(
        errors,
        [
            ("broken".to_owned(), "corrupt".to_owned()),
            ("unknown".to_owned(), "unknown-task".to_owned()),
        ]
    );
}

/// `get_all_jobs` (SQLite reads the table as one value): every readable row, in both
/// state formats, ids with quotes, backslashes and non-ASCII characters, by next run
/// time then id, paused last (ids compared only where every collation agrees); damaged rows that no claim has marked yet are left out,
/// and the listing does not fail on them.
async fn listing_reads_every_readable_row_in_order(tables: &Tables) {
    let table = tables.table();
    let json_store = tables.store_on(&table);
    let bin_store = SqlJobStore::builder(tables.url())
        .table_name(table.clone())
        .state_format(apscheduler_core::codec::StateFormat::Bincode)
        .build()
        .unwrap();
    json_store.start("default").await.unwrap();
    bin_store.start("default").await.unwrap();
    json_store.add_job(job("b\"quote", 5), false).await.unwrap();
    bin_store.add_job(job("a\\slash", 5), false).await.unwrap();
    json_store.add_job(job("é-accent", 3), false).await.unwrap();
    bin_store.add_job(job("z-bin", 2), false).await.unwrap();
    let paused = sample_job("paused-1", None, interval_trigger(60));
    json_store.add_job(paused, false).await.unwrap();
    bin_store
        .add_job(sample_job("paused-0", None, interval_trigger(60)), false)
        .await
        .unwrap();
    let raw = Raw::connect(tables.url()).await;
    raw.insert_row(&table, "c-broken", micros(1), "{not json", 1)
        .await;
    let all = json_store.get_all_jobs().await.unwrap();
    assert_eq!(
        ids(&all),
        [
            "z-bin",
            "é-accent",
            "a\\slash",
            "b\"quote",
            "paused-0",
            "paused-1"
        ]
    );
    let expected = job("b\"quote", 5);
    let read = all.iter().find(|j| &*j.id == "b\"quote").unwrap();
    assert_eq!(
        (read.next_run_time, read.name.clone(), read.kwargs.clone()),
        (
            expected.next_run_time,
            expected.name.clone(),
            expected.kwargs.clone()
        )
    );
    assert_eq!(bin_store.get_all_jobs().await.unwrap().len(), 6);
    raw.close().await;
    json_store.shutdown().await.unwrap();
    bin_store.shutdown().await.unwrap();
}

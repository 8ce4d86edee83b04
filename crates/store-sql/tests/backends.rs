//! Behaviour beyond the conformance suite, on every backend: corrupt rows, the schema
//! version table and its migrations, table name and URL validation, size and nesting
//! bounds, sub-microsecond run times, lazy connection and `Unavailable` errors.

mod support;

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{ErrorKind, Job, JobRelease, JobState, JobStore, Task};
use apscheduler_store_sql::{SqlJobStore, SCHEMA_VERSION};
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};
use chrono::Utc;
use serde_json::{json, Value};
use support::{server_url, Raw, Tables, TempDir, MYSQL_ENV, POSTGRES_ENV};

fn job(id: &str, t: i64) -> Job {
    sample_job(id, Some(at(t)), interval_trigger(60))
}

fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| &*j.id).collect()
}

/// The state JSON of a valid job, to damage.
fn state_of(id: &str, t: i64) -> Value {
    serde_json::to_value(job(id, t).to_state().unwrap()).unwrap()
}

fn micros(t: i64) -> Option<i64> {
    Some(at(t).timestamp_micros())
}

/// Runs `check` against SQLite (temporary file), PostgreSQL and MySQL/MariaDB.
macro_rules! on_every_backend {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let dir = super::TempDir::new();
                let tables = super::Tables::new(&dir.sqlite_url("jobs.sqlite"));
                super::$check(&tables).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(url) = super::server_url(super::POSTGRES_ENV, concat!("postgres::", stringify!($check))) else {
                    return;
                };
                super::$check(&super::Tables::new(&url)).await;
            })*
        }
        mod mysql {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(url) = super::server_url(super::MYSQL_ENV, concat!("mysql::", stringify!($check))) else {
                    return;
                };
                super::$check(&super::Tables::new(&url)).await;
            })*
        }
    };
}

on_every_backend!(
    listing_reads_every_readable_row_in_order,
    corrupt_rows_are_reported_once_and_kept,
    schema_version_table_and_idempotent_migrations,
    refuses_newer_schemas_and_foreign_tables,
    bounds_on_what_is_stored,
    sub_microsecond_run_times_are_never_early,
    reconnects_after_shutdown,
    two_schedulers_share_a_table,
    releases_round_trip_every_value,
    both_state_formats_share_a_table,
    upgrades_a_version_1_table,
    corrupt_job_set_aside_shared_check,
    scheduler_over_store_shared_check,
    clock_skew_never_starts_a_fire_time_twice,
);

/// Two schedulers 5 s apart on one table (`apscheduler_testkit::scheduler::check_clock_skew`).
async fn clock_skew_never_starts_a_fire_time_twice(tables: &Tables) {
    let table = tables.table();
    let (ahead, on_time) = apscheduler_testkit::scheduler::check_clock_skew(|| {
        Arc::new(tables.store_on(&table)) as Arc<dyn JobStore>
    })
    .await;
    eprintln!("clock skew: runs by the node ahead {ahead}, on time {on_time}");
}

/// The testkit's shared scheduler check, each store opened anew on one table.
async fn scheduler_over_store_shared_check(tables: &Tables) {
    let table = tables.table();
    apscheduler_testkit::scheduler::check_scheduler_over_store(|| {
        Arc::new(tables.store_on(&table)) as Arc<dyn JobStore>
    })
    .await;
}

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

/// A store writing bincode and one writing JSON on the same table read each other's
/// rows through every write path (insert, upsert, update, release); a bincode row
/// keeps `state` empty and its bytes in `state_bin`, and is smaller than its JSON.
async fn both_state_formats_share_a_table(tables: &Tables) {
    use apscheduler_core::codec::StateFormat;
    use apscheduler_testkit::store::{sample_args, sample_kwargs};
    let table = tables.table();
    let make = |format| {
        SqlJobStore::builder(tables.url())
            .table_name(table.clone())
            .state_format(format)
            .build()
            .unwrap()
    };
    let (bin, text) = (make(StateFormat::Bincode), make(StateFormat::Json));
    bin.start("default").await.unwrap();
    text.start("default").await.unwrap();
    let rich = |id: &str, t: i64| Job {
        args: Arc::new(sample_args()),
        kwargs: Arc::new(sample_kwargs()),
        ..job(id, t)
    };
    bin.add_job(rich("b", 1), false).await.unwrap();
    text.add_job(rich("t", 1), false).await.unwrap();
    bin.add_jobs(vec![rich("t", 2), rich("b2", 2)], true)
        .await
        .unwrap();
    text.update_job(rich("b2", 3)).await.unwrap();
    let raw = Raw::connect(tables.url()).await;
    let jobs = raw.quote(&table);
    let sizes = |id: &str| {
        format!(
            "SELECT {} FROM {jobs} WHERE id = '{id}'",
            match bin.backend() {
                apscheduler_store_sql::Dialect::Postgres =>
                    "octet_length(state) * 1000000 + COALESCE(octet_length(state_bin), 0)",
                _ => "LENGTH(state) * 1000000 + COALESCE(LENGTH(state_bin), 0)",
            }
        )
    };
    let (b, b2) = (
        raw.int(&sizes("b")).await.unwrap(),
        raw.int(&sizes("b2")).await.unwrap(),
    );
    assert!(
        b > 0 && b < 1_000_000,
        "bincode row 'b': state empty, bytes in state_bin: {b}"
    );
    assert!(
        b2 >= 1_000_000 && b2 % 1_000_000 == 0,
        "JSON row 'b2': {b2}"
    );
    assert!(
        b < b2 / 1_000_000,
        "bincode {b} bytes vs JSON {} bytes",
        b2 / 1_000_000
    );
    for store in [&bin, &text] {
        for (id, t) in [("b", 1), ("t", 2), ("b2", 3)] {
            let got = store.lookup_job(id).await.unwrap().unwrap();
            assert_eq!(got.next_run_time, Some(at(t)), "{id}");
            assert_eq!(*got.args, sample_args(), "{id}");
            assert_eq!(*got.kwargs, sample_kwargs(), "{id}");
        }
        assert_eq!(store.get_all_jobs().await.unwrap().len(), 3);
    }
    // Release through the bincode store rewrites JSON rows as bincode, and back.
    let claimed = bin.acquire_due_jobs("s1", utc(5), 10, LEASE).await.unwrap();
    assert_eq!(claimed.jobs.len(), 3);
    let moved = claimed
        .jobs
        .into_iter()
        .map(|j| {
            JobRelease::Update(Job {
                next_run_time: Some(at(9)),
                ..j
            })
        })
        .collect();
    bin.release_jobs("s1", moved).await.unwrap();
    assert!(raw.int(&sizes("b2")).await.unwrap() < 1_000_000);
    let claimed = text
        .acquire_due_jobs("s2", utc(9), 10, LEASE)
        .await
        .unwrap();
    let moved = claimed
        .jobs
        .into_iter()
        .map(|j| {
            JobRelease::Update(Job {
                next_run_time: Some(at(11)),
                ..j
            })
        })
        .collect();
    text.release_jobs("s2", moved).await.unwrap();
    assert!(raw.int(&sizes("b")).await.unwrap() >= 1_000_000);
    for id in ["b", "t", "b2"] {
        let got = bin.lookup_job(id).await.unwrap().unwrap();
        assert_eq!(got.next_run_time, Some(at(11)), "{id}");
        assert_eq!(*got.args, sample_args(), "{id}");
    }
    raw.close().await;
    bin.shutdown().await.unwrap();
    text.shutdown().await.unwrap();
}

/// A table left at schema version 1 (no `state_bin` column) by an earlier release is
/// upgraded at start, its jobs kept, and then takes bincode rows.
async fn upgrades_a_version_1_table(tables: &Tables) {
    use apscheduler_core::codec::StateFormat;
    let table = tables.table();
    let first = tables.store_on(&table);
    first.start("default").await.unwrap();
    first.add_job(job("old", 4), false).await.unwrap();
    first.shutdown().await.unwrap();
    let raw = Raw::connect(tables.url()).await;
    raw.exec(&format!(
        "ALTER TABLE {} DROP COLUMN state_bin",
        raw.quote(&table)
    ))
    .await;
    // Nor had it the claim partitions of version 3 (MySQL keeps an index whose other
    // columns remain: it goes first).
    match raw {
        Raw::Sqlite(_) => {}
        Raw::MySql(_) => {
            raw.exec(&format!(
                "ALTER TABLE {} DROP KEY {}, DROP COLUMN claim_partition",
                raw.quote(&table),
                raw.quote(&format!("{table}_partition_idx"))
            ))
            .await
        }
        Raw::Postgres(_) => {
            raw.exec(&format!(
                "ALTER TABLE {} DROP COLUMN claim_partition",
                raw.quote(&table)
            ))
            .await
        }
    }
    let schema = raw.quote(first.schema_table_name());
    raw.exec(&format!("UPDATE {schema} SET version = 1")).await;
    let upgraded = SqlJobStore::builder(tables.url())
        .table_name(table.clone())
        .state_format(StateFormat::Bincode)
        .build()
        .unwrap();
    upgraded.start("default").await.unwrap();
    assert_eq!(
        raw.int(&format!("SELECT version FROM {schema} WHERE id = 1"))
            .await,
        Some(i64::from(SCHEMA_VERSION))
    );
    assert_eq!(
        upgraded
            .lookup_job("old")
            .await
            .unwrap()
            .unwrap()
            .next_run_time,
        Some(at(4))
    );
    upgraded.add_job(job("new", 5), false).await.unwrap();
    assert_eq!(ids(&upgraded.get_all_jobs().await.unwrap()), ["old", "new"]);
    raw.close().await;
    upgraded.shutdown().await.unwrap();
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

/// The schema version table exists and holds the version; starting again (the same
/// store, or another on the same table) migrates nothing and keeps the jobs.
async fn schema_version_table_and_idempotent_migrations(tables: &Tables) {
    let table = tables.table();
    let make = || {
        SqlJobStore::builder(tables.url())
            .table_name(table.clone())
            .build()
            .unwrap()
    };
    let first = make();
    assert_eq!(first.schema_table_name(), format!("{table}_schema"));
    first.start("default").await.unwrap();
    assert_eq!(first.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
    first.add_job(job("kept", 5), false).await.unwrap();

    let raw = Raw::connect(tables.url()).await;
    let schema = raw.quote(first.schema_table_name());
    assert_eq!(
        raw.int(&format!("SELECT version FROM {schema} WHERE id = 1"))
            .await,
        Some(i64::from(SCHEMA_VERSION))
    );

    // Twice on the same store, then two more stores at once on the same table.
    first.start("default").await.unwrap();
    let (second, third) = (make(), make());
    let (a, b) = tokio::join!(second.start("default"), third.start("default"));
    a.unwrap();
    b.unwrap();
    assert_eq!(
        raw.int(&format!("SELECT COUNT(*) FROM {schema}")).await,
        Some(1)
    );
    assert_eq!(
        raw.int(&format!("SELECT version FROM {schema} WHERE id = 1"))
            .await,
        Some(i64::from(SCHEMA_VERSION))
    );
    assert_eq!(
        second
            .lookup_job("kept")
            .await
            .unwrap()
            .unwrap()
            .next_run_time,
        Some(at(5))
    );
    for s in [first, second, third] {
        s.shutdown().await.unwrap();
    }
    raw.close().await;
}

/// A table at a newer schema version, or a table with other columns under the name
/// (Python APScheduler's), is refused with `InvalidState` and a message saying why.
async fn refuses_newer_schemas_and_foreign_tables(tables: &Tables) {
    let raw = Raw::connect(tables.url()).await;
    let table = tables.table();
    let store = SqlJobStore::builder(tables.url())
        .table_name(table.clone())
        .build()
        .unwrap();
    store.start("default").await.unwrap();
    store.shutdown().await.unwrap();
    let schema = raw.quote(store.schema_table_name());
    raw.exec(&format!("UPDATE {schema} SET version = 99 WHERE id = 1"))
        .await;
    let err = store.start("default").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert!(err.message().contains("schema version 99"), "{err}");

    let foreign = tables.table();
    raw.exec(&format!(
        "CREATE TABLE {} (id VARCHAR(191) NOT NULL PRIMARY KEY, next_run_time FLOAT, job_state TEXT NOT NULL)",
        raw.quote(&foreign)
    ))
    .await;
    let store = SqlJobStore::builder(tables.url())
        .table_name(foreign)
        .build()
        .unwrap();
    let err = store.start("default").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert!(err.message().contains("APScheduler"), "{err}");
    raw.close().await;
}

/// Jobs the tables cannot hold, or that could not be read back, are refused when
/// written, with the kind that says why, and nothing is stored.
async fn bounds_on_what_is_stored(tables: &Tables) {
    let store = SqlJobStore::builder(tables.url())
        .table_name(tables.table())
        .max_state_bytes(4096)
        .build()
        .unwrap();
    store.start("default").await.unwrap();
    let big = Job {
        args: Arc::new(vec![json!("x".repeat(5000))]),
        ..job("big", 1)
    };
    let err = store.add_job(big, false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    assert!(err.message().contains("4096"), "{err}");
    let mut nested = json!(0);
    for _ in 0..70 {
        nested = json!({ "n": nested });
    }
    let deep = Job {
        kwargs: Arc::new(nested.as_object().unwrap().clone()),
        ..job("deep", 1)
    };
    assert_eq!(
        store.add_job(deep, false).await.unwrap_err().kind(),
        ErrorKind::Serialization
    );
    let long_id = "x".repeat(192);
    let err = store.add_job(job(&long_id, 1), false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("'id'"), "{err}");
    assert_eq!(
        store
            .add_job(job("nul\0id", 1), false)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    // The longest id fits, in any script.
    let longest = "ü".repeat(191);
    store.add_job(job(&longest, 1), false).await.unwrap();
    assert!(store.lookup_job(&longest).await.unwrap().is_some());
    assert!(store.lookup_job(&long_id).await.unwrap().is_none());
    assert_eq!(
        store.remove_job(&long_id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store
            .acquire_due_jobs(&"s".repeat(192), utc(1), 10, LEASE)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    // Batches are all or nothing on these too.
    let err = store
        .add_jobs(vec![job("fine", 1), job(&long_id, 1)], false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(store.lookup_job("fine").await.unwrap().is_none());
    assert_eq!(
        ids(&store.get_all_jobs().await.unwrap()),
        [longest.as_str()]
    );
    store.shutdown().await.unwrap();
}

/// Run times below the microsecond are rounded up in the index column, so a job is
/// never claimed before its exact time, and the exact time comes back.
async fn sub_microsecond_run_times_are_never_early(tables: &Tables) {
    let store = tables.store();
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
    assert!(early.jobs.is_empty(), "claimed 500 ns early");
    let next = store.get_next_run_time().await.unwrap().unwrap();
    assert!(next >= t, "next run time {next} before {t}");
    let now = utc(1) + chrono::Duration::microseconds(1);
    let due = store.acquire_due_jobs("s1", now, 10, LEASE).await.unwrap();
    assert_eq!(due.jobs.len(), 1);
    assert_eq!(due.jobs[0].next_run_time, Some(t));
    store.shutdown().await.unwrap();
}

/// A release stores arguments of every JSON type (unicode, quotes, control characters,
/// extremes) byte for byte, like `add_job` does, in batches larger than one chunk.
async fn releases_round_trip_every_value(tables: &Tables) {
    use apscheduler_testkit::store::{sample_args, sample_kwargs};
    let store = tables.store();
    store.start("default").await.unwrap();
    let jobs: Vec<Job> = (0..1200).map(|i| job(&format!("j{i:04}"), 1)).collect();
    store.add_jobs(jobs, false).await.unwrap();
    let claimed = store
        .acquire_due_jobs("s1", utc(1), 2000, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.jobs.len(), 1200);
    let (args, kwargs) = (Arc::new(sample_args()), Arc::new(sample_kwargs()));
    let releases = claimed
        .jobs
        .into_iter()
        .map(|j| {
            JobRelease::Update(Job {
                args: args.clone(),
                kwargs: kwargs.clone(),
                name: "ünïcödé 🎉 'q' \"dq\"".into(),
                next_run_time: Some(at(7)),
                ..j
            })
        })
        .collect();
    store.release_jobs("s1", releases).await.unwrap();
    for id in ["j0000", "j0599", "j1199"] {
        let got = store.lookup_job(id).await.unwrap().unwrap();
        assert_eq!(
            serde_json::to_string(&*got.args).unwrap(),
            serde_json::to_string(&*args).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&*got.kwargs).unwrap(),
            serde_json::to_string(&*kwargs).unwrap()
        );
        assert_eq!(&*got.name, "ünïcödé 🎉 'q' \"dq\"");
        assert_eq!(got.next_run_time, Some(at(7)));
    }
    let again = store
        .acquire_due_jobs("s2", utc(7), 2000, LEASE)
        .await
        .unwrap();
    assert_eq!(again.jobs.len(), 1200, "released jobs are claimable again");
    store.shutdown().await.unwrap();
}

/// After `shutdown`, the store connects again on its next use.
async fn reconnects_after_shutdown(tables: &Tables) {
    let store = tables.store();
    store.start("default").await.unwrap();
    store.add_job(job("a", 1), false).await.unwrap();
    store.shutdown().await.unwrap();
    assert!(format!("{store:?}").contains("connected: false"));
    assert_eq!(ids(&store.get_all_jobs().await.unwrap()), ["a"]);
    store.shutdown().await.unwrap();
    store.start("default").await.unwrap();
    store.remove_job("a").await.unwrap();
    store.shutdown().await.unwrap();
}

#[test]
fn table_names_are_validated() {
    for bad in [
        "",
        "1jobs",
        "jobs; DROP TABLE x",
        "my-jobs",
        "public.jobs",
        "jöbs",
        &"j".repeat(64),
    ] {
        let err = SqlJobStore::builder("sqlite::memory:")
            .table_name(bad)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        assert!(err.message().contains("'table_name'"), "{err}");
        if !bad.is_empty() {
            assert!(err.message().contains(&bad[..1]), "{err}");
        }
    }
    for good in ["apscheduler_jobs", "_private", "Jobs2", &"j".repeat(63)] {
        let store = SqlJobStore::builder("sqlite::memory:")
            .table_name(good)
            .build()
            .unwrap();
        assert_eq!(store.table_name(), good);
    }
    assert_eq!(
        SqlJobStore::connect("sqlite::memory:")
            .unwrap()
            .table_name(),
        "apscheduler_jobs"
    );
}

#[test]
fn urls_are_validated_and_passwords_masked() {
    let err = SqlJobStore::connect("oracle://scott:tiger@db/orcl").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("'url'"), "{err}");
    assert!(!err.message().contains("tiger"), "password shown: {err}");
    let store = SqlJobStore::connect("postgres://app:s3cret@db.internal/app").unwrap();
    assert!(!format!("{store:?}").contains("s3cret"));
    assert!(SqlJobStore::connect("postgresql+psycopg2://u@h/db").is_ok());
    assert!(SqlJobStore::connect("mariadb://root@localhost/test").is_ok());
    assert!(SqlJobStore::connect("sqlite:///jobs.sqlite").is_ok());
    let err = SqlJobStore::builder("sqlite::memory:")
        .max_connections(0)
        .build()
        .unwrap_err();
    assert!(err.message().contains("'max_connections'"), "{err}");
}

/// The seeds' `sqlite:///jobs.sqlite`: a path relative to the working directory.
#[tokio::test]
async fn sqlalchemy_sqlite_url_is_relative() {
    let dir = TempDir::new();
    let old = std::env::current_dir().unwrap();
    std::env::set_current_dir(&dir.path).unwrap();
    let store = SqlJobStore::connect("sqlite:///jobs.sqlite").unwrap();
    let started = store.start("default").await;
    std::env::set_current_dir(old).unwrap();
    started.unwrap();
    store.add_job(job("a", 1), false).await.unwrap();
    store.shutdown().await.unwrap();
    assert!(dir.path.join("jobs.sqlite").exists());
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Building a store does no I/O; an unreachable server is `Unavailable` (retryable)
/// when the store is used, and a later attempt goes through once it is reachable.
#[tokio::test]
async fn unreachable_servers_are_unavailable() {
    for url in [
        format!("postgres://root@127.0.0.1:{}/test", closed_port()),
        format!("mysql://root@127.0.0.1:{}/test", closed_port()),
    ] {
        let store = SqlJobStore::builder(url.clone())
            .acquire_timeout(Duration::from_millis(300))
            .build()
            .expect("no I/O when building");
        let err = store.start("default").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{url}: {err}");
        assert!(err.is_retryable());
        assert!(
            std::error::Error::source(&err).is_some(),
            "{url}: no source"
        );
        let err = store.get_next_run_time().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
    // SQLite in a folder that does not exist is a configuration error, not an outage
    // (tests/config_errors.rs).
    // The state format the rows hold is JobState's.
    assert_eq!(JobState::VERSION, 1);
}

/// Two schedulers (two engines, each with its own store and pool) share one table: a
/// job every 100 ms runs once per run time, never twice.
async fn two_schedulers_share_a_table(tables: &Tables) {
    use apscheduler_core::event::EVENT_JOB_EXECUTED;
    use apscheduler_core::Event;
    use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
    use std::sync::Mutex;

    let table = tables.table();
    let runs: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let schedulers: Vec<BackgroundScheduler> = ["node-a", "node-b"]
        .into_iter()
        .map(|node| {
            let store = SqlJobStore::builder(tables.url())
                .table_name(table.clone())
                .build()
                .unwrap();
            let engine = Engine::builder()
                .scheduler_id(node)
                .timezone(chrono_tz::UTC)
                .jobstore("default", Arc::new(store))
                .build();
            let scheduler = BackgroundScheduler::from_engine(engine).unwrap();
            scheduler.register_task("work", |_| Ok(json!(null)));
            let runs = runs.clone();
            scheduler.add_listener(
                move |event: &Event| {
                    if let Event::Execution {
                        scheduled_run_time, ..
                    } = event
                    {
                        runs.lock()
                            .unwrap()
                            .push((node.to_owned(), scheduled_run_time.timestamp_micros()));
                    }
                },
                EVENT_JOB_EXECUTED,
            );
            scheduler
        })
        .collect();
    // Started on a runtime-free thread: the front-ends block on their own runtime.
    let runs_seen = tokio::task::spawn_blocking(move || {
        for s in &schedulers {
            s.start(false).unwrap();
        }
        schedulers[0]
            .add_job(
                JobSpec::task("work")
                    .id("shared")
                    .trigger_args("interval", json!({"seconds": 0.1})),
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(2000));
        for s in &schedulers {
            s.shutdown(true).unwrap();
        }
    });
    runs_seen.await.unwrap();
    let runs = runs.lock().unwrap().clone();
    let mut times: Vec<i64> = runs.iter().map(|(_, t)| *t).collect();
    times.sort_unstable();
    let before = times.len();
    times.dedup();
    assert_eq!(times.len(), before, "a run time ran twice: {runs:?}");
    assert!(before >= 10, "too few runs: {runs:?}");
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

/// PostgreSQL tells the other schedulers on a table about each change (`LISTEN` /
/// `NOTIFY`), and a listener whose connection was terminated listens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_changes() {
    let Some(url) = server_url(POSTGRES_ENV, "postgres_notifies_changes") else {
        return;
    };
    let tables = Tables::new(&url);
    let table = tables.table();
    let listening = tables.store_on(&table);
    let writer = tables.store_on(&table);
    apscheduler_testkit::store::check_change_notifications(&listening, &writer, || async {
        let raw = Raw::connect(&url).await;
        raw.exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN \"apscheduler_jobs_%' AND pid <> pg_backend_pid()",
        )
        .await;
        raw.close().await;
    })
    .await;
}

/// SQLite and MySQL/MariaDB have no change channel: schedulers poll.
#[test]
fn only_postgres_declares_notifications() {
    for (url, notifies) in [
        ("sqlite::memory:", false),
        ("mysql://root@127.0.0.1/test", false),
        ("postgres://root@127.0.0.1/test", true),
    ] {
        let store = SqlJobStore::connect(url).unwrap();
        assert_eq!(store.capabilities().notifications, notifies, "{url}");
    }
}

/// A scheduler on MySQL/MariaDB (no change channel) looks at the store every second
/// (`EngineBuilder::change_poll`), however far its next fire time, so that another
/// process's changes take effect within a second; on PostgreSQL (notifications) it
/// sleeps until the fire time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_polls_only_stores_that_cannot_notify() {
    use apscheduler_engine::{Engine, JobSpec, DEFAULT_CHANGE_POLL};
    for (var, polled) in [(MYSQL_ENV, true), (POSTGRES_ENV, false)] {
        let Some(url) = server_url(var, "a_scheduler_polls_only_stores_that_cannot_notify") else {
            continue;
        };
        let tables = Tables::new(&url);
        for poll in [Some(DEFAULT_CHANGE_POLL), None] {
            let engine = Engine::builder()
                .jobstore("default", Arc::new(tables.store()))
                .change_poll(poll)
                .build();
            engine.register_task("noop", |_| Ok(json!(null)));
            engine.start(false).await.unwrap();
            engine
                .add_job(
                    JobSpec::task("noop")
                        .id("hourly")
                        .trigger_args("interval", json!({"hours": 1})),
                )
                .await
                .unwrap();
            let wait = engine.process_jobs().await.expect("a next wake-up");
            if polled && poll.is_some() {
                assert!(wait <= DEFAULT_CHANGE_POLL, "{var}: waits {wait:?}");
            } else {
                assert!(
                    wait > Duration::from_secs(3500),
                    "{var} ({poll:?}): waits {wait:?}"
                );
            }
            engine.shutdown(true).await.unwrap();
        }
    }
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

//! The table's schema and the state formats, on every backend: the schema version
//! table and its idempotent migrations, newer schemas and foreign tables refused, a
//! version 1 table upgraded, and bincode and JSON rows side by side on one table.

mod support;

use std::sync::Arc;

use apscheduler_core::{ErrorKind, Job, JobRelease, JobStore};
use apscheduler_store_sql::{SqlJobStore, SCHEMA_VERSION};
use apscheduler_testkit::store::{at, utc, LEASE};
use support::{ids, job, on_every_backend, Raw, Tables};

on_every_backend!(
    schema_version_table_and_idempotent_migrations,
    refuses_newer_schemas_and_foreign_tables,
    both_state_formats_share_a_table,
    upgrades_a_version_1_table,
);

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

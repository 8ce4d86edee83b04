//! `SqlJobStoreBuilder::sqlite_background_checkpoints`: the write-ahead log is copied
//! into the database file by a task of the store's own, not by the commits. Seen from
//! the file: without the task (and under SQLite's own 1,000-page threshold) the jobs
//! stay in the `-wal` file; with it, they reach the database file within a few of its
//! intervals.

use std::path::Path;
use std::time::{Duration, Instant};

use apscheduler_core::JobStore;
use apscheduler_store_sql::SqlJobStore;

/// 600 jobs: a few hundred KiB of pages, under SQLite's automatic checkpoint (1,000
/// pages of 4 KiB).
const JOBS: usize = 600;

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Adds the jobs to a store on `db` and returns the database file's length, `waited`
/// later (the store still open).
async fn length_after_adds(db: &Path, every: Option<Duration>, waited: Duration) -> u64 {
    let mut builder = SqlJobStore::builder(format!("sqlite:{}", db.display()));
    if let Some(every) = every {
        builder = builder.sqlite_background_checkpoints(every);
    }
    let store = builder.build().unwrap();
    store.start("default").await.unwrap();
    store
        .add_jobs(apscheduler_testkit::bench::jobs(JOBS), false)
        .await
        .unwrap();
    let wal = db.with_extension("db-wal");
    assert!(file_len(&wal) > 0, "the jobs went to the WAL");
    let deadline = Instant::now() + waited;
    let mut len = file_len(db);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        len = file_len(db);
        if every.is_some() && len > file_len(&wal) / 2 {
            break;
        }
    }
    store.shutdown().await.unwrap();
    len
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_task_moves_the_wal_into_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let without =
        length_after_adds(&dir.path().join("a.db"), None, Duration::from_millis(500)).await;
    let with = length_after_adds(
        &dir.path().join("b.db"),
        Some(Duration::from_millis(50)),
        Duration::from_secs(10),
    )
    .await;
    eprintln!("database file: {with} bytes with background checkpoints, {without} without");
    assert!(
        with > 4 * without,
        "database file: {with} bytes with background checkpoints, {without} without"
    );
}

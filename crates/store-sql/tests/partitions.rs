//! Partitioned claiming on PostgreSQL and MySQL/MariaDB: each job's claim partition
//! comes from its id (the same on both servers), a claim that prefers some partitions
//! takes their due jobs first and steals the earliest of the others only to fill its
//! limit, a hint naming every partition is a plain claim, and a table from before the
//! partition column is upgraded by four schedulers starting at once.

mod support;

use std::time::Duration;

use apscheduler_core::{ClaimHint, Job, JobRelease, JobStore};
use apscheduler_store_sql::{SqlJobStore, SCHEMA_VERSION};
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc};
use support::{server_url, Raw, Tables, MYSQL_ENV, POSTGRES_ENV};

const PARTITIONS: u32 = 1024;
const LEASE: Duration = Duration::from_secs(30);

/// Runs `check` against PostgreSQL and MySQL/MariaDB (SQLite is single-node: no
/// partitions).
macro_rules! on_servers {
    ($($check:ident),* $(,)?) => {
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

on_servers!(
    partitions_come_from_the_id,
    own_partitions_first_then_the_earliest_of_the_others,
    a_hint_naming_every_partition_is_a_plain_claim,
    an_old_table_is_upgraded_by_four_schedulers_at_once,
);

/// Job `n` of a test, due at `at(n)`.
fn job(n: usize) -> Job {
    sample_job(
        &format!("partitioned-{n:03}"),
        Some(at(n as i64)),
        interval_trigger(3600),
    )
}

fn ids(jobs: &[Job]) -> Vec<String> {
    jobs.iter().map(|j| j.id.to_string()).collect()
}

/// Each job's claim partition, as stored, by job number.
async fn partitions(raw: &Raw, table: &str, jobs: usize) -> Vec<u32> {
    let mut found = Vec::with_capacity(jobs);
    for n in 0..jobs {
        let p = raw
            .int(&format!(
                "SELECT claim_partition FROM {} WHERE id = 'partitioned-{n:03}'",
                raw.quote(table)
            ))
            .await
            .unwrap_or_else(|| panic!("job {n} has no partition"));
        found.push(u32::try_from(p).unwrap());
    }
    found
}

async fn filled(tables: &Tables, jobs: usize) -> (SqlJobStore, String, Raw) {
    let table = tables.table();
    let store = tables.store_on(&table);
    store.start("default").await.unwrap();
    store
        .add_jobs((0..jobs).map(job).collect(), false)
        .await
        .unwrap();
    let raw = Raw::connect(tables.url()).await;
    (store, table, raw)
}

async fn partitions_come_from_the_id(tables: &Tables) {
    let (store, table, raw) = filled(tables, 40).await;
    assert_eq!(store.capabilities().partitions, PARTITIONS);
    let found = partitions(&raw, &table, 40).await;
    // The first 32 bits of the id's MD5, modulo 1024 (Python's hashlib agrees).
    assert_eq!(found[0], 272, "partitioned-000");
    assert!(found.iter().all(|&p| p < PARTITIONS));
    let mut distinct = found.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 30, "spread: {found:?}");
    // An upsert (replace_existing) keeps the row's partition.
    store.add_job(job(0), true).await.unwrap();
    assert_eq!(partitions(&raw, &table, 1).await[0], 272);
    raw.close().await;
    store.shutdown().await.unwrap();
}

async fn own_partitions_first_then_the_earliest_of_the_others(tables: &Tables) {
    const JOBS: usize = 60;
    let (store, table, raw) = filled(tables, JOBS).await;
    let found = partitions(&raw, &table, JOBS).await;
    // This claimer owns the partitions of every third job from job 30 on: 10 jobs, all
    // due later than the 30 first ones.
    let mut owned: Vec<u32> = (30..JOBS).step_by(3).map(|n| found[n]).collect();
    owned.sort_unstable();
    owned.dedup();
    let mine: Vec<usize> = (0..JOBS).filter(|&n| owned.contains(&found[n])).collect();
    assert!(mine.len() >= 10 && mine.len() < 20, "{mine:?}");
    let hint = ClaimHint {
        partitions: PARTITIONS,
        owned: &owned,
    };
    let now = utc(1_000);
    // Fewer than it owns: only its own, earliest first, before any earlier due job of
    // another partition.
    let first = store
        .acquire_due_jobs_preferring("mine", now, 4, LEASE, hint)
        .await
        .unwrap();
    let expected: Vec<String> = mine
        .iter()
        .take(4)
        .map(|&n| job(n).id.to_string())
        .collect();
    assert_eq!(ids(&first.jobs), expected);
    // Another claimer owning nothing of these steals the head, skipping the leased.
    let other = store
        .acquire_due_jobs_preferring(
            "other",
            now,
            3,
            LEASE,
            ClaimHint {
                partitions: PARTITIONS,
                owned: &[],
            },
        )
        .await
        .unwrap();
    let head: Vec<String> = (0..JOBS)
        .filter(|n| !mine[..4].contains(n))
        .take(3)
        .map(|n| job(n).id.to_string())
        .collect();
    assert_eq!(ids(&other.jobs), head);
    // Both release theirs (an hour later), as a pass does.
    release(&store, "mine", &first.jobs).await;
    release(&store, "other", &other.jobs).await;
    // The rest of its own, then the earliest others to fill the limit, ordered by
    // run time: the jobs taken by "other" are skipped.
    let taken = |n: &usize| head.contains(&job(*n).id.to_string());
    let own_left: Vec<usize> = mine[4..].iter().copied().filter(|n| !taken(n)).collect();
    let second = store
        .acquire_due_jobs_preferring("mine", now, own_left.len() + 5, LEASE, hint)
        .await
        .unwrap();
    let stolen: Vec<usize> = (0..JOBS)
        .filter(|n| !mine.contains(n) && !taken(n))
        .take(5)
        .collect();
    let mut expected: Vec<usize> = own_left.into_iter().chain(stolen).collect();
    expected.sort_unstable();
    let expected: Vec<String> = expected.iter().map(|&n| job(n).id.to_string()).collect();
    assert_eq!(ids(&second.jobs), expected);
    // Nothing claimed twice: what is left goes to a plain claim.
    let rest = store
        .acquire_due_jobs("third", now, JOBS, LEASE)
        .await
        .unwrap();
    assert_eq!(
        first.jobs.len() + other.jobs.len() + second.jobs.len() + rest.jobs.len(),
        JOBS
    );
    raw.close().await;
    store.shutdown().await.unwrap();
}

/// Releases `jobs`, held by `holder`, with their next run time an hour later.
async fn release(store: &SqlJobStore, holder: &str, jobs: &[Job]) {
    let releases = jobs
        .iter()
        .cloned()
        .map(|mut job| {
            job.next_run_time = job.next_run_time.map(|t| t + chrono::Duration::hours(1));
            JobRelease::Update(job)
        })
        .collect();
    let released = store.release_jobs(holder, releases).await.unwrap();
    assert!(released.is_complete());
}

async fn a_hint_naming_every_partition_is_a_plain_claim(tables: &Tables) {
    let (store, _table, raw) = filled(tables, 20).await;
    let every: Vec<u32> = (0..PARTITIONS).collect();
    let all = ClaimHint {
        partitions: PARTITIONS,
        owned: &every,
    };
    assert!(all.owns_all());
    let got = store
        .acquire_due_jobs_preferring("a", utc(1_000), 5, LEASE, all)
        .await
        .unwrap();
    let head: Vec<String> = (0..5).map(|n| job(n).id.to_string()).collect();
    assert_eq!(ids(&got.jobs), head);
    // A hint for another partition count says nothing about this store: plain too.
    let foreign = ClaimHint {
        partitions: 16,
        owned: &[1],
    };
    let got = store
        .acquire_due_jobs_preferring("b", utc(1_000), 5, LEASE, foreign)
        .await
        .unwrap();
    let next: Vec<String> = (5..10).map(|n| job(n).id.to_string()).collect();
    assert_eq!(ids(&got.jobs), next);
    raw.close().await;
    store.shutdown().await.unwrap();
}

async fn an_old_table_is_upgraded_by_four_schedulers_at_once(tables: &Tables) {
    let (store, table, raw) = filled(tables, 50).await;
    let schema = raw.quote(store.schema_table_name());
    store.shutdown().await.unwrap();
    // As the previous release left it: no partition column (its index goes with it),
    // schema version 2.
    let drop = match raw {
        // MySQL keeps an index whose other columns remain.
        Raw::MySql(_) => format!(
            "ALTER TABLE {} DROP KEY {}, DROP COLUMN claim_partition",
            raw.quote(&table),
            raw.quote(&format!("{table}_partition_idx"))
        ),
        _ => format!(
            "ALTER TABLE {} DROP COLUMN claim_partition",
            raw.quote(&table)
        ),
    };
    raw.exec(&drop).await;
    raw.exec(&format!("UPDATE {schema} SET version = 2")).await;
    let starters: Vec<SqlJobStore> = (0..4).map(|_| tables.store_on(&table)).collect();
    let started = futures_util::future::join_all(starters.iter().map(|s| s.start("default"))).await;
    for (i, r) in started.into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("scheduler {i} failed to start on the old table: {e}"));
    }
    assert_eq!(
        raw.int(&format!("SELECT version FROM {schema} WHERE id = 1"))
            .await,
        Some(i64::from(SCHEMA_VERSION))
    );
    let found = partitions(&raw, &table, 50).await;
    assert_eq!(found[0], 272);
    let fresh = tables.store();
    fresh.start("default").await.unwrap();
    fresh
        .add_jobs((0..50).map(job).collect(), false)
        .await
        .unwrap();
    assert_eq!(
        partitions(&raw, fresh.table_name(), 50).await,
        found,
        "upgraded rows get the partition an insert gives"
    );
    // And claims by partition work on it.
    let owned = [found[7]];
    let got = starters[0]
        .acquire_due_jobs_preferring(
            "s",
            utc(1_000),
            1,
            LEASE,
            ClaimHint {
                partitions: PARTITIONS,
                owned: &owned,
            },
        )
        .await
        .unwrap();
    let first_of_it = (0..50).find(|&n| found[n] == found[7]).unwrap();
    assert_eq!(ids(&got.jobs), [job(first_of_it).id.to_string()]);
    raw.close().await;
    fresh.shutdown().await.unwrap();
    for s in starters {
        s.shutdown().await.unwrap();
    }
}

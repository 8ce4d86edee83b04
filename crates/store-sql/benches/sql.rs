//! Speed of the SQL job store, per backend:
//! - `add_jobs`: time per job, adding 10 batches of 1,000 jobs;
//! - claim + release of 2,000 due jobs, as the engine does it (claims of 1,024, each
//!   released with its next run time);
//! - with `--pg-1m`: the due-job query on PostgreSQL with 1,000,000 rows (claim with
//!   100 due, with none due, `get_next_run_time`), with `EXPLAIN ANALYZE` output.
//!
//! ```text
//! APS_TEST_POSTGRES_URL=postgres://root@127.0.0.1:5432/test \
//! APS_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/test \
//!     cargo bench -p apscheduler-store-sql --bench sql [-- --pg-1m] [--only postgres]
//! ```
//!
//! A backend whose URL is unset is skipped (SQLite uses a temporary file). Tables are
//! random (`aps_bench_<hex>`) and dropped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apscheduler_core::{Job, JobRelease, JobState, JobStore};
use apscheduler_store_sql::SqlJobStore;
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(60);
/// What the engine claims at once.
const CLAIM_BATCH: usize = 1024;

fn table() -> String {
    format!(
        "aps_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn job(i: usize, t: i64) -> Job {
    Job {
        args: Arc::new(vec![json!(i), json!("payload")]),
        ..sample_job(&format!("job-{i:07}"), Some(at(t)), interval_trigger(60))
    }
}

async fn drop_tables(url: &str, store: &SqlJobStore) {
    store.shutdown().await.ok();
    if url.starts_with("sqlite:") {
        return;
    }
    let q = |t: &str| {
        if url.starts_with("mysql") {
            format!("DROP TABLE IF EXISTS `{t}`")
        } else {
            format!("DROP TABLE IF EXISTS \"{t}\"")
        }
    };
    let stmts = [q(store.table_name()), q(store.schema_table_name())];
    if url.starts_with("mysql") {
        let pool = sqlx::MySqlPool::connect(url).await.unwrap();
        for s in &stmts {
            sqlx::query(s).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        for s in &stmts {
            sqlx::query(s).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Adds 10 × 1,000 jobs; returns ms per job.
async fn bench_add(store: &SqlJobStore) -> f64 {
    // Warm up the pool and the statement cache.
    store
        .add_jobs(vec![job(9_999_999, 0)], false)
        .await
        .unwrap();
    let start = Instant::now();
    for batch in 0..10 {
        let jobs = (0..1000).map(|i| job(batch * 1000 + i, 10)).collect();
        store.add_jobs(jobs, false).await.unwrap();
    }
    ms(start.elapsed()) / 10_000.0
}

/// Claims and releases 2,000 due jobs as the engine does; returns the time taken in
/// all, and in claims only.
async fn bench_claim_release(store: &SqlJobStore, round: i64) -> (Duration, Duration) {
    store.remove_all_jobs().await.unwrap();
    let jobs: Vec<Job> = (0..2000).map(|i| job(i, round)).collect();
    store.add_jobs(jobs, false).await.unwrap();
    let now = utc(round + 1);
    let start = Instant::now();
    let mut claiming = Duration::ZERO;
    let mut processed = 0;
    loop {
        let claim_start = Instant::now();
        let acquired = store
            .acquire_due_jobs("bench", now, CLAIM_BATCH, LEASE)
            .await
            .unwrap();
        claiming += claim_start.elapsed();
        let n = acquired.jobs.len();
        processed += n;
        let releases = acquired
            .jobs
            .into_iter()
            .map(|mut j| {
                j.next_run_time = Some(at(round + 3600));
                JobRelease::Update(j)
            })
            .collect();
        store.release_jobs("bench", releases).await.unwrap();
        if n < CLAIM_BATCH {
            break;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(processed, 2000);
    (elapsed, claiming)
}

async fn bench_backend(name: &str, url: &str) {
    let store = SqlJobStore::builder(url)
        .table_name(table())
        .build()
        .unwrap();
    store.start("default").await.unwrap();
    let add = bench_add(&store).await;
    let mut rounds: Vec<(Duration, Duration)> = Vec::new();
    for round in 0..5 {
        rounds.push(bench_claim_release(&store, round * 10).await);
    }
    rounds.sort();
    println!(
        "{name:<10} add_jobs: {add:.4} ms/job (10 x 1,000) | claim+release 2,000 due jobs: median {:.1} ms (claims {:.1} ms), best {:.1} ms (5 rounds)",
        ms(rounds[2].0),
        ms(rounds[2].1),
        ms(rounds[0].0)
    );
    drop_tables(url, &store).await;
}

/// PostgreSQL with 1,000,000 rows.
async fn bench_pg_million(url: &str) {
    let t = table();
    let store = SqlJobStore::builder(url)
        .table_name(t.clone())
        .build()
        .unwrap();
    store.start("default").await.unwrap();
    let pool = sqlx::PgPool::connect(url).await.unwrap();

    // Rows 0..1M: run times one second apart from at(1000); the first 100 are due at
    // at(1099). The state is a real job's, with its id replaced per row.
    let template = serde_json::to_string(&job(0, 0).to_state().unwrap()).unwrap();
    assert!(template.contains("\"id\":\"job-0000000\""));
    let base = at(1000).timestamp_micros();
    let start = Instant::now();
    sqlx::query(&format!(
        "INSERT INTO \"{t}\" (id, next_run_time, paused, state, format_version) \
         SELECT 'job-' || lpad(g::text, 7, '0'), $1 + g::BIGINT * 1000000, false, \
                replace($2, '\"id\":\"job-0000000\"', '\"id\":\"job-' || lpad(g::text, 7, '0') || '\"'), $3 \
         FROM generate_series(0, 999999) AS g"
    ))
    .bind(base)
    .bind(&template)
    .bind(JobState::VERSION as i32)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(&format!("ANALYZE \"{t}\""))
        .execute(&pool)
        .await
        .unwrap();
    println!(
        "postgres   1,000,000 rows inserted with SQL in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let now_due = utc(1099);
    let mut claim_100 = Vec::new();
    let mut claim_none = Vec::new();
    let mut next = Vec::new();
    for _ in 0..20 {
        let s = Instant::now();
        let acquired = store
            .acquire_due_jobs("bench", now_due, CLAIM_BATCH, LEASE)
            .await
            .unwrap();
        claim_100.push(s.elapsed());
        assert_eq!(acquired.jobs.len(), 100);
        assert!(acquired.corrupt.is_empty());
        // Put them back, due again.
        store
            .release_jobs(
                "bench",
                acquired.jobs.into_iter().map(JobRelease::Update).collect(),
            )
            .await
            .unwrap();
        let s = Instant::now();
        let none = store
            .acquire_due_jobs("bench", utc(999), CLAIM_BATCH, LEASE)
            .await
            .unwrap();
        claim_none.push(s.elapsed());
        assert!(none.jobs.is_empty());
        let s = Instant::now();
        let t0 = store.get_next_run_time().await.unwrap();
        next.push(s.elapsed());
        assert_eq!(t0, Some(utc(1000)));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        ms(v[v.len() / 2])
    };
    println!(
        "postgres   1M rows: claim 100 due (incl. decoding): median {:.2} ms | claim, none due: median {:.2} ms | get_next_run_time: median {:.2} ms (20 rounds)",
        median(&mut claim_100),
        median(&mut claim_none),
        median(&mut next)
    );

    // The plans: the claim (run in a transaction that is rolled back) and the next run
    // time query. Same SQL as the store's.
    let claim = format!(
        "WITH due AS (SELECT id FROM \"{t}\" WHERE next_run_time <= $1 AND corrupt IS NULL \
         AND (lease_expires IS NULL OR lease_expires <= $1) \
         ORDER BY next_run_time, id LIMIT 1024 FOR UPDATE SKIP LOCKED) \
         UPDATE \"{t}\" AS j SET lease_holder = 'explain', lease_expires = $1 + 60000000 FROM due \
         WHERE j.id = due.id RETURNING j.id"
    );
    let next_sql = format!(
        "SELECT \
         (SELECT next_run_time FROM \"{t}\" WHERE next_run_time IS NOT NULL AND corrupt IS NULL \
          AND (lease_expires IS NULL OR lease_expires <= next_run_time) ORDER BY next_run_time LIMIT 1), \
         (SELECT lease_expires FROM \"{t}\" WHERE lease_expires IS NOT NULL AND next_run_time IS NOT NULL \
          AND corrupt IS NULL AND lease_expires > next_run_time ORDER BY lease_expires LIMIT 1)"
    );
    let now_us = now_due.timestamp_micros();
    let mut tx = pool.begin().await.unwrap();
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, COSTS OFF) {claim}"))
        .bind(now_us)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    println!("EXPLAIN ANALYZE claim (100 due of 1,000,000):");
    for line in plan {
        println!("    {line}");
    }
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, COSTS OFF) {next_sql}"))
        .fetch_all(&pool)
        .await
        .unwrap();
    println!("EXPLAIN ANALYZE get_next_run_time:");
    for line in plan {
        println!("    {line}");
    }
    pool.close().await;
    drop_tables(url, &store).await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick.
    if !args.iter().any(|a| a == "--bench") {
        println!("sql bench: run it with `cargo bench -p apscheduler-store-sql --bench sql`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("aps-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let sqlite = format!("sqlite:{}", dir.join("jobs.sqlite").display());
        // `--only sqlite|postgres|mysql` runs one backend.
        let only = args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1))
            .cloned();
        let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
        if wanted("sqlite") {
            bench_backend("sqlite", &sqlite).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        if wanted("postgres") {
            match std::env::var("APS_TEST_POSTGRES_URL") {
                Ok(url) => {
                    bench_backend("postgres", &url).await;
                    if args.iter().any(|a| a == "--pg-1m") {
                        bench_pg_million(&url).await;
                    }
                }
                Err(_) => println!("postgres   skipped: APS_TEST_POSTGRES_URL is not set"),
            }
        }
        if wanted("mysql") {
            match std::env::var("APS_TEST_MYSQL_URL") {
                Ok(url) => bench_backend("mysql", &url).await,
                Err(_) => println!("mysql      skipped: APS_TEST_MYSQL_URL is not set"),
            }
        }
    });
}

//! `aps-claim-bench`: a burst of due jobs claimed by many claimers at once on one
//! PostgreSQL table, with and without partitioned claiming. `bench/claim-bench.sh` runs
//! it.
//!
//! ```text
//! aps-claim-bench URL [STORED] [BURST] [CLAIMERS,...] [without-partition-index]
//! ```
//! With `without-partition-index`, the index on `(claim_partition, next_run_time, id)`
//! is dropped (with `psql`) before the runs, and only plain claims run: what a table
//! without partitions costs, to compare plain claims with.
//! STORED jobs (default 100,000) are stored, BURST of them (default 10,000) due at one
//! instant. For each claimer count (default `1,3,10,30`), twice (plain claims, then
//! claims that prefer the partitions the claimer owns by rendezvous hashing, as the
//! engine does from four live nodes on), that many claimers, each a store of its own
//! (its own connection, as a node has), claim batches of 64 (`JobStore::acquire_due_jobs`
//! or `acquire_due_jobs_preferring`) and release each batch an hour later, until none
//! is due. Reported per run: the time to drain the burst, jobs claimed and released per
//! second, claim latency p50/p99, and jobs claimed twice (must be 0). This is the
//! store's claim path alone (no runs, no run history), the part partitioning changes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::{ClaimHint, JobRelease, JobStore};
use apscheduler_engine::{owned_partitions, Engine, JobSpec};
use apscheduler_store_sql::SqlJobStore;
use chrono::Utc;
use serde_json::{json, Value};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const BATCH: usize = 64;
const LEASE: Duration = Duration::from_secs(30);

/// A store on `table` with at most `connections` connections (a claimer needs one; a
/// scheduler also listens on one).
fn store(url: &str, table: &str, connections: u32) -> Result<SqlJobStore, BoxError> {
    Ok(SqlJobStore::builder(url)
        .table_name(table)
        .max_connections(connections)
        .build()?)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .ok_or("usage: aps-claim-bench URL [STORED] [BURST] [CLAIMERS,...]")?;
    let stored: usize = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let burst: usize = args.get(2).map_or(Ok(10_000), |a| a.parse())?;
    let counts: Vec<usize> = args
        .get(3)
        .map_or("1,3,10,30", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let without_index = args.get(4).map(String::as_str) == Some("without-partition-index");
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let table = format!("bench_claims_{}", std::process::id());
        let setup = Arc::new(store(url, &table, 4)?);
        let engine = Engine::builder().jobstore("default", setup.clone()).build();
        engine.register_task("noop", |_| Ok(json!(null)));
        engine.start(true).await?;
        let far = "2100-01-01T00:00:00Z";
        let loaded = Instant::now();
        let mut added = 0;
        while added < stored.saturating_sub(burst) {
            let n = (stored - burst - added).min(50_000);
            let specs: Vec<JobSpec> = (added..added + n)
                .map(|i| {
                    JobSpec::task("noop")
                        .id(format!("idle-{i:08}"))
                        .trigger_args("interval", json!({"hours": 1, "start_date": far}))
                })
                .collect();
            engine.add_jobs(specs).await?;
            added += n;
        }
        eprintln!(
            "{added} idle jobs stored in {:.1} s",
            loaded.elapsed().as_secs_f64()
        );
        if without_index {
            let dropped = std::process::Command::new("psql")
                .args([url.as_str(), "-qc"])
                .arg(format!("DROP INDEX \"{table}_partition_idx\""))
                .status()?;
            if !dropped.success() {
                return Err("psql could not drop the partition index".into());
            }
        }
        let modes: &[bool] = if without_index {
            &[false]
        } else {
            &[false, true]
        };
        let mut reports = Vec::new();
        for (round, &claimers) in counts.iter().enumerate() {
            for &hinted in modes {
                // A fresh burst, due at one instant in the past.
                let due = (Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
                let specs: Vec<JobSpec> = (0..burst)
                    .map(|i| {
                        JobSpec::task("noop")
                            .id(format!("due-{round}-{hinted}-{i:06}"))
                            .trigger_args("date", json!({"run_date": due}))
                    })
                    .collect();
                engine.add_jobs(specs).await?;
                let report = drain(url, &table, claimers, hinted, burst).await?;
                eprintln!("{report}");
                reports.push(report);
            }
        }
        engine.shutdown(false).await?;
        setup.start("default").await?;
        setup.remove_all_jobs().await?;
        setup.shutdown().await?;
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "stored": stored, "burst": burst, "batch": BATCH,
                "partition_index": !without_index, "runs": reports
            }))?
        );
        Ok::<(), BoxError>(())
    })?;
    Ok(())
}

/// `claimers` stores claim and release the due burst until none is due.
async fn drain(
    url: &str,
    table: &str,
    claimers: usize,
    hinted: bool,
    burst: usize,
) -> Result<Value, BoxError> {
    let names: Vec<String> = (0..claimers).map(|i| format!("node-{i}")).collect();
    let seen: Arc<Mutex<(HashSet<Arc<str>>, usize)>> = Arc::default();
    let mut stores = Vec::new();
    for _ in 0..claimers {
        let s = store(url, table, 1)?;
        s.start("default").await?;
        stores.push(s);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (s, me) in stores.into_iter().zip(names.iter().cloned()) {
        let owned = owned_partitions(&me, &names, 1024);
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let t = Instant::now();
                let got = if hinted {
                    let hint = ClaimHint {
                        partitions: 1024,
                        owned: &owned,
                    };
                    s.acquire_due_jobs_preferring(&me, Utc::now(), BATCH, LEASE, hint)
                        .await?
                } else {
                    s.acquire_due_jobs(&me, Utc::now(), BATCH, LEASE).await?
                };
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                if got.jobs.is_empty() {
                    break;
                }
                {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    for job in &got.jobs {
                        if !seen.0.insert(job.id.clone()) {
                            seen.1 += 1;
                        }
                    }
                }
                let releases = got
                    .jobs
                    .into_iter()
                    .map(|mut job| {
                        job.next_run_time =
                            job.next_run_time.map(|t| t + chrono::Duration::hours(1));
                        JobRelease::Update(job)
                    })
                    .collect();
                s.release_jobs(&me, releases).await?;
            }
            s.shutdown().await?;
            Ok::<_, BoxError>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    let (claimed, twice) = {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        (seen.0.len(), seen.1)
    };
    Ok(json!({
        "claimers": claimers,
        "partitioned": hinted,
        "drain_s": elapsed,
        "jobs_per_s": claimed as f64 / elapsed,
        "claims": latencies.len(),
        "claim_p50_ms": pct(0.5),
        "claim_p99_ms": pct(0.99),
        "claimed": claimed,
        "expected": burst,
        "claimed_twice": twice,
    }))
}

//! `aps-cluster-bench`: several scheduler processes on one shared store, through the
//! public API (`BackgroundScheduler` with the thread executor, one per process), and
//! the claim with many stored jobs. `bench/cluster-bench.sh` runs it on PostgreSQL and
//! Redis.
//!
//! ```text
//! aps-cluster-bench URL [JOBS] [SECONDS] [NODES,...]
//! ```
//! For each node count (default `1,2,3`): JOBS interval jobs (default 2,000) fire every
//! second, all at the same instant of the second (a burst of JOBS due jobs each
//! second, the hardest case for claiming); that many `aps-cluster-bench node`
//! processes run them for SECONDS (default 15). Each run notes its job, fire time,
//! node and lateness (start minus fire time). Reported over the fire times from 2 s
//! after the first to 2 s before the end: runs per second started, the share of the
//! expected fire times started, lateness p50/p99, runs by node, and fire times started
//! twice (must be 0).
//!
//! Then, with 100,000 stored jobs (paused) and 64 due: the time of one scheduler pass
//! that claims, releases and starts the 64 (`Engine::process_jobs`, public API), and,
//! marked as the inner path it is, of the store's claim alone
//! (`JobStore::acquire_due_jobs`). Medians of 20.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::{JobRelease, JobStore};
use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
use chrono::Utc;
use serde_json::{json, Value};

type BoxError = Box<dyn std::error::Error>;

/// A run as a node notes it: job, fire time (µs), lateness (µs).
type Noted = (Arc<str>, i64, i64);

/// A store on `url` under the namespace `name` (SQL table or Redis key prefix).
fn store(url: &str, name: &str) -> Result<Arc<dyn JobStore>, BoxError> {
    if url.starts_with("redis") {
        Ok(Arc::new(
            apscheduler_store_redis::RedisJobStore::builder(url)
                .prefix(format!("{name}."))
                .build()?,
        ))
    } else {
        Ok(Arc::new(
            apscheduler_store_sql::SqlJobStore::builder(url)
                .table_name(name)
                .build()?,
        ))
    }
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("node") {
        return node(&args[1..]);
    }
    let url = args
        .first()
        .ok_or("usage: aps-cluster-bench URL [JOBS] [SECONDS] [NODES,...]")?;
    let jobs: usize = args.get(1).map_or(Ok(2_000), |a| a.parse())?;
    let seconds: u64 = args.get(2).map_or(Ok(15), |a| a.parse())?;
    let counts: Vec<usize> = args
        .get(3)
        .map_or("1,2,3", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut reports = Vec::new();
    for &nodes in &counts {
        reports.push(rt.block_on(cluster(url, jobs, seconds, nodes))?);
    }
    let claim = rt.block_on(claim_with_many(url))?;
    println!(
        "{}",
        serde_json::to_string_pretty(
            &json!({"url": redact(url), "jobs": jobs, "seconds": seconds, "clusters": reports, "claim": claim})
        )?
    );
    Ok(())
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// One cluster of `nodes` processes; the report.
async fn cluster(url: &str, jobs: usize, seconds: u64, nodes: usize) -> Result<Value, BoxError> {
    let name = format!("bench_cluster_{}_{nodes}", std::process::id());
    let setup = store(url, &name)?;
    setup.start("default").await?;
    setup.remove_all_jobs().await?;
    // Every job fires at the same instant of each second, from 3 s from now.
    let first = Utc::now().with_timezone(&chrono_tz::UTC) + chrono::Duration::seconds(3);
    let first = first - chrono::Duration::nanoseconds(i64::from(first.timestamp_subsec_nanos()));
    let scheduler =
        BackgroundScheduler::from_builder(Engine::builder().jobstore("default", setup.clone()))?;
    scheduler.register_task("note", |_| Ok(json!(null)));
    scheduler.start(true)?;
    let specs: Vec<JobSpec> = (0..jobs)
        .map(|i| {
            JobSpec::task("note")
                .id(format!("job-{i:05}"))
                .trigger_args(
                    "interval",
                    json!({"seconds": 1, "start_date": first.to_rfc3339()}),
                )
                .misfire_grace_time(Some(Duration::from_secs(5)))
                .coalesce(true)
        })
        .collect();
    scheduler.add_jobs(specs)?;
    scheduler.shutdown(false)?;

    let dir = std::env::temp_dir();
    let me = std::env::current_exe()?;
    let mut children = Vec::new();
    let mut files = Vec::new();
    for n in 0..nodes {
        let out = dir.join(format!("{name}_{n}.tsv"));
        children.push(
            Command::new(&me)
                .args(["node", url, &name, &seconds.to_string()])
                .arg(&out)
                .spawn()?,
        );
        files.push(out);
    }
    for mut child in children {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a node exited with {status}").into());
        }
    }
    // (job, fire time µs) -> starts; lateness of the counted runs; runs by node.
    let mut starts: HashMap<(String, i64), u32> = HashMap::new();
    let mut late_us = Vec::new();
    let mut by_node = Vec::new();
    let from = first.timestamp_micros() + 2_000_000;
    let until = first.timestamp_micros() + (seconds as i64 - 5) * 1_000_000;
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let _ = std::fs::remove_file(file);
        let mut counted = 0;
        for line in text.lines() {
            let mut f = line.split('\t');
            let (Some(job), Some(at), Some(late)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let at: i64 = at.parse()?;
            *starts.entry((job.to_owned(), at)).or_default() += 1;
            if (from..until).contains(&at) {
                late_us.push(late.parse::<i64>()?);
                counted += 1;
            }
        }
        by_node.push(counted);
    }
    setup.remove_all_jobs().await?;
    setup.shutdown().await?;
    let twice = starts.values().filter(|&&n| n > 1).count();
    let window_s = (until - from) as f64 / 1e6;
    let expected = jobs as f64 * window_s;
    late_us.sort_unstable();
    let pct = |p: f64| {
        late_us
            .get(((late_us.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |&v| v as f64 / 1e3)
    };
    let report = json!({
        "nodes": nodes,
        "runs_per_s": late_us.len() as f64 / window_s,
        "started_share": late_us.len() as f64 / expected,
        "late_p50_ms": pct(0.5),
        "late_p99_ms": pct(0.99),
        "by_node": by_node,
        "started_twice": twice,
    });
    eprintln!("{report}");
    Ok(report)
}

/// A node: a `BackgroundScheduler` on the store for `seconds`, noting each run.
fn node(args: &[String]) -> Result<(), BoxError> {
    let [url, name, seconds, out] = args else {
        return Err("usage: aps-cluster-bench node URL NAME SECONDS OUT".into());
    };
    let seconds: u64 = seconds.parse()?;
    let rt = tokio::runtime::Runtime::new()?;
    let store = rt.block_on(async { store(url, name) })?;
    let noted: Arc<Mutex<Vec<Noted>>> = Arc::default();
    // The protocol its figures in docs/PERFORMANCE.md were measured with.
    let builder = Engine::builder()
        .jobstore("default", store)
        .leased_runs(false);
    let scheduler = BackgroundScheduler::from_builder(builder)?;
    let n = noted.clone();
    scheduler.register_task("note", move |ctx| {
        let at = ctx.scheduled_run_time.timestamp_micros();
        let late = Utc::now().timestamp_micros() - at;
        n.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((ctx.job_id.clone(), at, late));
        Ok(json!(null))
    });
    scheduler.start(false)?;
    std::thread::sleep(Duration::from_secs(seconds));
    scheduler.shutdown(true)?;
    let noted = std::mem::take(&mut *noted.lock().unwrap_or_else(|p| p.into_inner()));
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    for (job, at, late) in noted {
        writeln!(file, "{job}\t{at}\t{late}")?;
    }
    file.flush()?;
    Ok(())
}

/// 100,000 stored jobs, 64 due: one pass through the public API, and the claim alone.
async fn claim_with_many(url: &str) -> Result<Value, BoxError> {
    const STORED: usize = 100_000;
    const DUE: usize = 64;
    let name = format!("bench_claim_{}", std::process::id());
    let store = store(url, &name)?;
    store.start("default").await?;
    store.remove_all_jobs().await?;
    let engine = Engine::builder().jobstore("default", store.clone()).build();
    engine.register_task("noop", |_| Ok(json!(null)));
    engine.start(true).await?;
    let far = "2100-01-01T00:00:00Z";
    let mut specs = Vec::with_capacity(STORED);
    for i in 0..STORED - DUE {
        specs.push(
            JobSpec::task("noop")
                .id(format!("idle-{i:06}"))
                .trigger_args("interval", json!({"hours": 1, "start_date": far})),
        );
    }
    for i in 0..DUE {
        specs.push(
            JobSpec::task("noop")
                .id(format!("due-{i:02}"))
                .trigger_args("interval", json!({"seconds": 1}))
                .misfire_grace_time(None),
        );
    }
    let loaded = Instant::now();
    engine.add_jobs(specs).await?;
    let load_s = loaded.elapsed().as_secs_f64();
    engine.resume()?;
    let mut pass_ms = Vec::new();
    let mut claim_ms = Vec::new();
    for _ in 0..20 {
        // Make the 64 due again (their next run time back to now).
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let start = Instant::now();
        engine.process_jobs().await;
        pass_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    engine.pause()?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let start = Instant::now();
        let claimed = store
            .acquire_due_jobs("bench", Utc::now(), DUE, Duration::from_secs(5))
            .await?;
        claim_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let releases = claimed
            .jobs
            .into_iter()
            .map(|mut job| {
                job.next_run_time = job.next_run_time.map(|t| t + chrono::Duration::seconds(1));
                JobRelease::Update(job)
            })
            .collect();
        store.release_jobs("bench", releases).await?;
    }
    engine.shutdown(true).await?;
    store.start("default").await?;
    store.remove_all_jobs().await?;
    store.shutdown().await?;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok(json!({
        "stored": STORED,
        "due": DUE,
        "load_s": load_s,
        "pass_ms": median(&mut pass_ms),
        "inner_claim_ms": median(&mut claim_ms),
    }))
}

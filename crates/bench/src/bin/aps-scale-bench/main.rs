//! `aps-scale-bench`: claiming with millions of stored schedules and many scheduler
//! processes on one store, through the public API. `bench/scale-bench.sh` drives it.
//!
//! ```text
//! aps-scale-bench load URL NAME FROM TO
//! aps-scale-bench run URL NAME NODES [BURST] [ROUNDS] [PERIOD_S] [SERVER_PID]
//! ```
//! `load` adds the schedules FROM..TO (ids `idle-<n>`, interval jobs of one day whose
//! first fire times are spread over a day in the year 2100) with `Engine::add_jobs`,
//! 50,000 a call, printing the rate.
//!
//! `run` starts NODES processes (`aps-scale-bench node`), each a `BackgroundScheduler`
//! with the default thread executor on the store, whose job does nothing but note its
//! fire time and start time. `APS_SCALE_HISTORY` says whether the nodes keep the store's
//! run history (and so its node registry): `none` (the default), `plain` (with history,
//! the store's partitions hidden, so every claim reads the due head) or `partitioned`
//! (with history; from four live nodes each prefers the partitions it owns). Once every node is up it adds BURST (default 10,000)
//! interval jobs that all fire at one instant, every PERIOD_S (default 20) seconds,
//! ROUNDS (default 3) times. Each burst is reported: runs started, lateness p50 / p99 /
//! max (start minus fire time), how long the whole burst took to start and so the runs
//! started a second; over the run: fire times started twice (must be 0), runs by node,
//! the store claims the nodes made (each timed by a wrapper around the store, which
//! forwards every call: claim time, jobs per claim, claims that found nothing, and the
//! batch time from the claim's start to the end of its release), the CPU of the
//! database server (SERVER_PID and its children, from `/proc`) and of the nodes, and
//! on PostgreSQL what the bench database's backends waited on (`pg_stat_activity`
//! every 100 ms), its `pg_stat_database` counters and, where the server has
//! `pg_stat_statements`, the statements it spent most time on; on Redis its `INFO
//! commandstats`. One JSON object on standard output.

mod observe;
mod timed;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::JobStore;
use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use timed::{Timed, Timings};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Schedules added per `Engine::add_jobs` call when loading.
const LOAD_BATCH: u64 = 50_000;

const USAGE: &str = "usage: aps-scale-bench load URL NAME FROM TO\n       \
aps-scale-bench run URL NAME NODES [BURST] [ROUNDS] [PERIOD_S] [SERVER_PID]";

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
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or(USAGE);
    match args.first().map(String::as_str) {
        Some("node") => node(arg(1)?, arg(2)?, arg(3)?),
        Some("load") => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(load(arg(1)?, arg(2)?, arg(3)?.parse()?, arg(4)?.parse()?))
        }
        Some("run") => {
            let opt = |i: usize, default: u64| args.get(i).map_or(Ok(default), |a| a.parse());
            let plan = Plan {
                url: arg(1)?.to_owned(),
                name: arg(2)?.to_owned(),
                nodes: arg(3)?.parse()?,
                burst: opt(4, 10_000)?,
                rounds: opt(5, 3)?,
                period_s: opt(6, 20)?,
                server_pid: opt(7, 0)? as u32,
            };
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(run(&plan))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

/// The nodes' run history mode, from `APS_SCALE_HISTORY` (see the crate docs).
fn history_mode() -> Result<&'static str, BoxError> {
    match std::env::var("APS_SCALE_HISTORY").as_deref() {
        Err(_) | Ok("") | Ok("none") => Ok("none"),
        Ok("plain") => Ok("plain"),
        Ok("partitioned") => Ok("partitioned"),
        Ok(other) => Err(format!(
            "invalid value for APS_SCALE_HISTORY: {other:?} (none, plain or partitioned)"
        )
        .into()),
    }
}

/// Adds the far-ahead schedules `from..to`.
async fn load(url: &str, name: &str, from: u64, to: u64) -> Result<(), BoxError> {
    let store = store(url, name)?;
    let engine = Engine::builder().jobstore("default", store).build();
    engine.register_task("noop", |_| Ok(json!(null)));
    // Paused: the jobs go to the store, nothing is claimed.
    engine.start(true).await?;
    let base: DateTime<Utc> = "2100-01-01T00:00:00Z".parse()?;
    let started = Instant::now();
    let mut at = from;
    while at < to {
        let end = (at + LOAD_BATCH).min(to);
        let specs: Vec<JobSpec> = (at..end)
            .map(|i| {
                let first = base + chrono::Duration::seconds((i % 86_400) as i64);
                JobSpec::task("noop")
                    .id(format!("idle-{i:08}"))
                    .trigger_args(
                        "interval",
                        json!({"days": 1, "start_date": first.to_rfc3339()}),
                    )
            })
            .collect();
        engine.add_jobs(specs).await?;
        at = end;
        let s = started.elapsed().as_secs_f64();
        eprintln!(
            "loaded {} of {} ({:.0} s, {:.0} jobs/s)",
            at - from,
            to - from,
            s,
            (at - from) as f64 / s
        );
    }
    engine.shutdown(false).await?;
    let s = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"loaded": to - from, "seconds": s, "jobs_per_s": (to - from) as f64 / s})
    );
    Ok(())
}

/// One `run`'s settings.
struct Plan {
    url: String,
    name: String,
    nodes: usize,
    burst: u64,
    rounds: u64,
    period_s: u64,
    server_pid: u32,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

async fn run(plan: &Plan) -> Result<Value, BoxError> {
    let url = plan.url.as_str();
    let setup = store(url, &plan.name)?;
    let engine = Engine::builder().jobstore("default", setup).build();
    engine.register_task("note", |_| Ok(json!(null)));
    engine.start(true).await?;

    let load_before = loadavg();
    let tag = format!("{}n{}", plan.nodes, std::process::id());
    let dir = std::env::temp_dir();
    let me = std::env::current_exe()?;
    let mut children = Vec::new();
    let mut files = Vec::new();
    let up = Instant::now();
    for n in 0..plan.nodes {
        let out = dir.join(format!("aps_scale_{tag}_{n}.tsv"));
        let child = Command::new(&me)
            .args(["node", url, &plan.name])
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        children.push(child);
        files.push(out);
    }
    for child in &mut children {
        let stdout = child.stdout.take().ok_or("node without stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err(format!("a node did not start: {line:?}").into());
        }
    }
    let nodes_up_s = up.elapsed().as_secs_f64();

    // The burst: BURST jobs due at T0, then every PERIOD_S, ROUNDS times; the end date
    // makes each job finish (and leave the store) after its last fire time.
    let period = plan.period_s as i64;
    let t0 = Utc::now() + chrono::Duration::seconds(4);
    let t0 = t0 - chrono::Duration::nanoseconds(i64::from(t0.timestamp_subsec_nanos()));
    let end = t0 + chrono::Duration::seconds(period * (plan.rounds as i64 - 1) + 1);
    let specs: Vec<JobSpec> = (0..plan.burst)
        .map(|i| {
            JobSpec::task("note")
                .id(format!("burst-{tag}-{i:05}"))
                .trigger_args(
                    "interval",
                    json!({"seconds": period, "start_date": t0.to_rfc3339(), "end_date": end.to_rfc3339()}),
                )
                .misfire_grace_time(Some(Duration::from_secs(120)))
                .coalesce(true)
        })
        .collect();
    let added = Instant::now();
    engine.add_jobs(specs).await?;
    let add_burst_s = added.elapsed().as_secs_f64();
    if Utc::now() > t0 - chrono::Duration::milliseconds(500) {
        return Err("adding the burst took longer than its lead time".into());
    }

    // The database side, from just before the first burst to the end.
    let postgres = url.starts_with("postgres");
    let pg = if postgres {
        Some(observe::pg_pool(url).await?)
    } else {
        None
    };
    let counters_before = match &pg {
        Some(pool) => Some(observe::pg_counters(pool).await?),
        None => None,
    };
    let statements = match &pg {
        Some(pool) => observe::pg_statements_reset(pool).await,
        None => false,
    };
    let redis_before = if postgres {
        None
    } else {
        Some(observe::redis_info(url)?)
    };
    let server_cpu_before = observe::tree_cpu_s(plan.server_pid);
    let nodes_cpu_before = observe::tree_cpu_s(std::process::id());
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = pg
        .clone()
        .map(|pool| tokio::spawn(observe::pg_sample(pool, stop.clone())));

    let last = t0 + chrono::Duration::seconds(period * (plan.rounds as i64 - 1));
    let until = last + chrono::Duration::milliseconds(period * 750);
    let wall = Instant::now();
    tokio::time::sleep((until - Utc::now()).to_std().unwrap_or_default()).await;
    let observed_s = wall.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let server_cpu_s = observe::tree_cpu_s(plan.server_pid) - server_cpu_before;
    let nodes_cpu_s = observe::tree_cpu_s(std::process::id()) - nodes_cpu_before;
    let load_after = loadavg();
    let activity = match sampler {
        Some(handle) => handle.await?,
        None => Value::Null,
    };
    let database = match (&pg, counters_before, redis_before) {
        (Some(pool), Some(before), _) => {
            let top = if statements {
                observe::pg_statements(pool).await?
            } else {
                json!("pg_stat_statements is not loaded")
            };
            json!({"pg_stat_database": observe::diff(&before, &observe::pg_counters(pool).await?), "activity": activity, "statements": top})
        }
        (_, _, Some((before, cpu))) => {
            let (after, cpu_after) = observe::redis_info(url)?;
            json!({"commandstats": observe::redis_diff(&before, &after), "redis_cpu_s": cpu_after - cpu})
        }
        _ => Value::Null,
    };

    // Stop the nodes (end of their standard input) and read what they noted.
    for child in &mut children {
        drop(child.stdin.take());
    }
    for mut child in children {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a node exited with {status}").into());
        }
    }
    engine.shutdown(false).await?;
    let report = tally(plan, &files, t0, period, nodes_up_s, add_burst_s)?;
    Ok(json!({
        "store": if postgres { "postgresql" } else { "redis" },
        "name": plan.name,
        "nodes": plan.nodes,
        "history": history_mode()?,
        "burst": plan.burst,
        "period_s": plan.period_s,
        "load_before": load_before,
        "load_after": load_after,
        "observed_s": observed_s,
        "server_cpu_s": server_cpu_s,
        "nodes_cpu_s": nodes_cpu_s,
        "report": report,
        "database": database,
    }))
}

/// Reads the nodes' files: the bursts, duplicates, runs by node, claims and passes.
fn tally(
    plan: &Plan,
    files: &[std::path::PathBuf],
    t0: DateTime<Utc>,
    period: i64,
    nodes_up_s: f64,
    add_burst_s: f64,
) -> Result<Value, BoxError> {
    let mut starts: HashMap<(String, i64), u32> = HashMap::new();
    let mut rounds: Vec<Vec<i64>> = vec![Vec::new(); plan.rounds as usize];
    let mut by_node = Vec::new();
    let mut claim_ms = Vec::new();
    let mut jobs_claimed = 0usize;
    let mut empty_claims = 0usize;
    let mut empty_ms = Vec::new();
    let mut pass_ms = Vec::new();
    let t0_us = t0.timestamp_micros();
    for file in files {
        let mut text = String::new();
        std::fs::File::open(file)?.read_to_string(&mut text)?;
        let _ = std::fs::remove_file(file);
        let mut ran = 0u64;
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["R", job, at, start] => {
                    let at: i64 = at.parse()?;
                    let start: i64 = start.parse()?;
                    *starts.entry(((*job).to_owned(), at)).or_default() += 1;
                    ran += 1;
                    let r = (at - t0_us) / (period * 1_000_000);
                    if let Some(round) = rounds.get_mut(r as usize) {
                        round.push(start - at);
                    }
                }
                ["C", ms, n] => {
                    let ms: f64 = ms.parse()?;
                    let n: usize = n.parse()?;
                    if n == 0 {
                        empty_claims += 1;
                        empty_ms.push(ms);
                    } else {
                        jobs_claimed += n;
                        claim_ms.push(ms);
                    }
                }
                ["P", ms] => pass_ms.push(ms.parse()?),
                _ => {}
            }
        }
        by_node.push(ran);
    }
    let twice = starts.values().filter(|&&n| n > 1).count();
    let bursts: Vec<Value> = rounds
        .into_iter()
        .map(|mut late| {
            late.sort_unstable();
            let ms: Vec<f64> = late.iter().map(|&us| us as f64 / 1e3).collect();
            let span_s = ms.last().copied().unwrap_or(0.0) / 1e3;
            json!({
                "started": late.len(),
                "late_p50_ms": pct(&ms, 0.5),
                "late_p99_ms": pct(&ms, 0.99),
                "late_max_ms": ms.last().copied().unwrap_or(0.0),
                "runs_per_s": if span_s > 0.0 { late.len() as f64 / span_s } else { 0.0 },
            })
        })
        .collect();
    for v in [&mut claim_ms, &mut empty_ms, &mut pass_ms] {
        v.sort_by(f64::total_cmp);
    }
    let claims = claim_ms.len();
    Ok(json!({
        "nodes_up_s": nodes_up_s,
        "add_burst_s": add_burst_s,
        "bursts": bursts,
        "started_twice": twice,
        "runs_by_node": by_node,
        "claims": {
            "with_jobs": claims,
            "jobs_per_claim": if claims > 0 { jobs_claimed as f64 / claims as f64 } else { 0.0 },
            "claim_p50_ms": pct(&claim_ms, 0.5),
            "claim_p99_ms": pct(&claim_ms, 0.99),
            "empty": empty_claims,
            "empty_p50_ms": pct(&empty_ms, 0.5),
            "batch_p50_ms": pct(&pass_ms, 0.5),
            "batch_p99_ms": pct(&pass_ms, 0.99),
        },
    }))
}

/// A node: a `BackgroundScheduler` on the timed store until its standard input ends,
/// noting each run, then its claims and passes, in `out`.
fn node(url: &str, name: &str, out: &str) -> Result<(), BoxError> {
    let rt = tokio::runtime::Runtime::new()?;
    // Kept to the end: the store's pool was made in it.
    let inner = rt.block_on(async { store(url, name) })?;
    let timings: Arc<Mutex<Timings>> = Arc::default();
    let mode = history_mode()?;
    let history = match mode {
        "none" => None,
        _ => inner.run_history(),
    };
    let timed: Arc<dyn JobStore> =
        Arc::new(Timed::new(inner, timings.clone(), mode == "partitioned"));
    type Noted = (Arc<str>, i64, i64);
    let noted: Arc<Mutex<Vec<Noted>>> = Arc::default();
    // The protocol its figures in docs/PERFORMANCE.md were measured with.
    let mut builder = Engine::builder()
        .jobstore("default", timed)
        .leased_runs(false);
    if let Some(history) = history {
        builder = builder.run_history(history, apscheduler_engine::HistoryOptions::default());
    }
    let scheduler = BackgroundScheduler::from_builder(builder)?;
    let n = noted.clone();
    scheduler.register_task("note", move |ctx| {
        let started = Utc::now().timestamp_micros();
        let at = ctx.scheduled_run_time.timestamp_micros();
        n.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((ctx.job_id.clone(), at, started));
        Ok(json!(null))
    });
    scheduler.register_task("noop", |_| Ok(json!(null)));
    scheduler.start(false)?;
    println!("ready");
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    scheduler.shutdown(true)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    for (job, at, started) in std::mem::take(&mut *noted.lock().unwrap_or_else(|p| p.into_inner()))
    {
        writeln!(file, "R\t{job}\t{at}\t{started}")?;
    }
    let t = std::mem::take(&mut *timings.lock().unwrap_or_else(|p| p.into_inner()));
    for (ms, n) in t.claims {
        writeln!(file, "C\t{ms:.3}\t{n}")?;
    }
    for ms in t.passes {
        writeln!(file, "P\t{ms:.3}")?;
    }
    file.flush()?;
    Ok(())
}

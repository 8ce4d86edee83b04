//! `aps-daemon-bench`: the helpers `bench/daemon-bench.sh` uses around the `aps`
//! binary. It never measures `aps` itself; it loads a store and reads what `aps` wrote.
//!
//! ```text
//! aps-daemon-bench load-history URL ROWS [BATCH]
//!     Writes ROWS run records (outcome success) into the run history of the SQL store
//!     at URL, spread evenly over the jobs stored there (the jobs an `aps run` upserted),
//!     with `SqlJobStore::run_history().record_runs(&batch)`, BATCH records a call
//!     (default 1,000). Prints {"rows", "jobs", "seconds", "rows_per_s"}.
//!
//! aps-daemon-bench lateness FROM_NS TO_NS JOBS INTERVAL_MS SPREAD_MS < history.json
//!     Reads `aps history --json` (an array of runs) from stdin. The runs of the
//!     100-per-second part: job i (of JOBS, ids sorted) fires every INTERVAL_MS at
//!     offsets i * SPREAD_MS; only fire times in [FROM_NS, TO_NS) (Unix ns) count.
//!     A run's output is `date +%s%N` printed by the command: the process's start.
//!     Prints counts (expected fire times, records, distinct fire times recorded,
//!     outcomes) and lateness percentiles in ms: `process` (output - scheduled_at) and
//!     `submitted` (started_at - scheduled_at, when the scheduler handed the run to
//!     its task).
//!
//! aps-daemon-bench inner-paths URL
//!     Not a user path: where the time of `aps jobs list` and `aps history --limit 100`
//!     goes, timed on the store's own API: `SqlJobStore::get_all_jobs`;
//!     `RunHistory::latest_runs` of every job (what `aps jobs list` reads for its LAST
//!     column); one `query_runs` with `job_id` and `limit 1` per job (the slower way to
//!     read the same); one `query_runs` with `limit 100`. Median of 3 rounds, ms.
//!
//! aps-daemon-bench minute-lateness FILE
//!     FILE holds one Unix time in ns per line (`date +%s%N`); prints the count and the
//!     lateness of each after its (nearest) minute boundary, in ms (min, p50, max, all values).
//!
//! aps-daemon-bench hour-spread HOUR_NS WINDOW_S JOBS_JSON < history.json
//!     For bench/hspread-bench.sh: hourly cron jobs (`0 * * * *` or `H * * * *`) and the
//!     WINDOW_S seconds after the hour starting at HOUR_NS (Unix ns). JOBS_JSON is `aps jobs
//!     list --json` taken before the hour: each job's `next_run_time` is the fire time it
//!     expects; those in the window are the expected runs. Reads `aps history --json` from
//!     stdin and prints, overall and per minute after the hour: expected, ran (a record
//!     with a start), twice (fire times started more than once), missed, fire times
//!     without a record, records for fire times nobody expected, lateness percentiles in
//!     ms (`submitted`: started_at - scheduled_at; `process`: the command's own
//!     `date +%s%N` - scheduled_at) and the peak runs started in one second (by
//!     started_at, and by the command's own time); plus how the jobs' fire times spread
//!     over the minutes of the hour and the runs per node.
//! ```

use std::collections::{BTreeMap, HashSet};
use std::io::Read as _;
use std::time::Instant;

use apscheduler_core::{JobStore, RunOutcome, RunQuery, RunRecord};
use apscheduler_store_sql::SqlJobStore;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

#[path = "aps-daemon-bench/hour_spread.rs"]
mod hour_spread;

const USAGE: &str = "usage: aps-daemon-bench load-history URL ROWS [BATCH]\n\
       aps-daemon-bench lateness FROM_NS TO_NS JOBS INTERVAL_MS SPREAD_MS < history.json\n\
       aps-daemon-bench inner-paths URL\n\
       aps-daemon-bench minute-lateness FILE\n\
       aps-daemon-bench hour-spread HOUR_NS WINDOW_S JOBS_JSON < history.json";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("load-history") if args.len() >= 3 => {
            let batch = args.get(3).map_or(Ok(1_000), |b| b.parse())?;
            load_history(&args[1], args[2].parse()?, batch)
        }
        Some("lateness") if args.len() == 6 => lateness(
            args[1].parse()?,
            args[2].parse()?,
            args[3].parse()?,
            args[4].parse()?,
            args[5].parse()?,
        ),
        Some("minute-lateness") if args.len() == 2 => minute_lateness(&args[1]),
        Some("inner-paths") if args.len() == 2 => inner_paths(&args[1]),
        Some("hour-spread") if args.len() == 4 => {
            hour_spread::run(args[1].parse()?, args[2].parse()?, &args[3])
        }
        _ => Err(USAGE.into()),
    }
}

fn load_history(url: &str, rows: usize, batch: usize) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let store = SqlJobStore::connect(url)?;
    let history = store
        .run_history()
        .ok_or("this store keeps no run history")?;
    runtime.block_on(async {
        let mut ids: Vec<String> = store
            .get_all_jobs()
            .await?
            .into_iter()
            .map(|j| j.id.to_string())
            .collect();
        ids.sort();
        if ids.is_empty() {
            return Err("the store holds no jobs: start `aps run` on it once first".into());
        }
        history.prepare().await?;
        let n = ids.len();
        // Job j's k-th newest run is k hours (plus j's share of an hour) before `base`.
        let base = Utc::now() - Duration::minutes(1);
        let start = Instant::now();
        let mut records = Vec::with_capacity(batch);
        for i in 0..rows {
            let (j, k) = (i % n, (i / n) as i64);
            let scheduled_at =
                base - Duration::hours(k) - Duration::microseconds(j as i64 * 3_600_000_000 / n as i64);
            records.push(RunRecord {
                // As the engine makes them (UUIDv7 text).
                run_id: uuid::Uuid::now_v7().to_string(),
                job_id: ids[j].clone(),
                scheduled_at,
                started_at: Some(scheduled_at + Duration::milliseconds(2)),
                finished_at: Some(scheduled_at + Duration::milliseconds(7)),
                outcome: RunOutcome::Success,
                exit_code: Some(0),
                http_status: None,
                output: String::new(),
                message: None,
                node: "bench-host/1".into(),
                attempt: 1,
                backfill: false,
                due_at: None,
            });
            if records.len() == batch || i + 1 == rows {
                history.record_runs(&records).await?;
                records.clear();
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({ "rows": rows, "jobs": n, "seconds": seconds, "rows_per_s": rows as f64 / seconds })
        );
        store.shutdown().await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

fn ns_of(t: &DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

fn time_field(run: &Value, field: &str) -> Option<DateTime<Utc>> {
    run.get(field)?.as_str()?.parse::<DateTime<Utc>>().ok()
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({
        "n": v.len(),
        "min_ms": v.first(),
        "p50_ms": pct(&v, 50.0),
        "p90_ms": pct(&v, 90.0),
        "p99_ms": pct(&v, 99.0),
        "max_ms": v.last(),
    })
}

fn lateness(
    from_ns: i128,
    to_ns: i128,
    jobs: usize,
    interval_ms: i128,
    spread_ms: i128,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let runs: Vec<Value> = serde_json::from_str(&text)?;
    let interval = interval_ms * 1_000_000;
    // Fire times of job i: t with t mod interval == i * spread (ms), in [from, to).
    let mut expected = 0i128;
    for i in 0..jobs as i128 {
        let offset = (i * spread_ms * 1_000_000).rem_euclid(interval);
        let first = from_ns + (offset - from_ns).rem_euclid(interval);
        if first < to_ns {
            expected += (to_ns - 1 - first) / interval + 1;
        }
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen: HashSet<(String, i128)> = HashSet::new();
    let (mut process, mut submitted, mut records) = (Vec::new(), Vec::new(), 0usize);
    let mut job_ids: HashSet<String> = HashSet::new();
    for run in &runs {
        let Some(at) = time_field(run, "scheduled_at") else {
            continue;
        };
        let at_ns = ns_of(&at);
        if at_ns < from_ns || at_ns >= to_ns {
            continue;
        }
        records += 1;
        let job = run["job_id"].as_str().unwrap_or("").to_owned();
        job_ids.insert(job.clone());
        seen.insert((job, at_ns));
        *outcomes
            .entry(run["outcome"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        if let Some(s) = time_field(run, "started_at") {
            submitted.push((ns_of(&s) - at_ns) as f64 / 1e6);
        }
        if let Some(p) = run["output"]
            .as_str()
            .and_then(|o| o.trim().parse::<i128>().ok())
        {
            process.push((p - at_ns) as f64 / 1e6);
        }
    }
    println!(
        "{}",
        json!({
            "expected_fires": expected as u64,
            "records": records,
            "distinct_fires_recorded": seen.len(),
            "fires_without_record": (expected - seen.len() as i128).max(0) as u64,
            "jobs_seen": job_ids.len(),
            "outcomes": outcomes,
            "process": summary(process),
            "submitted": summary(submitted),
        })
    );
    Ok(())
}

fn minute_lateness(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut v: Vec<f64> = text
        .lines()
        .filter_map(|l| l.trim().parse::<i128>().ok())
        .map(|ns| {
            // Nearest minute boundary: a start just before one is early (negative).
            let ms = ns.rem_euclid(60_000_000_000) as f64 / 1e6;
            if ms > 30_000.0 {
                ms - 60_000.0
            } else {
                ms
            }
        })
        .collect();
    let all = v.clone();
    v.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "n": v.len(),
            "min_ms": v.first(),
            "p50_ms": pct(&v, 50.0),
            "max_ms": v.last(),
            "all_ms": all,
        })
    );
    Ok(())
}

fn inner_paths(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    runtime.block_on(async {
        let start = Instant::now();
        let store = SqlJobStore::connect(url)?;
        let history = store
            .run_history()
            .ok_or("this store keeps no run history")?;
        history.prepare().await?;
        let open_ms = ms(start);
        let (mut list, mut latest, mut last, mut recent) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut jobs = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let all = store.get_all_jobs().await?;
            list.push(ms(t));
            jobs = all.len();
            let ids: Vec<String> = all.iter().map(|j| j.id.to_string()).collect();
            let t = Instant::now();
            let found = history.latest_runs(&ids).await?;
            latest.push(ms(t));
            if found.len() != ids.len() {
                return Err(format!("latest_runs: {} of {} jobs", found.len(), ids.len()).into());
            }
            let t = Instant::now();
            for job in &all {
                let q = RunQuery {
                    job_id: Some(job.id.to_string()),
                    limit: 1,
                    ..RunQuery::default()
                };
                history.query_runs(&q).await?;
            }
            last.push(ms(t));
            let t = Instant::now();
            history
                .query_runs(&RunQuery {
                    limit: 100,
                    ..RunQuery::default()
                })
                .await?;
            recent.push(ms(t));
        }
        println!(
            "{}",
            json!({
                "jobs": jobs,
                "connect_prepare_ms": open_ms,
                "get_all_jobs_ms": median(list),
                "latest_runs_ms": median(latest),
                "per_job_last_run_queries_ms": median(last),
                "history_limit_100_ms": median(recent),
            })
        );
        store.shutdown().await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

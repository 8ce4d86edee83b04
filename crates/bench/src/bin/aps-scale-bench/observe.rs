//! The database side of a round: the server's CPU (from `/proc`, the server process and
//! its children), PostgreSQL's activity of the bench database (`pg_stat_activity`
//! sampled every 100 ms: what its backends wait on) and counters (`pg_stat_database`),
//! and Redis' `INFO commandstats` and `INFO cpu`.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use crate::BoxError;

/// Clock ticks a second (`getconf CLK_TCK`; 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU seconds (user + system) of `pid` and every process under it, from `/proc`.
pub(crate) fn tree_cpu_s(pid: u32) -> f64 {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut cpu: HashMap<u32, f64> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for entry in dir.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: fields after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After ')': state(0) ppid(1) ... utime(11) stime(12).
        let (Some(pp), Some(u), Some(s)) = (f.get(1), f.get(11), f.get(12)) else {
            continue;
        };
        parent.insert(p, pp.parse().unwrap_or(0));
        let ticks = u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0);
        cpu.insert(p, ticks / TICKS);
    }
    cpu.iter()
        .filter(|(&p, _)| {
            let mut at = p;
            for _ in 0..8 {
                if at == pid {
                    return true;
                }
                match parent.get(&at) {
                    Some(&pp) if pp != 0 => at = pp,
                    _ => return false,
                }
            }
            false
        })
        .map(|(_, s)| s)
        .sum()
}

/// A connection to the bench database for observing it.
pub(crate) async fn pg_pool(url: &str) -> Result<PgPool, BoxError> {
    Ok(PgPoolOptions::new().max_connections(2).connect(url).await?)
}

/// `pg_stat_database` of the current database: the counters a round is judged by.
pub(crate) async fn pg_counters(pool: &PgPool) -> Result<BTreeMap<String, i64>, BoxError> {
    let row = sqlx::query(
        "SELECT xact_commit, xact_rollback, tup_fetched, tup_returned, tup_inserted, \
         tup_updated, tup_deleted, blks_read, blks_hit \
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    let mut out = BTreeMap::new();
    for name in [
        "xact_commit",
        "xact_rollback",
        "tup_fetched",
        "tup_returned",
        "tup_inserted",
        "tup_updated",
        "tup_deleted",
        "blks_read",
        "blks_hit",
    ] {
        out.insert(name.to_owned(), row.try_get::<i64, _>(name)?);
    }
    Ok(out)
}

/// `after - before`, counter by counter.
pub(crate) fn diff(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> Value {
    let mut out = serde_json::Map::new();
    for (k, a) in after {
        out.insert(k.clone(), json!(a - before.get(k).copied().unwrap_or(0)));
    }
    Value::Object(out)
}

/// Samples `pg_stat_activity` of the current database every 100 ms until `stop`:
/// per sample, how many of its backends are active, and what each waits on
/// (`wait_event_type:wait_event`, or `cpu` for an active backend waiting on nothing).
pub(crate) async fn pg_sample(pool: PgPool, stop: Arc<AtomicBool>) -> Value {
    let mut samples = 0u64;
    let mut active_sum = 0u64;
    let mut active_max = 0u64;
    let mut waits: BTreeMap<String, u64> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        let rows = sqlx::query(
            "SELECT state, wait_event_type, wait_event FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend'",
        )
        .fetch_all(&pool)
        .await;
        if let Ok(rows) = rows {
            samples += 1;
            let mut active = 0;
            for row in rows {
                let state: Option<String> = row.try_get(0).ok().flatten();
                let kind: Option<String> = row.try_get(1).ok().flatten();
                let event: Option<String> = row.try_get(2).ok().flatten();
                let state = state.unwrap_or_default();
                if state != "active" && state != "idle in transaction" {
                    continue;
                }
                active += 1;
                let key = match (kind, event) {
                    (Some(k), Some(e)) => format!("{state}/{k}:{e}"),
                    _ => format!("{state}/cpu"),
                };
                *waits.entry(key).or_default() += 1;
            }
            active_sum += active;
            active_max = active_max.max(active);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    json!({
        "samples": samples,
        "busy_backends_mean": if samples > 0 { active_sum as f64 / samples as f64 } else { 0.0 },
        "busy_backends_max": active_max,
        "busy_backend_samples_by_wait": waits,
    })
}

/// Empties `pg_stat_statements` when the server has it (loaded with
/// `shared_preload_libraries` and created in the database); says whether it has.
pub(crate) async fn pg_statements_reset(pool: &PgPool) -> bool {
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(pool)
        .await
        .is_ok()
}

/// The statements the server spent most time on since the reset: calls, rows, mean
/// and total execution time on the server (the client's time adds the round trip).
pub(crate) async fn pg_statements(pool: &PgPool) -> Result<Value, BoxError> {
    let rows = sqlx::query(
        "SELECT calls, rows, mean_exec_time, total_exec_time, \
         left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS q \
         FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database \
         WHERE datname = current_database()) ORDER BY total_exec_time DESC LIMIT 6",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        out.push(json!({
            "calls": row.try_get::<i64, _>("calls")?,
            "rows": row.try_get::<i64, _>("rows")?,
            "mean_ms": row.try_get::<f64, _>("mean_exec_time")?,
            "total_ms": row.try_get::<f64, _>("total_exec_time")?,
            "query": row.try_get::<String, _>("q")?,
        }));
    }
    Ok(Value::Array(out))
}

/// Redis commands by name: calls and microseconds.
pub(crate) type CommandStats = BTreeMap<String, (i64, i64)>;

/// `INFO commandstats` and `INFO cpu` of a Redis server, through `redis-cli`: each
/// command's calls and microseconds, and the server's CPU seconds.
pub(crate) fn redis_info(url: &str) -> Result<(CommandStats, f64), BoxError> {
    let out = Command::new("redis-cli")
        .args(["-u", url, "INFO", "all"])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "redis-cli INFO failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut commands = BTreeMap::new();
    let mut cpu = 0.0;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("cmdstat_") {
            // cmdstat_evalsha:calls=12,usec=345,usec_per_call=...
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key))
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            commands.insert(name.to_owned(), (field("calls="), field("usec=")));
        } else if let Some(v) = line
            .strip_prefix("used_cpu_sys:")
            .or_else(|| line.strip_prefix("used_cpu_user:"))
        {
            cpu += v.parse::<f64>().unwrap_or(0.0);
        }
    }
    Ok((commands, cpu))
}

/// The commands a round ran on Redis: calls and busy milliseconds, most time first.
pub(crate) fn redis_diff(before: &CommandStats, after: &CommandStats) -> Value {
    let mut rows: Vec<(String, i64, i64)> = after
        .iter()
        .map(|(k, (c, u))| {
            let (c0, u0) = before.get(k).copied().unwrap_or((0, 0));
            (k.clone(), c - c0, u - u0)
        })
        .filter(|(k, c, _)| *c > 0 && k != "info")
        .collect();
    rows.sort_by_key(|r| -r.2);
    Value::Array(
        rows.into_iter()
            .map(|(k, c, u)| json!({"command": k, "calls": c, "busy_ms": u as f64 / 1e3}))
            .collect(),
    )
}

//! The driver: builds the world and its nodes on one paused-clock runtime, injects the
//! faults the seed draws step by step, checks the invariants after every step, and
//! reports.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    Overlap, Retention, RetryPolicy, RunHistory as _, RunKey, RunOrigin, RunOutcome, RunQuery,
    RunStore as _, TaskContext,
};
use apscheduler_engine::{AsyncScheduler, Engine, HistoryOptions, JobSpec, DEFAULT_LEASE};
use apscheduler_executor_async::AsyncExecutor;
use chrono::{DateTime, TimeZone, Utc};
use rand::Rng;

use crate::calls::{Calls, Target};
use crate::check::Checker;
use crate::clock::{SkewedClock, VirtualTime};
use crate::log::LogSink;
use crate::store::{SimHistory, SimStore};
use crate::world::{NodeLink, Pending, Phase, Process, World};
use crate::{Report, Scenario};

/// How often the driver injects faults and checks.
const STEP: Duration = Duration::from_millis(250);
/// How much longer than its settle time a run goes on while backfills' runs are live.
const BACKFILL_DRAIN_MS: u64 = 120_000;
/// Each node's heartbeat, and the node time-out (the defaults).
const HEARTBEAT: Duration = Duration::from_secs(1);
const NODE_TIMEOUT: Duration = Duration::from_secs(10);
/// How soon a killed node's runs must all be ended once it has left the registry: two
/// node time-outs (two looks for nodes missing from it), and 10 s for looks that failed
/// under the store's faults and were made again.
const REAP_BOUND_MS: u64 = 2 * 10_000 + 10_000;
/// The jobs' misfire grace time: longer than the lease, so a dead node's claims are
/// taken over within it.
const GRACE: Duration = Duration::from_secs(10);
/// The longest run.
const MAX_RUN_MS: u64 = 3000;
/// Attempts of a retrying job (`Scenario::run_policies`), 1 s apart.
const ATTEMPTS: u32 = 3;
/// Fire times this long before the end must have settled: grace, lease, a run, the
/// node time-out, and some writes.
const SETTLED: Duration = Duration::from_secs(30);

/// A job: id, first fire time, period in seconds (0: a one-off job).
struct JobPlan {
    id: String,
    start: DateTime<Utc>,
    every: i64,
}

fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

/// Runs `scenario` under `seed` on a fresh single-threaded runtime whose clock is
/// paused (virtual: it jumps to the next timer whenever every task waits).
pub(crate) fn run(scenario: &Scenario, seed: u64) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let world = runtime.block_on(async {
        Arc::new(World::new(
            seed,
            VirtualTime::new(epoch()),
            scenario.full_trace,
            scenario.sabotage,
        ))
    });
    // The engines' warnings and errors go to the world's log, not stderr.
    let _log = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(LogSink::maker(world.clone()))
            .with_max_level(tracing::Level::WARN)
            .without_time()
            .with_ansi(false)
            .finish(),
    );
    runtime.block_on(simulate(scenario, world.clone()));
    // Every node's tasks are dropped with the runtime: a simulation ends as a power cut.
    drop(runtime);
    let (trace_hash, events, trace_tail) = world.trace_summary();
    let checker = world.checker.lock();
    Report {
        seed,
        trace_hash,
        events,
        starts: checker.starts.len(),
        crashed: checker.crashed.len(),
        reaped: checker.reaped.len(),
        violations: checker.violations.clone(),
        trace_tail,
        log_tail: world.log_tail(),
    }
}

/// Node `i`: an engine on its own view of the store and history, its clock skewed,
/// its runs recorded into the checker.
fn node(world: &Arc<World>, i: usize, scenario: &Scenario) -> (Arc<NodeLink>, Engine) {
    let name = format!("n{i:03}");
    let link = Arc::new(NodeLink::new(name.clone()));
    let max = i64::try_from(scenario.max_skew.as_millis()).unwrap_or(i64::MAX);
    let skew = world.rng(|r| r.gen_range(-max..=max));
    world.trace(format!("{name} clock skew {skew} ms"));
    let clock = SkewedClock {
        time: world.time,
        skew: chrono::Duration::milliseconds(skew),
    };
    let store = SimStore {
        world: world.clone(),
        link: link.clone(),
    };
    let history = SimHistory {
        world: world.clone(),
        link: link.clone(),
    };
    let engine = Engine::builder()
        .clock(Arc::new(clock))
        .timezone(chrono_tz::UTC)
        .jobstore("default", Arc::new(store))
        .executor("default", Arc::new(AsyncExecutor::new(None)))
        .scheduler_id(name.clone())
        .lease(DEFAULT_LEASE)
        .change_poll(Some(Duration::from_secs(1)))
        .leased_runs(scenario.leased_runs)
        .run_history(
            Arc::new(history),
            HistoryOptions {
                node: Some(name),
                retention: Retention {
                    max_runs_per_job: None,
                    max_age: None,
                },
                heartbeat: HEARTBEAT,
                node_timeout: NODE_TIMEOUT,
                record_starts: scenario.record_starts,
                ..HistoryOptions::default()
            },
        )
        .build();
    let (w, l) = (world.clone(), link.clone());
    engine.register_async_task("work", move |ctx: TaskContext| {
        let (w, l) = (w.clone(), l.clone());
        async move {
            // A run of a paused node starts when it resumes; of a killed one, never.
            l.gate().await;
            let at = ctx.scheduled_run_time.with_timezone(&Utc);
            let ms = w.time.millis();
            // A `recover` job's run again after an interruption is a run of its own.
            let rerun = ctx
                .run_id
                .as_deref()
                .and_then(RunKey::from_id)
                .map_or(0, |k| k.rerun);
            w.trace(format!(
                "{} start {} {at} #{}.r{rerun}",
                l.name, ctx.job_id, ctx.attempt
            ));
            w.checker.lock().started(
                (ctx.job_id.to_string(), at, ctx.attempt, rerun),
                &l.name,
                ms,
            );
            let run = w.rng(|r| r.gen_range(0..=MAX_RUN_MS));
            tokio::time::sleep(Duration::from_millis(run)).await;
            l.gate().await;
            // A retrying job's attempt fails one time in two, the last never.
            if ctx.job_id.starts_with(['r', 'd'])
                && ctx.attempt < ATTEMPTS
                && w.rng(|r| r.gen_bool(0.5))
            {
                return Err(format!("attempt {} failed", ctx.attempt).into());
            }
            Ok(serde_json::Value::Null)
        }
    });
    (link, engine)
}

async fn simulate(scenario: &Scenario, world: Arc<World>) {
    let mut links = Vec::new();
    let mut engines = Vec::new();
    for i in 0..scenario.nodes {
        let (link, engine) = node(&world, i, scenario);
        links.push(link);
        engines.push(engine);
    }
    let mut plans = Vec::new();
    for j in 0..scenario.jobs {
        let every = world.rng(|r| r.gen_range(1..=5i64));
        let start = epoch() + chrono::Duration::seconds(3 + (j as i64 % every));
        // Plain (`j`), retrying (`r`), buffering (`b`), `recover` (`v`) jobs, and
        // one-off jobs that retry (`d`): each stays until its last attempt ended.
        let kind = match scenario.run_policies {
            true => ['j', 'r', 'b', 'v', 'd'][world.rng(|r| r.gen_range(0..5usize))],
            false => 'j',
        };
        let id = format!("{kind}{j:04}");
        let (trigger, args, start, every) = if kind == 'd' {
            let at = epoch() + chrono::Duration::seconds(world.rng(|r| r.gen_range(3..=40i64)));
            let args =
                serde_json::json!({ "run_date": at.format("%Y-%m-%d %H:%M:%S").to_string() });
            ("date", args, at, 0)
        } else {
            let args = serde_json::json!({
                "seconds": every,
                "start_date": start.format("%Y-%m-%d %H:%M:%S").to_string(),
            });
            ("interval", args, start, every)
        };
        let spec = JobSpec::task("work")
            .id(id.clone())
            .trigger_args(trigger, args)
            .coalesce(false)
            .max_instances(world.rng(|r| r.gen_range(1..=2u32)))
            .misfire_grace_time(Some(GRACE));
        let spec = match kind {
            'r' | 'd' => spec.retry(RetryPolicy::new(ATTEMPTS, Duration::from_secs(1))),
            'b' => spec.max_instances(1).overlap(Overlap::BufferOne),
            'v' => spec.recover(true),
            _ => spec,
        };
        engines[0]
            .add_job(spec)
            .await
            .expect("adding a job before any fault");
        plans.push(JobPlan { id, start, every });
    }
    for engine in &engines {
        AsyncScheduler::from_engine(engine.clone())
            .expect("an async scheduler")
            .start(false)
            .await
            .expect("a node starts before any fault");
    }
    world.trace("started");
    let calls = Arc::new(parking_lot::Mutex::new(Calls::default()));
    let targets: Vec<Target> = (plans.iter())
        .map(|p| Target {
            id: p.id.clone(),
            start: p.start,
        })
        .collect();
    let cluster = Cluster {
        links: &links,
        engines: &engines,
        calls: &calls,
        targets: &targets,
    };
    drive(scenario, &world, &cluster).await;
    let end = world.time.now();
    let settled = chrono::Duration::from_std(SETTLED).unwrap_or_default();
    let horizon = end - settled;
    let removed = calls.lock().removed.clone();
    let expected: Vec<(String, DateTime<Utc>)> = plans
        .iter()
        .flat_map(|p| {
            // A removed job's fire times up to its removal, less the time they may
            // have waited for their release.
            let until = removed
                .get(&p.id)
                .map_or(horizon, |&at| (at - settled).min(horizon));
            // A one-off job (`every` 0) fires once.
            let count = if p.every == 0 { 1 } else { usize::MAX };
            (0..)
                .map(move |k| {
                    (
                        p.id.clone(),
                        p.start + chrono::Duration::seconds(k * p.every),
                    )
                })
                .take(count)
                .take_while(move |(_, t)| *t <= until)
        })
        .collect();
    let records = world
        .history
        .query_runs(&RunQuery {
            limit: usize::MAX,
            ..RunQuery::default()
        })
        .await
        .expect("the memory history answers");
    let listed = world
        .history
        .nodes()
        .expect("the memory history keeps a registry")
        .list_nodes()
        .await
        .expect("the memory registry answers");
    let mut checker = world.checker.lock();
    checker.outcomes(&expected, &records);
    checker.all_reaped(listed.iter().map(|n| n.node.as_str()));
    let calls = calls.lock();
    if scenario.operator_calls {
        calls.check(&mut checker, &records, horizon);
    }
    drop(checker);
    world.trace(format!(
        "calls: {} run(s) started by hand, {} backfilled, {} removal(s)",
        calls.run_now.len(),
        calls.backfilled,
        calls.removed.len()
    ));
    world.trace(format!(
        "end: {} fire times checked, {} records",
        expected.len(),
        records.len()
    ));
}

/// The nodes and what operators' calls may name.
struct Cluster<'a> {
    links: &'a [Arc<NodeLink>],
    engines: &'a [Engine],
    calls: &'a Arc<parking_lot::Mutex<Calls>>,
    targets: &'a [Target],
}

/// Steps through the fault window and the calm after it.
async fn drive(scenario: &Scenario, world: &Arc<World>, cluster: &Cluster<'_>) {
    let links = cluster.links;
    let faults_ms = u64::try_from(scenario.faults_for.as_millis()).unwrap_or(u64::MAX);
    let end_ms = faults_ms + u64::try_from(scenario.settle.as_millis()).unwrap_or(0);
    let step_s = STEP.as_secs_f64();
    let mut resume_at: Vec<Option<u64>> = vec![None; links.len()];
    world.faults.lock().loss_per_mille = scenario.loss_per_mille;
    let mut calm = false;
    loop {
        let now = world.time.millis();
        if !world.checker.lock().violations.is_empty() {
            return;
        }
        if now >= end_ms
            && (now >= end_ms + BACKFILL_DRAIN_MS || !backfills_live(world, cluster.targets).await)
        {
            return;
        }
        for (i, at) in resume_at.iter_mut().enumerate() {
            if at.is_some_and(|at| at <= now) {
                *at = None;
                // A pause that never came (no call meanwhile) is dropped.
                world.pending.lock().remove(&links[i].name);
                if links[i].process() == Process::Paused {
                    links[i].set(Process::Up);
                    world.trace(format!("{} resumed", links[i].name));
                }
            }
        }
        if now < faults_ms {
            // Up, with no crash or pause pending: the nodes a new one may take.
            let up: Vec<usize> = {
                let pending = world.pending.lock();
                (0..links.len())
                    .filter(|&i| {
                        links[i].process() == Process::Up && !pending.contains_key(&links[i].name)
                    })
                    .collect()
            };
            let draw = |rate: f64| world.rng(|r| r.gen_bool((rate * step_s).min(1.0)));
            let phase = || {
                if world.rng(|r| r.gen_bool(0.5)) {
                    Phase::BeforeRequest
                } else {
                    Phase::AfterApply
                }
            };
            if draw(scenario.crash_rate) && up.len() > 1 {
                let i = up[world.rng(|r| r.gen_range(0..up.len()))];
                let phase = phase();
                world.pending.lock().insert(
                    links[i].name.clone(),
                    Pending {
                        process: Process::Crashed,
                        phase,
                    },
                );
                world.trace(format!(
                    "{} to crash at its next call ({phase:?})",
                    links[i].name
                ));
            } else if draw(scenario.pause_rate) && up.len() > 1 {
                let i = up[world.rng(|r| r.gen_range(0..up.len()))];
                let lease = u64::try_from(DEFAULT_LEASE.as_millis()).unwrap_or(5000);
                let most = 2 * u64::try_from(NODE_TIMEOUT.as_millis()).unwrap_or(10_000);
                let pause = world.rng(|r| r.gen_range(lease + 500..=most));
                let at = (now + pause).min(faults_ms);
                resume_at[i] = Some(at);
                let phase = phase();
                world.pending.lock().insert(
                    links[i].name.clone(),
                    Pending {
                        process: Process::Paused,
                        phase,
                    },
                );
                world.trace(format!(
                    "{} to pause at its next call ({phase:?}) until {at}",
                    links[i].name
                ));
            }
            if scenario.operator_calls {
                let (engines, targets) = (cluster.engines, cluster.targets);
                crate::calls::draw(world, cluster.calls, engines, &up, targets, step_s);
            }
            if draw(scenario.failover_rate) {
                let down = world.rng(|r| r.gen_range(500..=4000u64));
                world.faults.lock().down_until = now + down;
                world.trace(format!("store failing over for {down} ms"));
            }
            if draw(scenario.slow_rate) {
                let (len, max) =
                    world.rng(|r| (r.gen_range(1000..=8000u64), r.gen_range(100..=1500u64)));
                let mut f = world.faults.lock();
                f.slow_until = now + len;
                f.slow_max = Duration::from_millis(max);
                drop(f);
                world.trace(format!("store slow for {len} ms, up to {max} ms a call"));
            }
        } else if !calm {
            calm = true;
            *world.faults.lock() = Default::default();
            world.pending.lock().clear();
            world.trace("faults stop");
        }
        tokio::time::sleep(STEP).await;
        check_step(world, world.time.millis()).await;
    }
}

/// Whether a backfill's run is still live: under `skip` a backfill's runs wait for
/// their job's instance, one after another, so a job backfilled several times during
/// the faults may still work through them when the settle time is over.
async fn backfills_live(world: &World, targets: &[Target]) -> bool {
    for t in targets {
        let runs = world.jobs.runs_of_job(&t.id).await.unwrap_or_default();
        // Its runs and their retries.
        let backfilled: BTreeSet<DateTime<Utc>> = (runs.iter())
            .filter(|r| r.origin == RunOrigin::Backfill)
            .map(|r| r.key.fire_time)
            .collect();
        if (runs.iter()).any(|r| r.state.is_live() && backfilled.contains(&r.key.fire_time)) {
            return true;
        }
    }
    false
}

/// After each step: the registry and the `running` records, read straight from the
/// store model (no faults).
async fn check_step(world: &World, now_ms: u64) {
    let listed: BTreeSet<String> = world
        .history
        .nodes()
        .expect("the memory history keeps a registry")
        .list_nodes()
        .await
        .expect("the memory registry answers")
        .into_iter()
        .map(|n| n.node)
        .collect();
    let running = world
        .history
        .query_runs(&RunQuery {
            outcome: Some(RunOutcome::Running),
            limit: usize::MAX,
            ..RunQuery::default()
        })
        .await
        .expect("the memory history answers");
    let mut checker: parking_lot::MutexGuard<'_, Checker> = world.checker.lock();
    checker.after_step(now_ms, REAP_BOUND_MS, &listed, &running);
}

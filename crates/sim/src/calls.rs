//! What operators do to a running cluster, drawn during the faults
//! ([`Scenario::operator_calls`](crate::Scenario::operator_calls)): a job run now by
//! hand, a backfill of a job's past, a job removed while runs of it wait; and what each
//! must leave once the faults stop.

use std::collections::BTreeMap;
use std::sync::Arc;

use apscheduler_core::{RunOutcome, RunRecord};
use apscheduler_engine::{BackfillRequest, Engine};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rand::Rng;

use crate::check::Checker;
use crate::world::World;

/// Runs started by hand per second, over the cluster.
const RUN_NOW_RATE: f64 = 1.0 / 2.0;
/// Backfills per second.
const BACKFILL_RATE: f64 = 1.0 / 4.0;
/// Job removals per second.
const REMOVE_RATE: f64 = 1.0 / 15.0;
/// A backfill's range ends this long before its call, so that its fire times were
/// released by the scheduler first (a fire time still claimed is not backfilled twice
/// anyway: the store keeps one live run per key).
const BACKFILL_LAG: chrono::Duration = chrono::Duration::seconds(5);
/// The longest range a backfill asks for.
const BACKFILL_SPAN: chrono::Duration = chrono::Duration::seconds(10);

/// What the calls were answered.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    /// Runs started by hand that the scheduler acknowledged, by run id: the node that
    /// took the call and when (virtual ms).
    pub(crate) run_now: BTreeMap<String, (String, u64)>,
    /// Jobs whose removal was asked (whatever the answer), and when.
    pub(crate) removed: BTreeMap<String, DateTime<Utc>>,
    /// Backfill runs planned.
    pub(crate) backfilled: usize,
}

/// One job the calls may name: its id and first fire time.
pub(crate) struct Target {
    pub(crate) id: String,
    pub(crate) start: DateTime<Utc>,
}

/// Draws this step's calls (`step_s` seconds long) and sends each to node `engines[i]`
/// of `up` in a task of its own: a call on a node that is paused or killed meanwhile
/// waits or never returns, like an operator's request to a stalled daemon.
pub(crate) fn draw(
    world: &Arc<World>,
    calls: &Arc<Mutex<Calls>>,
    engines: &[Engine],
    up: &[usize],
    targets: &[Target],
    step_s: f64,
) {
    if up.is_empty() || targets.is_empty() {
        return;
    }
    let draw = |rate: f64| world.rng(|r| r.gen_bool((rate * step_s).min(1.0)));
    let (run_now, backfill, remove) = (draw(RUN_NOW_RATE), draw(BACKFILL_RATE), draw(REMOVE_RATE));
    let pick = |n: usize| world.rng(|r| r.gen_range(0..n));
    if run_now {
        let (engine, job) = (
            engines[up[pick(up.len())]].clone(),
            &targets[pick(targets.len())],
        );
        let (world, calls, id) = (world.clone(), calls.clone(), job.id.clone());
        tokio::spawn(async move {
            let node = engine.scheduler_id().to_owned();
            match engine
                .run_job_now(&id, None, Some("run now (simulated operator)"))
                .await
            {
                Ok(Some(run)) => {
                    world.trace(format!("{node} run now {id}: run {run}"));
                    let at = world.time.millis();
                    calls.lock().run_now.insert(run, (node, at));
                }
                Ok(None) => world.trace(format!("{node} run now {id}: no run id")),
                Err(e) => world.trace(format!("{node} run now {id} refused: {e}")),
            }
        });
    }
    if backfill {
        let (engine, job) = (
            engines[up[pick(up.len())]].clone(),
            &targets[pick(targets.len())],
        );
        let (world, calls, id) = (world.clone(), calls.clone(), job.id.clone());
        let to = world.time.now() - BACKFILL_LAG;
        // Ten seconds of the past; half the backfills run again what succeeded too.
        let from = job.start.max(to - BACKFILL_SPAN);
        let request = BackfillRequest {
            rate_per_sec: 1000.0,
            rerun_succeeded: world.rng(|r| r.gen_bool(0.5)),
            ..BackfillRequest::new(from, to)
        };
        if to > from {
            tokio::spawn(async move {
                let node = engine.scheduler_id().to_owned();
                match engine.backfill(&id, &request).await {
                    Ok(report) => {
                        world.trace(format!(
                            "{node} backfill {id} to {to}: {} run(s)",
                            report.to_run.len()
                        ));
                        calls.lock().backfilled += report.to_run.len();
                    }
                    Err(e) => world.trace(format!("{node} backfill {id} refused: {e}")),
                }
            });
        }
    }
    // Jobs that retry or buffer: runs of theirs wait when they go.
    let waiting: Vec<&Target> = (targets.iter())
        .filter(|t| t.id.starts_with(['r', 'b']) && !calls.lock().removed.contains_key(&t.id))
        .collect();
    if remove && !waiting.is_empty() {
        let engine = engines[up[pick(up.len())]].clone();
        let id = waiting[pick(waiting.len())].id.clone();
        calls.lock().removed.insert(id.clone(), world.time.now());
        let world = world.clone();
        tokio::spawn(async move {
            let node = engine.scheduler_id().to_owned();
            match engine.remove_job(&id, None).await {
                Ok(()) => world.trace(format!("{node} removed {id}")),
                Err(e) => world.trace(format!("{node} remove {id} failed: {e}")),
            }
        });
    }
}

impl Calls {
    /// Once the faults stopped and everything settled: every run started by hand that
    /// was acknowledged has an outcome, and no run of a fire time up to `horizon` (by
    /// hand, backfilled, of a removed job or not) is still `running`.
    pub(crate) fn check(
        &self,
        checker: &mut Checker,
        records: &[RunRecord],
        horizon: DateTime<Utc>,
    ) {
        let by_id: BTreeMap<&str, &RunRecord> = records.iter().map(|r| (&*r.run_id, r)).collect();
        for (run, (node, ms)) in &self.run_now {
            match by_id.get(run.as_str()) {
                None => checker.violations.push(format!(
                    "run {run} started by hand on {node} at {ms} ms has no record"
                )),
                Some(r) if r.outcome == RunOutcome::Running => checker.violations.push(format!(
                    "run {run} started by hand on {node} at {ms} ms still running on {} after the faults stopped",
                    r.node
                )),
                Some(_) => {}
            }
        }
        for r in records {
            if r.outcome == RunOutcome::Running && r.scheduled_at <= horizon {
                checker.violations.push(format!(
                    "run {} of job {} at {} (backfill: {}) still running on {} after the faults stopped",
                    r.run_id, r.job_id, r.scheduled_at, r.backfill, r.node
                ));
            }
        }
    }
}

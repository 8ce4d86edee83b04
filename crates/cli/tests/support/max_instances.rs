//! The fire times `max_instances` skipped in a cluster's history, sorted by what held
//! them: a run in flight (the rule working: a late run, or a fire time that waited for
//! a takeover), a run the test excuses, or a run that had ended (a false skip).

use std::collections::HashMap;

use serde_json::Value;

use super::cluster::{micros, SECOND};

/// What the message of a fire time skipped by `max_instances` says.
pub const MAX_INSTANCES_SKIP: &str = "maximum number of running instances";

/// Whether `run` is a fire time skipped by `max_instances`. Until it was skipped it
/// counted as an instance of its job on every node: it had its `running` record from
/// its claim on, as it waited for room (a fire time claimed after it waits behind it,
/// as behind a run).
fn skipped_by_max_instances(run: &Value) -> bool {
    run["outcome"] == "missed"
        && run["message"]
            .as_str()
            .is_some_and(|m| m.contains(MAX_INSTANCES_SKIP))
}

/// From when `run` counted as an instance of its job. Runs kept as history records
/// (`leased_runs = false`): from the claim that planned it, the time in its run id (a
/// UUID v7), even before a worker was free to start it. Leased runs (run ids
/// `job@fire-time#attempt`): from their start, as the store counts only started runs;
/// a run recorded `interrupted` without a start time had started in the store, its
/// node dying before its start record was written: from its fire time. `None` for a
/// leased run that never started.
fn counted_from(run: &Value) -> Option<i64> {
    match uuid::Uuid::parse_str(run["run_id"].as_str().unwrap()) {
        Ok(id) => {
            let (seconds, nanos) = id.get_timestamp().expect("a run id is a UUID v7").to_unix();
            Some(i64::try_from(seconds).unwrap() * SECOND + i64::from(nanos / 1000))
        }
        Err(_) => run["started_at"]
            .as_str()
            .or_else(|| {
                (run["outcome"] == "interrupted")
                    .then(|| run["scheduled_at"].as_str())
                    .flatten()
            })
            .map(micros),
    }
}

/// What held back the fire times `runs` records as skipped by `max_instances`.
#[derive(Debug, Default)]
pub struct Skips<'a> {
    /// A run of the job was in flight at the skip (claimed before it, on the skipping
    /// node or on a node the skip names, and queued, running, or itself waiting for
    /// room), or ended at most 1.5 s before it (a fire time waits at least 1 s for the
    /// end of a run elsewhere to be written, longer while the history falls behind).
    pub in_flight: usize,
    /// Of those, held by a fire time the test says waited (for a dead node's claim to
    /// run out): it ran late, one after another with the others of its job.
    pub behind_waited: usize,
    /// Held by a run the test excuses (a dead node's, an outage's).
    pub excused: usize,
    /// Held by runs elsewhere that had ended over 1.5 s before: false skips.
    pub stale: Vec<&'a Value>,
}

impl std::fmt::Display for Skips<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} behind a run in flight ({} of them behind a fire time that waited), {} \
             excused, {} false",
            self.in_flight,
            self.behind_waited,
            self.excused,
            self.stale.len()
        )
    }
}

/// Sorts the `max_instances` skips of `runs` by what held them (see [`Skips`]);
/// `excused(skip, nodes)` says whether a skip held by runs on `nodes` is excused (the
/// nodes its message names; with leased runs, those of the runs that held it),
/// `waited(run)` whether a run that held one waited (see [`Skips::behind_waited`]).
pub fn max_instances_skips<'a>(
    runs: &'a [Value],
    excused: &dyn Fn(&Value, &[&str]) -> bool,
    waited: &dyn Fn(&Value) -> bool,
) -> Skips<'a> {
    let mut by_job: HashMap<&str, Vec<&Value>> = HashMap::new();
    for r in runs {
        by_job
            .entry(r["job_id"].as_str().unwrap())
            .or_default()
            .push(r);
    }
    let mut skips = Skips::default();
    for skip in runs.iter().filter(|r| r["outcome"] == "missed") {
        let Some(message) = skip["message"].as_str() else {
            continue;
        };
        let Some((_, reached)) = message.split_once(MAX_INSTANCES_SKIP) else {
            continue;
        };
        // History records: "... reached (1, 1 of them on other nodes: a, b)". Leased
        // runs: the store counts the started runs of every node and the message names
        // none, so a run of any node may hold the skip, and the nodes the excuse is
        // asked about are those of the runs that held it.
        let leased = uuid::Uuid::parse_str(skip["run_id"].as_str().unwrap()).is_err();
        let named: Vec<&str> = reached
            .split_once("on other nodes: ")
            .map(|(_, n)| n.trim_end_matches(')').split(", ").collect())
            .unwrap_or_default();
        let at = micros(skip["finished_at"].as_str().unwrap());
        let holders: Vec<&Value> = by_job[skip["job_id"].as_str().unwrap()]
            .iter()
            .copied()
            .filter(|r| {
                !std::ptr::eq(*r, skip)
                    && (r["outcome"] != "missed" || skipped_by_max_instances(r))
                    && (leased
                        || named.contains(&r["node"].as_str().unwrap())
                        || r["node"] == skip["node"])
                    && counted_from(r).is_some_and(|from| from <= at)
                    && r["finished_at"]
                        .as_str()
                        .is_none_or(|t| micros(t) >= at - 3 * SECOND / 2)
            })
            .collect();
        let nodes: Vec<&str> = if leased {
            holders.iter().filter_map(|r| r["node"].as_str()).collect()
        } else {
            named
        };
        if excused(skip, &nodes) {
            skips.excused += 1;
            continue;
        }
        let (mut held, mut behind_waited) = (false, false);
        for holder in &holders {
            held = true;
            behind_waited |= waited(holder);
        }
        if held {
            skips.in_flight += 1;
            skips.behind_waited += usize::from(behind_waited);
        } else {
            skips.stale.push(skip);
        }
    }
    skips
}

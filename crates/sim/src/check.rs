//! The invariants, checked as the simulation goes and at its end.

use std::collections::{BTreeMap, BTreeSet};

use apscheduler_core::{RunOutcome, RunRecord};
use chrono::{DateTime, Utc};

/// A fire time of a job, the attempt at it, and the run again of that attempt (0, then
/// one more per run again of an interrupted `recover` run).
pub(crate) type FireTime = (String, DateTime<Utc>, u32, u32);

/// What the checker knows: every start, and the violations found.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    /// Each fire time started, by whom and when (virtual ms).
    pub(crate) starts: BTreeMap<FireTime, (String, u64)>,
    /// Nodes killed, and nodes found reaped after their death.
    pub(crate) crashed: BTreeSet<String>,
    pub(crate) reaped: BTreeSet<String>,
    /// Killed nodes missing from the registry, since when (virtual ms).
    absent_since: BTreeMap<String, u64>,
    /// Nodes seen in the registry.
    pub(crate) registered: BTreeSet<String>,
    pub(crate) violations: Vec<String>,
}

impl Checker {
    /// A run starts: at most once per fire time, attempt and run again.
    pub(crate) fn started(&mut self, fire: FireTime, node: &str, at_ms: u64) {
        if let Some((first, first_ms)) = self.starts.get(&fire) {
            self.violations.push(format!(
                "fire time started twice: job {} at {} (attempt {}, run again {}) on {first} at \
                 {first_ms} ms and on {node} at {at_ms} ms",
                fire.0, fire.1, fire.2, fire.3
            ));
            return;
        }
        self.starts.insert(fire, (node.to_owned(), at_ms));
    }

    /// After a step at `now_ms`: a killed node that was in the registry and is no
    /// longer there has been reaped, and within `reap_bound` of leaving it none of its
    /// runs may still be `running`. (Reaping records a dead node's runs `interrupted`
    /// before it removes the entry; records the node wrote in its last moments, after a
    /// reaper took it for dead while it was stalled, are ended by the next look for
    /// nodes missing from the registry: hence the bound.)
    pub(crate) fn after_step(
        &mut self,
        now_ms: u64,
        reap_bound_ms: u64,
        listed: &BTreeSet<String>,
        running: &[RunRecord],
    ) {
        self.registered.extend(listed.iter().cloned());
        for node in &self.crashed {
            if self.registered.contains(node) && !listed.contains(node) {
                self.reaped.insert(node.clone());
                self.absent_since.entry(node.clone()).or_insert(now_ms);
            } else {
                self.absent_since.remove(node);
            }
        }
        for r in running {
            let Some(since) = self.absent_since.get(&r.node) else {
                continue;
            };
            if now_ms > since + reap_bound_ms {
                let v = format!(
                    "run {} of job {} at {} still running {} ms after its killed node {} left the registry",
                    r.run_id, r.job_id, r.scheduled_at, now_ms - since, r.node
                );
                self.violations.push(v);
            }
        }
    }

    /// Once the faults have stopped and everything settled: each fire time up to the
    /// horizon has a record and none is still `running`, and a fire time that started
    /// is not recorded only `missed`.
    pub(crate) fn outcomes(&mut self, expected: &[(String, DateTime<Utc>)], records: &[RunRecord]) {
        let mut by_fire: BTreeMap<(&str, DateTime<Utc>), Vec<&RunRecord>> = BTreeMap::new();
        for r in records {
            by_fire
                .entry((&r.job_id, r.scheduled_at))
                .or_default()
                .push(r);
        }
        for (job, at) in expected {
            let found = by_fire
                .get(&(job.as_str(), *at))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let started = self
                .starts
                .range((job.clone(), *at, 0, 0)..=(job.clone(), *at, u32::MAX, u32::MAX))
                .next();
            if found.is_empty() {
                let how = match started {
                    Some((_, (node, ms))) => format!("started on {node} at {ms} ms"),
                    None => "never started".to_owned(),
                };
                self.violations.push(format!(
                    "fire time without an outcome: job {job} at {at} ({how}, no record)"
                ));
                continue;
            }
            if let Some(r) = found.iter().find(|r| r.outcome == RunOutcome::Running) {
                self.violations.push(format!(
                    "fire time without an outcome: job {job} at {at} still running on {} after the faults stopped",
                    r.node
                ));
            }
            if let Some((_, (node, ms))) = started {
                if found.iter().all(|r| r.outcome == RunOutcome::Missed) {
                    self.violations.push(format!(
                        "job {job} at {at} started on {node} at {ms} ms but is recorded only missed"
                    ));
                }
            }
        }
    }

    /// At the end: every killed node has been taken for dead and left the registry.
    pub(crate) fn all_reaped<'a>(&mut self, listed: impl Iterator<Item = &'a str>) {
        for node in listed {
            if self.crashed.contains(node) {
                self.violations.push(format!(
                    "killed node {node} is still in the registry after the faults stopped"
                ));
            }
        }
    }
}

//! [`RunTable`]: the run contract's decisions on rows held in memory, for stores that
//! keep their runs in process (the memory store) and for the simulation. A store with a
//! server makes the same decisions in its own atomic step (a transaction, a script);
//! the testkit's run checks hold every store to the same answers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

use super::{
    EndReply, Held, NewRun, Renewed, Run, RunEnd, RunKey, RunOrigin, RunRules, RunState,
    StartReply, Swept, MISSED_LATE, SKIPPED_AT_MAX, SKIPPED_BEHIND_BUFFERED,
};
use crate::{Overlap, RunOutcome};

/// Why a repeated start of a run its first start ended answers `Ended` again.
const REPEATED_MISS: &str = "missed: not started within the misfire grace time, or skipped at \
                             max_instances (the answer to its first start was lost)";

/// Runs by key, with the per-job fences; every method is one atomic step of the
/// contract at `now` (the store's clock).
#[derive(Debug, Default)]
pub struct RunTable {
    runs: BTreeMap<RunKey, Run>,
    ids: BTreeMap<Arc<str>, RunKey>,
    fences: BTreeMap<Arc<str>, u64>,
    /// Jobs released as removed while a run of theirs was live.
    finishing: BTreeSet<Arc<str>>,
    /// Finishing jobs whose last live run ended: the store removes them in the same step.
    removable: Vec<Arc<str>>,
    /// Runs written since the last [`take_changes`](RunTable::take_changes), in a
    /// table made by [`load`](RunTable::load) (a table that lives on keeps none).
    touched: Option<BTreeSet<RunKey>>,
}

/// The batches one start call started ([`RunRules::batch`]): a later run of a batch
/// the call started starts beside it, in the same instance. One per call, made fresh
/// for each decision (a store that decides a call again, after a conflict, starts
/// over with a new one).
#[derive(Debug, Default)]
pub struct StartCall {
    started: BTreeSet<(Arc<str>, DateTime<Utc>)>,
}

impl StartCall {
    /// A call that started nothing yet.
    pub fn new() -> StartCall {
        StartCall::default()
    }
}

/// What becomes of a released job's row ([`RunTable::release_job`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobFate {
    /// Its new state is stored.
    Update,
    /// Its trigger is done but a run of it lives: it stays, paused, until that run ends.
    Pause,
    /// Its trigger is done and no run of it lives: it is removed.
    Remove,
}

/// What a step changed, for a store that loaded the rows it needed into a table and
/// writes the changes back in the same transaction.
#[derive(Debug, Default)]
pub struct Changes {
    /// The runs created or changed, whole.
    pub runs: Vec<Run>,
    /// Every job's fence and whether it is finishing (waits for its last live run).
    pub jobs: Vec<(Arc<str>, u64, bool)>,
    /// Finishing jobs whose last live run ended: to remove.
    pub removable: Vec<Arc<str>>,
}

fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

/// The grace of a `Claimed` run a sweep takes over at `now`: its grace time again,
/// counted from the takeover, when that came within a `lease` of its old lease's end
/// (from that point otherwise), and never shorter than it was. A node that claims a
/// fire time and dies holds it for a lease, longer than a short grace: without this a
/// live node would only take it over to miss it. A live node sweeps every third of a
/// lease, so the cap only holds back fire times that no node could take over in time
/// (the whole cluster was down), which keep their lateness bound.
fn grace_after_takeover(run: &Run, now: DateTime<Utc>, lease: Duration) -> Option<DateTime<Utc>> {
    let until = run.rules.grace_until?;
    let grace = until - run.key.fire_time;
    let taken = now.min(lease_end(run.lease_until, lease));
    Some(until.max(taken + grace))
}

impl RunTable {
    /// An empty table.
    pub fn new() -> RunTable {
        RunTable::default()
    }

    /// A table holding `runs` (the rows a step needs: a job's live runs, the runs it
    /// names) and `jobs`' fences and finishing marks, as a store loaded them.
    pub fn load(
        runs: impl IntoIterator<Item = Run>,
        jobs: impl IntoIterator<Item = (Arc<str>, u64, bool)>,
    ) -> RunTable {
        let mut table = RunTable {
            touched: Some(BTreeSet::new()),
            ..RunTable::default()
        };
        for (job_id, fence, finishing) in jobs {
            if finishing {
                table.finishing.insert(job_id.clone());
            }
            table.fences.insert(job_id, fence);
        }
        for run in runs {
            table.ids.insert(run.id.clone(), run.key.clone());
            table.runs.insert(run.key.clone(), run);
        }
        table
    }

    /// What changed since the table was loaded (or since the last call).
    pub fn take_changes(&mut self) -> Changes {
        let touched = self.touched.replace(BTreeSet::new()).unwrap_or_default();
        Changes {
            runs: touched
                .iter()
                .filter_map(|key| self.runs.get(key).cloned())
                .collect(),
            jobs: self
                .fences
                .iter()
                .map(|(job, fence)| (job.clone(), *fence, self.finishing.contains(job)))
                .collect(),
            removable: self.take_removable(),
        }
    }

    /// The run with this id.
    pub fn get(&self, id: &str) -> Option<&Run> {
        self.runs.get(self.ids.get(id)?)
    }

    /// The run with this id, to change (so it counts as touched).
    fn get_mut(&mut self, id: &str) -> Option<&mut Run> {
        let key = self.ids.get(id)?;
        if let Some(touched) = &mut self.touched {
            touched.insert(key.clone());
        }
        self.runs.get_mut(key)
    }

    fn key_mut(&mut self, key: &RunKey) -> &mut Run {
        if let Some(touched) = &mut self.touched {
            touched.insert(key.clone());
        }
        self.runs.get_mut(key).expect("a listed run")
    }

    /// The runs of a job, by key.
    pub fn of_job<'a>(&'a self, job_id: &'a str) -> impl Iterator<Item = &'a Run> + 'a {
        let from = RunKey {
            job_id: job_id.into(),
            fire_time: DateTime::<Utc>::MIN_UTC,
            attempt: 0,
            rerun: 0,
        };
        self.runs
            .range(from..)
            .map(|(_, run)| run)
            .take_while(move |r| &*r.key.job_id == job_id)
    }

    /// Whether the job has a live run.
    pub fn has_live(&self, job_id: &str) -> bool {
        self.of_job(job_id).any(|r| r.state.is_live())
    }

    fn next_fence(&mut self, job_id: &Arc<str>) -> u64 {
        let fence = self.fences.entry(job_id.clone()).or_insert(0);
        *fence += 1;
        *fence
    }

    /// Creates a run leased to `holder`, unless its key exists.
    pub fn insert(
        &mut self,
        holder: &Arc<str>,
        new: NewRun,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Option<Run> {
        // Every store keeps times to the microsecond; ids are made of them.
        let new = NewRun {
            key: RunKey {
                fire_time: new.key.fire_time.trunc_subsecs(6),
                ..new.key
            },
            ..new
        };
        if self.runs.contains_key(&new.key) {
            return None;
        }
        let fence = self.next_fence(&new.key.job_id);
        let id: Arc<str> = new.key.id().into();
        let run = Run {
            id: id.clone(),
            key: new.key.clone(),
            state: new.state,
            holder: holder.clone(),
            lease_until: lease_end(now, lease),
            fence,
            rules: new.rules,
            origin: new.origin,
            stop_requested: false,
        };
        self.ids.insert(id, new.key.clone());
        if let Some(touched) = &mut self.touched {
            touched.insert(new.key.clone());
        }
        self.runs.insert(new.key, run.clone());
        Some(run)
    }

    /// The runs side of a job's release the caller holds: creates `runs`, and says what
    /// becomes of the job's row (a removal waits, paused, while a run of it lives).
    pub fn release_job(
        &mut self,
        holder: &Arc<str>,
        job_id: &Arc<str>,
        remove: bool,
        runs: &[NewRun],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> (Vec<Run>, JobFate) {
        let made = runs
            .iter()
            .filter_map(|new| self.insert(holder, new.clone(), now, lease))
            .collect();
        let fate = match remove {
            false => JobFate::Update,
            true if self.finish_job(job_id) => JobFate::Remove,
            true => JobFate::Pause,
        };
        (made, fate)
    }

    /// Marks a job released as removed: it goes once it has no live run. Answers
    /// whether it can go now.
    pub fn finish_job(&mut self, job_id: &Arc<str>) -> bool {
        if self.has_live(job_id) {
            self.finishing.insert(job_id.clone());
            false
        } else {
            true
        }
    }

    /// Whether the job waits for its last live run before it is removed.
    pub fn is_finishing(&self, job_id: &str) -> bool {
        self.finishing.contains(job_id)
    }

    /// The finishing jobs whose last live run ended since the last call.
    pub fn take_removable(&mut self) -> Vec<Arc<str>> {
        std::mem::take(&mut self.removable)
    }

    fn ended_one(&mut self, job_id: &Arc<str>) {
        if self.finishing.contains(job_id) && !self.has_live(job_id) {
            self.finishing.remove(job_id);
            self.removable.push(job_id.clone());
        }
    }

    fn running(&self, job_id: &str, now: DateTime<Utc>) -> u32 {
        let started_live =
            |r: &&Run| matches!(r.state, RunState::Started { .. }) && r.lease_until > now;
        // A batch's runs on one holder are one instance, running them in turn.
        let mut batches = BTreeSet::new();
        self.of_job(job_id)
            .filter(started_live)
            .filter(|r| {
                r.rules
                    .batch
                    .is_none_or(|b| batches.insert((r.holder.clone(), b)))
            })
            .count() as u32
    }

    fn buffered_before(&self, run: &Run) -> bool {
        self.of_job(&run.key.job_id)
            .any(|r| r.key < run.key && matches!(r.state, RunState::Waiting { due_at: None }))
    }

    fn other_buffered(&self, run: &Run) -> bool {
        self.of_job(&run.key.job_id)
            .any(|r| r.key != run.key && matches!(r.state, RunState::Waiting { due_at: None }))
    }

    /// Starts a run `holder` holds (see the contract's table): its lease is judged at
    /// `now` (the store's clock), its due time and misfire grace at `at` (the caller's
    /// clock, on which they were computed); `call` holds the batches this call started.
    pub fn start(
        &mut self,
        holder: &str,
        held: &Held,
        now: DateTime<Utc>,
        at: DateTime<Utc>,
        lease: Duration,
        call: &mut StartCall,
    ) -> StartReply {
        let Some(run) = self.get(&held.id) else {
            return StartReply::Refused;
        };
        let holds = *run.holder == *holder && run.fence == held.fence;
        if let RunState::Started { at } = run.state {
            return if holds {
                StartReply::Started { at }
            } else {
                StartReply::Refused
            };
        }
        // A repeated start of a run its first start found missed (its answer was
        // lost): the same answer, so that the holder records it.
        let missed_before = matches!(
            run.state,
            RunState::Missing { .. }
                | RunState::Ended {
                    outcome: RunOutcome::Missed,
                    ..
                }
        );
        if holds && missed_before {
            return StartReply::Ended {
                outcome: RunOutcome::Missed,
                reason: REPEATED_MISS.to_owned(),
            };
        }
        if !holds || !run.state.is_unstarted() || run.lease_until <= now {
            return StartReply::Refused;
        }
        let run = run.clone();
        let reply = self.decide_start(&run, now, at, call);
        let row = self.get_mut(&held.id).expect("looked up above");
        match &reply {
            StartReply::Started { at } => {
                row.state = RunState::Started { at: *at };
                row.lease_until = lease_end(now, lease);
                if let Some(batch) = run.rules.batch {
                    call.started.insert((run.key.job_id.clone(), batch));
                }
            }
            StartReply::Waiting { due_at } => {
                row.state = RunState::Waiting { due_at: *due_at };
                row.lease_until = lease_end(now, lease);
            }
            // Live until its holder recorded the miss and ended it (or a sweeper did).
            StartReply::Ended { .. } => {
                row.state = RunState::Missing { at: now };
                row.lease_until = lease_end(now, lease);
            }
            StartReply::Refused => {}
        }
        reply
    }

    fn decide_start(
        &mut self,
        run: &Run,
        now: DateTime<Utc>,
        at: DateTime<Utc>,
        call: &StartCall,
    ) -> StartReply {
        let missed = |reason: &str| StartReply::Ended {
            outcome: RunOutcome::Missed,
            reason: reason.to_owned(),
        };
        if let RunState::Waiting {
            due_at: Some(due_at),
        } = run.state
        {
            if due_at > at {
                return StartReply::Waiting {
                    due_at: Some(due_at),
                };
            }
        }
        if run.state == RunState::Claimed && run.rules.grace_until.is_some_and(|g| at > g) {
            return missed(MISSED_LATE);
        }
        // Its batch started in this call: it runs in that instance, after the others.
        if let Some(batch) = run.rules.batch {
            if call.started.contains(&(run.key.job_id.clone(), batch)) {
                return StartReply::Started { at: now };
            }
        }
        let RunRules {
            max_instances,
            overlap,
            ..
        } = run.rules;
        let buffered = |state: RunState| matches!(state, RunState::Waiting { due_at: None });
        if overlap == Overlap::BufferAll && self.buffered_before(run) {
            return StartReply::Waiting { due_at: None };
        }
        // The buffered run's holder may be another scheduler, which learns of the room
        // at its next pass: a later fire time must not take it first. (A `skip` job's
        // buffered runs are a backfill's, which waits for an instance rather than
        // skipping its own fire times: the schedule's fire times yield to it.)
        if matches!(overlap, Overlap::BufferOne | Overlap::Skip)
            && run.state == RunState::Claimed
            && self.other_buffered(run)
        {
            return missed(SKIPPED_BEHIND_BUFFERED);
        }
        if overlap == Overlap::AllowAll || self.running(&run.key.job_id, now) < max_instances {
            return StartReply::Started { at: now };
        }
        match overlap {
            Overlap::Skip | Overlap::AllowAll => missed(SKIPPED_AT_MAX),
            Overlap::BufferOne if !buffered(run.state) && self.other_buffered(run) => {
                missed(SKIPPED_AT_MAX)
            }
            Overlap::BufferOne | Overlap::BufferAll => StartReply::Waiting { due_at: None },
            Overlap::CancelOther | Overlap::TerminateOther => {
                let started: Vec<RunKey> = self
                    .of_job(&run.key.job_id)
                    .filter(|r| matches!(r.state, RunState::Started { .. }))
                    .map(|r| r.key.clone())
                    .collect();
                for key in started {
                    self.key_mut(&key).stop_requested = true;
                }
                StartReply::Waiting { due_at: None }
            }
        }
    }

    /// Extends the leases of the live runs `holder` holds.
    pub fn renew(
        &mut self,
        holder: &str,
        runs: &[Held],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Renewed {
        let mut renewed = Renewed::default();
        for held in runs {
            match self.get_mut(&held.id) {
                Some(run)
                    if *run.holder == *holder && run.fence == held.fence && run.state.is_live() =>
                {
                    run.lease_until = lease_end(now, lease);
                    renewed.held.push(run.clone());
                }
                _ => renewed.lost.push(held.id.clone()),
            }
        }
        renewed
    }

    /// Ends a run `holder` holds with its current fence, creating its retry if asked.
    pub fn end(
        &mut self,
        holder: &Arc<str>,
        end: &RunEnd,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> EndReply {
        let Some(run) = self.get_mut(&end.run.id) else {
            return EndReply::Refused;
        };
        if run.holder != *holder || run.fence != end.run.fence {
            return EndReply::Refused;
        }
        let retry_key = run.key.retry();
        match run.state {
            // The sweeper that took it over recorded the interruption.
            RunState::Interrupting { .. } => {
                if end.outcome != RunOutcome::Interrupted {
                    return EndReply::Refused;
                }
                // A decided end stays as it is until its record is written.
                if !end.recorded {
                    return EndReply::Ended(None);
                }
                run.state = RunState::Interrupted { at: now };
                let job_id = run.key.job_id.clone();
                self.ended_one(&job_id);
                EndReply::Ended(None)
            }
            RunState::Interrupted { .. } if end.outcome == RunOutcome::Interrupted => {
                EndReply::Ended(None)
            }
            // Its holder (or the sweeper that took it over) recorded the miss.
            RunState::Missing { .. } => {
                if end.outcome != RunOutcome::Missed {
                    return EndReply::Refused;
                }
                if !end.recorded {
                    return EndReply::Ended(None);
                }
                run.state = RunState::Ended {
                    outcome: RunOutcome::Missed,
                    at: now,
                };
                let job_id = run.key.job_id.clone();
                self.ended_one(&job_id);
                EndReply::Ended(None)
            }
            _ if end.outcome == RunOutcome::Interrupted => EndReply::Refused,
            // Its work ended before: now (or again) with its record written.
            RunState::Ending { outcome, .. } => {
                if outcome != end.outcome {
                    return EndReply::Refused;
                }
                if end.recorded {
                    run.state = RunState::Ended { outcome, at: now };
                    let job_id = run.key.job_id.clone();
                    self.ended_one(&job_id);
                }
                let retry = self.runs.get(&retry_key);
                EndReply::Ended(retry.filter(|r| r.holder == *holder).cloned())
            }
            state if state.is_live() => {
                // Unrecorded, it stays live (its holder renews it until it recorded it)
                // but no longer counts as an instance.
                if end.recorded {
                    run.state = RunState::Ended {
                        outcome: end.outcome,
                        at: now,
                    };
                } else {
                    run.state = RunState::Ending {
                        outcome: end.outcome,
                        at: now,
                    };
                    run.lease_until = lease_end(now, lease);
                }
                let (job_id, rules) = (run.key.job_id.clone(), run.rules);
                let retry = end.retry_at.and_then(|due_at| {
                    let new = NewRun {
                        key: retry_key,
                        state: RunState::Waiting {
                            due_at: Some(due_at),
                        },
                        rules: RunRules {
                            grace_until: None,
                            batch: None,
                            ..rules
                        },
                        origin: RunOrigin::Retry,
                    };
                    self.insert(holder, new, now, lease)
                });
                self.ended_one(&job_id);
                EndReply::Ended(retry)
            }
            RunState::Ended { outcome, .. } if outcome == end.outcome => {
                let retry = self.runs.get(&retry_key);
                EndReply::Ended(retry.filter(|r| r.holder == *holder).cloned())
            }
            _ => EndReply::Refused,
        }
    }

    /// Up to `limit` jobs with a live run whose lease expired by `now`, earliest first.
    pub fn expired_jobs(&self, now: DateTime<Utc>, limit: usize) -> Vec<Arc<str>> {
        let mut ends: BTreeMap<Arc<str>, DateTime<Utc>> = BTreeMap::new();
        for run in self.runs.values() {
            if run.state.is_live() && run.lease_until <= now {
                let end = ends
                    .entry(run.key.job_id.clone())
                    .or_insert(run.lease_until);
                *end = (*end).min(run.lease_until);
            }
        }
        let mut jobs: Vec<(DateTime<Utc>, Arc<str>)> =
            ends.into_iter().map(|(job, end)| (end, job)).collect();
        jobs.sort();
        jobs.into_iter().take(limit).map(|(_, job)| job).collect()
    }

    /// Takes up to `limit` live runs whose lease expired, earliest expiry first.
    pub fn sweep(
        &mut self,
        sweeper: &Arc<str>,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Swept {
        let mut expired: Vec<(DateTime<Utc>, RunKey)> = self
            .runs
            .values()
            .filter(|r| r.state.is_live() && r.lease_until <= now)
            .map(|r| (r.lease_until, r.key.clone()))
            .collect();
        expired.sort();
        expired.truncate(limit);
        let mut swept = Swept::default();
        for (_, key) in expired {
            let state = self.runs[&key].state;
            if matches!(
                state,
                RunState::Started { .. } | RunState::Interrupting { .. }
            ) {
                // Taken over to be recorded interrupted: by this sweeper, or by the next
                // one if this one stops renewing it first.
                let fence = self.next_fence(&key.job_id);
                let run = self.key_mut(&key);
                if let RunState::Started { .. } = state {
                    run.state = RunState::Interrupting { at: now };
                    swept
                        .interrupted_from
                        .insert(key.clone(), run.holder.clone());
                }
                run.holder = sweeper.clone();
                run.fence = fence;
                run.lease_until = lease_end(now, lease);
                let (interrupted, rules) = (run.clone(), run.rules);
                swept.interrupted.push(interrupted);
                if rules.recover && matches!(state, RunState::Started { .. }) {
                    let new = NewRun {
                        key: key.rerun(),
                        state: RunState::Claimed,
                        rules: RunRules {
                            grace_until: None,
                            batch: None,
                            ..rules
                        },
                        origin: RunOrigin::Rerun,
                    };
                    swept.taken.extend(self.insert(sweeper, new, now, lease));
                }
                continue;
            }
            let fence = self.next_fence(&key.job_id);
            let run = self.key_mut(&key);
            let holder = run.holder.clone();
            if state == RunState::Claimed {
                run.rules.grace_until = grace_after_takeover(run, now, lease);
            }
            run.holder = sweeper.clone();
            run.fence = fence;
            run.lease_until = lease_end(now, lease);
            if let RunState::Missing { .. } = state {
                // Taken over to be recorded missed.
                swept.missed.push(run.clone());
            } else if let RunState::Ending { .. } = state {
                // Taken over to be recorded as it ended.
                swept.ending.push(run.clone());
                swept.interrupted_from.insert(key.clone(), holder);
            } else {
                swept.taken.push(run.clone());
            }
        }
        swept
    }

    /// Forgets runs that ended or were interrupted before `before`.
    pub fn prune(&mut self, before: DateTime<Utc>) -> usize {
        let old: Vec<RunKey> = self
            .runs
            .values()
            .filter(|r| match r.state {
                RunState::Ended { at, .. } | RunState::Interrupted { at } => at < before,
                _ => false,
            })
            .map(|r| r.key.clone())
            .collect();
        for key in &old {
            if let Some(run) = self.runs.remove(key) {
                self.ids.remove(&run.id);
            }
        }
        old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).expect("a time")
    }

    /// A fire time at 0 s claimed at 0 s with a 5 s lease and `grace` seconds of grace.
    fn claimed(table: &mut RunTable, job: &str, grace: Option<i64>) {
        let rules = RunRules {
            max_instances: 1,
            overlap: Overlap::Skip,
            grace_until: grace.map(t),
            recover: false,
            batch: None,
        };
        let new = NewRun {
            key: RunKey::first(job, t(0)),
            state: RunState::Claimed,
            rules,
            origin: RunOrigin::Scheduled,
        };
        let dead: Arc<str> = "dead".into();
        assert!(table.insert(&dead, new, t(0), LEASE).is_some());
    }

    const LEASE: Duration = Duration::from_secs(5);

    fn grace_after_sweep_at(s: i64, grace: Option<i64>) -> Option<DateTime<Utc>> {
        let mut table = RunTable::new();
        claimed(&mut table, "job", grace);
        let swept = table.sweep(&"live".into(), t(s), LEASE, 10);
        let [taken] = swept.taken.as_slice() else {
            panic!("one run taken: {swept:?}");
        };
        let kept = table.get(&taken.id).expect("kept");
        assert_eq!(
            kept.rules, taken.rules,
            "the row keeps what the sweep answers"
        );
        taken.rules.grace_until
    }

    #[test]
    fn a_claimed_run_taken_over_has_its_grace_again_from_the_takeover() {
        // Lease over at 5 s: taken at 6 s, 1 s of grace runs to 7 s.
        assert_eq!(grace_after_sweep_at(6, Some(1)), Some(t(7)));
        // Taken 9 s after its lease ended (the cluster was down), it counts from a
        // lease after the lease's end: 10 s + 1 s.
        assert_eq!(grace_after_sweep_at(14, Some(1)), Some(t(11)));
        // A grace still running has it again in full; no grace limit stays none.
        assert_eq!(grace_after_sweep_at(6, Some(30)), Some(t(36)));
        assert_eq!(grace_after_sweep_at(6, None), None);
    }
}

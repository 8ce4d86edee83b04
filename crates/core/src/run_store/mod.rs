//! The run contract: a run is a row the store keeps, leased to one scheduler at a time.
//!
//! A fire time becomes a [`Run`] in the same atomic step that moves its job past it, and
//! every later change of the run (its start, its lease's renewal, its end, a takeover) is
//! one atomic compare-and-set on the store, judged on the store's clock. A retry, a
//! buffered fire time, a run started by hand and the run again of an interrupted
//! `recover` job are runs too: nothing holds a run anywhere but the store.
//!
//! The protocol is model-checked (the `apscheduler-model` crate, whose actions are
//! these operations by the same names); [`RunStore`]'s `# Behavior` is the page a store
//! is checked against, and `apscheduler_testkit::store::runs` checks each rule on a
//! real store.

mod steps;
mod table;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, JobRelease, JobStore, Overlap, Released, RunOutcome};

pub use steps::{Decide, JobWrites, RunSteps, StepView};
pub use table::{Changes, JobFate, RunTable, StartCall};

/// The reason a start past the run's grace time ends it (missed).
pub const MISSED_LATE: &str = "missed: not started within the misfire grace time";
/// The reason a start at `max_instances` with nothing to buffer ends it (missed).
pub const SKIPPED_AT_MAX: &str = "skipped: maximum number of running instances reached";
/// The reason a `buffer_one` or `skip` fire time ends (missed) when an earlier one of
/// its job waits buffered to start (under `skip`, a backfill's): the earlier one goes
/// first, and (`buffer_one`) only one waits.
pub const SKIPPED_BEHIND_BUFFERED: &str =
    "skipped: buffer full: an earlier fire time of the job waits to start";

/// Which run: a job's fire time, its attempt (1, then one more per retry) and its rerun
/// (0, then one more per run again of an interrupted `recover` job).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunKey {
    /// The job's id.
    pub job_id: Arc<str>,
    /// The fire time the run is for (the time it was started at, for a run started by
    /// hand).
    pub fire_time: DateTime<Utc>,
    /// 1 for the fire time's first run, 2 for its first retry, and so on.
    pub attempt: u32,
    /// 0, then one more for each run again after an interruption.
    pub rerun: u32,
}

impl RunKey {
    /// The first run of a fire time.
    pub fn first(job_id: impl Into<Arc<str>>, fire_time: DateTime<Utc>) -> RunKey {
        RunKey {
            job_id: job_id.into(),
            fire_time,
            attempt: 1,
            rerun: 0,
        }
    }

    /// The key of the retry that follows this attempt: the same rerun, so that the
    /// retry of a run again never takes the key of the first run's retry.
    pub fn retry(&self) -> RunKey {
        RunKey {
            attempt: self.attempt + 1,
            ..self.clone()
        }
    }

    /// The key of the run again of this one after an interruption.
    pub fn rerun(&self) -> RunKey {
        RunKey {
            rerun: self.rerun + 1,
            ..self.clone()
        }
    }

    /// The work's idempotency key, `job@fire-time#attempt` (fire time in RFC 3339 UTC to
    /// the microsecond): the same for a run and its reruns, which redo the same work.
    /// Commands receive it as `APS_IDEMPOTENCY_KEY`.
    pub fn idempotency_key(&self) -> String {
        format!(
            "{}@{}#{}",
            self.job_id,
            self.fire_time.to_rfc3339_opts(SecondsFormat::Micros, true),
            self.attempt
        )
    }

    /// The run's id: its idempotency key, with `.rN` for the N-th rerun.
    pub fn id(&self) -> String {
        match self.rerun {
            0 => self.idempotency_key(),
            n => format!("{}.r{n}", self.idempotency_key()),
        }
    }

    /// The key a run id names ([`RunKey::id`] read back); `None` for anything else.
    pub fn from_id(id: &str) -> Option<RunKey> {
        // The job id may hold '@' and '#'; what follows the last '@' never does.
        let (job_id, rest) = id.rsplit_once('@')?;
        let (fire, rest) = rest.split_once('#')?;
        let (attempt, rerun) = match rest.split_once(".r") {
            Some((attempt, rerun)) => (attempt, rerun.parse().ok().filter(|n| *n > 0)?),
            None => (rest, 0),
        };
        let key = RunKey {
            job_id: job_id.into(),
            fire_time: DateTime::parse_from_rfc3339(fire).ok()?.with_timezone(&Utc),
            attempt: attempt.parse().ok()?,
            rerun,
        };
        (key.id() == id).then_some(key)
    }
}

/// Where a run is. A run only moves down this list, except that a `Claimed` or
/// `Waiting` run changes holders in a sweep and a `Claimed` run may become `Waiting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
    /// Released to its holder, which starts it when it can.
    Claimed,
    /// Waits to start: a retry due at `due_at`, or (`None`) a fire time buffered while
    /// its job is at `max_instances`.
    Waiting {
        /// When a retry is due; `None` for a buffered fire time.
        due_at: Option<DateTime<Utc>>,
    },
    /// Its work was started, at `at` on the store's clock. No state leads back.
    Started {
        /// When.
        at: DateTime<Utc>,
    },
    /// Over, with an outcome.
    Ended {
        /// How (never [`RunOutcome::Running`] or [`RunOutcome::Interrupted`]).
        outcome: RunOutcome,
        /// When, on the store's clock.
        at: DateTime<Utc>,
    },
    /// Started, then its holder's lease expired: a sweep took it over, to record it
    /// interrupted and end it so ([`RunOutcome::Interrupted`]); a sweeper that stops
    /// renewing it before has it taken over again. Not an instance of its job.
    Interrupting {
        /// When the first sweep found it, on the store's clock.
        at: DateTime<Utc>,
    },
    /// Its work is over, with `outcome`, and its record is not written yet: its holder
    /// writes the record, then ends it so (`Ended` with the same outcome); a holder
    /// that stops renewing it before has it taken over by a sweep, which records it.
    /// Not an instance of its job: the job's next fire time does not wait for the
    /// record.
    Ending {
        /// How (never [`RunOutcome::Running`] or [`RunOutcome::Interrupted`]).
        outcome: RunOutcome,
        /// When its work ended, on the store's clock.
        at: DateTime<Utc>,
    },
    /// Its start found it missed (past its grace, or at `max_instances` with nothing
    /// to buffer): never started. Its holder records the miss and ends it so
    /// ([`RunOutcome::Missed`]); a holder that stops renewing it before has it taken
    /// over by a sweep, which records it. Not an instance of its job.
    Missing {
        /// When its start found it missed, on the store's clock.
        at: DateTime<Utc>,
    },
    /// Started, then its holder's lease expired: how its work ended is unknown.
    Interrupted {
        /// When the sweep found it, on the store's clock.
        at: DateTime<Utc>,
    },
}

impl RunState {
    /// `Claimed` or `Waiting`: not started, and can still be taken over.
    pub fn is_unstarted(&self) -> bool {
        matches!(self, RunState::Claimed | RunState::Waiting { .. })
    }

    /// Neither ended nor interrupted: its holder keeps renewing its lease.
    pub fn is_live(&self) -> bool {
        !matches!(self, RunState::Ended { .. } | RunState::Interrupted { .. })
    }

    /// The state's name (`claimed`, `waiting`, `started`, `ending`, `interrupting`,
    /// `missing`, `ended`, `interrupted`).
    pub fn name(&self) -> &'static str {
        match self {
            RunState::Claimed => "claimed",
            RunState::Waiting { .. } => "waiting",
            RunState::Started { .. } => "started",
            RunState::Ending { .. } => "ending",
            RunState::Interrupting { .. } => "interrupting",
            RunState::Missing { .. } => "missing",
            RunState::Ended { .. } => "ended",
            RunState::Interrupted { .. } => "interrupted",
        }
    }
}

/// The job's rules a run carries, copied from the job when the run is created, so that
/// the store decides a start in one step without decoding the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunRules {
    /// How many runs of the job may be `Started` with a live lease at once.
    pub max_instances: u32,
    /// What the run does when the job is at `max_instances`.
    pub overlap: Overlap,
    /// A `Claimed` run not started by then (the starting caller's time) is missed;
    /// `None`: no limit (retries, runs again, runs started by hand).
    pub grace_until: Option<DateTime<Utc>>,
    /// An interrupted run of the job is run again.
    pub recover: bool,
    /// The first fire time of the batch the run belongs to: the fire times one release
    /// of a job with `coalesce` off runs in one instance, one after another, as
    /// APScheduler does. A start call that starts one run of a batch starts the others
    /// it is asked for too (each still within its grace), and the batch's started runs
    /// on one holder count as one instance. `None`: a run of its own (and every retry,
    /// run again and run started by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<DateTime<Utc>>,
}

/// Why a run exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOrigin {
    /// A fire time of the job's trigger.
    #[default]
    Scheduled,
    /// A retry of a failed attempt.
    Retry,
    /// Started by hand (`run now` from the API, the dashboard or `aps jobs run`).
    RunNow,
    /// A fire time a backfill asked for.
    Backfill,
    /// The run again of an interrupted `recover` job.
    Rerun,
}

/// A run's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Its id ([`RunKey::id`]).
    pub id: Arc<str>,
    /// Which run.
    pub key: RunKey,
    /// Where it is.
    pub state: RunState,
    /// The scheduler whose lease it is.
    pub holder: Arc<str>,
    /// The lease's end on the store's clock: from then on a sweep may take the run.
    pub lease_until: DateTime<Utc>,
    /// Grows with every new run and every new holder of the job's runs: a write that
    /// carries an older fence is refused. Commands receive it as `APS_FENCE`.
    pub fence: u64,
    /// The job's rules, as when the run was created.
    pub rules: RunRules,
    /// Why it exists.
    pub origin: RunOrigin,
    /// Another fire time of a `cancel_other` or `terminate_other` job asked this
    /// started run to stop.
    pub stop_requested: bool,
}

impl Run {
    /// The holder's handle on this run, to send with each write.
    pub fn held(&self) -> Held {
        Held {
            id: self.id.clone(),
            fence: self.fence,
        }
    }
}

/// A run as its holder names it in a write: its id and the fence it was given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Held {
    /// The run's id.
    pub id: Arc<str>,
    /// Its fence when the caller got it.
    pub fence: u64,
}

/// A run to create: its key, first state, rules and origin. The store gives it its
/// holder, lease and fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    /// Which run.
    pub key: RunKey,
    /// `Claimed`, or `Waiting` (a retry inserted on its own).
    pub state: RunState,
    /// The job's rules.
    pub rules: RunRules,
    /// Why it exists.
    pub origin: RunOrigin,
}

/// How a start ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartReply {
    /// Started at `at` (store clock): the caller runs the work now. A repeated start by
    /// the same holder with the same fence answers this again.
    Started {
        /// When.
        at: DateTime<Utc>,
    },
    /// Still the caller's, waiting: a retry not due before `Some(t)`, or a buffered
    /// fire time (`None`) that starts once the job is below `max_instances`.
    Waiting {
        /// When a retry is due.
        due_at: Option<DateTime<Utc>>,
    },
    /// Ended without its work: missed (past its grace time) or skipped (the job was at
    /// `max_instances` with nothing to buffer); the reason says which.
    Ended {
        /// Always [`RunOutcome::Missed`].
        outcome: RunOutcome,
        /// Why, for the run's record.
        reason: String,
    },
    /// Not the caller's run (any more): taken over, ended, or unknown. It forgets it.
    Refused,
}

/// An end to write: the run, how it ended, and when its retry is due if it gets one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    /// The run.
    pub run: Held,
    /// How it ended (not `Running`; `Interrupted` only for an `Interrupting` run,
    /// which ends `Interrupted`).
    pub outcome: RunOutcome,
    /// A retry, `Waiting` until then and held by the caller, inserted in the same step.
    pub retry_at: Option<DateTime<Utc>>,
    /// The run's record is written. Without it a started run becomes `Ending` (no
    /// longer an instance of its job, still live), and the caller ends it again with
    /// it once the record is written; a caller that keeps no run history sends it at
    /// once.
    pub recorded: bool,
}

/// How an end ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReply {
    /// Ended; with its retry's row when one was asked for.
    Ended(Option<Run>),
    /// Not the caller's run (any more): interrupted or taken over meanwhile.
    Refused,
}

/// What [`RunStore::renew_runs`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewed {
    /// The runs still the caller's, with their new leases.
    pub held: Vec<Run>,
    /// The runs no longer the caller's: it stops treating them as its own.
    pub lost: Vec<Arc<str>>,
}

/// What [`RunStore::release_with_runs`] did.
#[derive(Debug, Default)]
pub struct ReleasedRuns {
    /// The jobs' side, as [`JobStore::release_jobs`] answers.
    pub jobs: Released,
    /// The runs created, leased to the caller (none for a job whose release was not
    /// applied).
    pub runs: Vec<Run>,
}

/// What [`RunStore::end_and_release`] did: its ends and its releases.
#[derive(Debug, Default)]
pub struct EndedAndReleased {
    /// One answer per end, in order, as [`RunStore::end_runs`] answers.
    pub ended: Vec<EndReply>,
    /// As [`RunStore::release_with_runs`] answers.
    pub released: ReleasedRuns,
}

/// What [`RunStore::end_release_and_start`] did: the first step's answer, and the
/// second's (the starts of the runs the first created, in its order) or its error.
#[derive(Debug)]
pub struct ReleasedAndStarted {
    /// As [`RunStore::end_and_release`] answers.
    pub step: EndedAndReleased,
    /// One answer per run of `step.released.runs`, in order, as
    /// [`RunStore::start_runs`] answers; an error leaves them held by the caller and
    /// unstarted or started (it asks again: a repeated start answers as the first).
    pub starts: Result<Vec<StartReply>, Error>,
}

/// What [`RunStore::sweep_runs`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Runs now the sweeper's: taken-over unstarted runs (new fence) and new runs again
    /// of interrupted `recover` jobs.
    pub taken: Vec<Run>,
    /// Runs found started after their lease expired, now `Interrupting` and the
    /// sweeper's: it records each interrupted and ends it with
    /// [`RunOutcome::Interrupted`].
    pub interrupted: Vec<Run>,
    /// The holder each run of `interrupted` found `Started`, and each run of `ending`,
    /// had before this sweep: the scheduler it ran on.
    pub interrupted_from: std::collections::BTreeMap<RunKey, Arc<str>>,
    /// Runs a start found missed whose holder stopped renewing them before it ended
    /// them, now `Missing` and the sweeper's: it records each missed and ends it with
    /// [`RunOutcome::Missed`].
    pub missed: Vec<Run>,
    /// Runs whose work ended and whose holder stopped renewing them before it recorded
    /// them, now `Ending` and the sweeper's: it records each (unless a record of its
    /// end exists) and ends it with its outcome.
    pub ending: Vec<Run>,
}

/// Where runs live: the job store's runs, each leased to one scheduler at a time.
///
/// A store does not implement it directly: it implements [`RunSteps`] (one atomic step
/// and three reads), and every operation here follows from that, written once.
///
/// # Behavior
///
/// | operation | from | to | only when |
/// |---|---|---|---|
/// | [`release_with_runs`](RunStore::release_with_runs) | (none) | `Claimed` (or `Waiting`), leased to the caller | the job's release is applied, in the same step |
/// | [`insert_runs`](RunStore::insert_runs) | (none) | `Claimed` (or `Waiting`), leased to the caller | the job exists and no run has the key |
/// | [`start_runs`](RunStore::start_runs) | `Claimed`, `Waiting` | `Started` | the caller holds the run (holder and fence), its lease is live, a retry is due, and fewer than `max_instances` runs of the job are `Started` with a live lease (a batch's runs on one holder count as one) |
/// | | `Claimed`, `Waiting` | `Started` | the same call started a run of its batch ([`RunRules::batch`]), the caller holds it, its lease is live, and (`Claimed`) it is within its grace |
/// | | `Claimed` | `Waiting { due_at: None }` | as above, but at `max_instances` with `buffer_one` (no other buffered run), `buffer_all`, `cancel_other` or `terminate_other` |
/// | | `Claimed`, `Waiting` | `Missing`, lease extended (answered `Ended(missed)`) | past `grace_until`, or at `max_instances` with nothing to buffer, or (`skip` or `buffer_one`, `Claimed`) another buffered run of the job waits |
/// | [`renew_runs`](RunStore::renew_runs) | any live state | the same, lease extended | the caller holds the run |
/// | [`end_runs`](RunStore::end_runs) | `Claimed`, `Waiting`, `Started` | `Ended(outcome)`, and a `Waiting` retry | the caller holds the run with its current fence, and its record is written ([`RunEnd::recorded`]) |
/// | | `Claimed`, `Waiting`, `Started` | `Ending(outcome)`, lease extended, and a `Waiting` retry | as above, its record not written yet |
/// | | `Ending(outcome)` | `Ended(outcome)` | as above, with the same outcome, its record written |
/// | [`sweep_runs`](RunStore::sweep_runs) | `Claimed`, `Waiting`, lease expired | the same, leased to the sweeper, new fence (a `Claimed` run's grace counted again from the takeover) | the lease expired on the store's clock |
/// | | `Started`, lease expired | `Interrupting`, leased to the sweeper, new fence, and for a `recover` job a new `Claimed` rerun for the sweeper | as above |
/// | | `Interrupting`, `Missing` or `Ending`, lease expired | the same, leased to the sweeper, new fence | as above |
/// | [`end_runs`](RunStore::end_runs) with [`RunOutcome::Interrupted`] | `Interrupting` | `Interrupted` | the caller holds the run with its current fence (it recorded the interruption) |
/// | [`end_runs`](RunStore::end_runs) with [`RunOutcome::Missed`] | `Missing` | `Ended(missed)` | the caller holds the run with its current fence (it recorded the miss) |
///
/// - Every operation is one atomic step on the store; a call about several runs is one
///   step per job (its runs in the order given) or one for all. [`end_and_release`](RunStore::end_and_release)
///   is two of them in one step;
///   [`end_release_and_start`](RunStore::end_release_and_start) is that step and a
///   start, one after the other.
/// - Leases are judged on the store's clock ([`Capabilities::store_clock`](crate::Capabilities));
///   a lease runs from the operation that grants or renews it for the `lease` given.
///   A retry's due time and a run's `grace_until` are judged at the time the starting
///   caller sends: they are schedule times, computed on a scheduler's clock as its due
///   jobs are, and whether one passed decides only whether a run starts late, never
///   whether it starts twice.
/// - A sweep that takes a `Claimed` run over MUST give it its grace time again,
///   counted from the takeover (at most a `lease` after its old lease's end), and
///   never shorten it: `grace_until` becomes the later of itself and
///   `min(now, old lease_until + lease) + (grace_until - fire_time)`. A fire time
///   whose node dies after claiming it is started by a live node, not missed because
///   the claim outlasted its grace.
/// - "The caller holds the run" means: its holder is the caller and its fence is the
///   one the caller sends.
/// - A fence MUST only grow per job id: every created run and every takeover gets one
///   greater than any the job's runs had.
/// - A run's key MUST be unique among the kept runs: a second run with the same key is
///   never created (until [`prune_runs`](RunStore::prune_runs) forgets the first).
/// - A `Started` run MUST never become `Claimed` or `Waiting` again; its work is
///   started at most once per key.
/// - Only the holder writes a run, except the sweep, which takes only runs whose lease
///   expired.
/// - `max_instances` counts only `Started` runs with a live lease: a run whose work
///   ended is `Ending` or `Ended`, and the job's next fire time does not wait for its
///   record.
/// - A `Waiting` buffered run of a `buffer_all` job starts only when no older buffered
///   run of the job waits.
/// - A `Claimed` run of a `skip` or `buffer_one` job MUST NOT start while another run
///   of the job waits buffered (its holder learns of the room at its next pass); under
///   `skip` such runs are a backfill's, which wait rather than skip.
/// - A start that finds the job at `max_instances` with `cancel_other` or
///   `terminate_other` marks the job's live started runs
///   [`stop_requested`](Run::stop_requested), which their holders learn at their next
///   renewal.
/// - A job whose release is [`JobRelease::Remove`] while it has a live run stays,
///   paused, until its last live run ends or is interrupted (without a rerun); the step
///   that ends it removes the job.
/// - A repeated start of a started run, and a repeated end, by the holder with the same
///   fence answer as the first did; a repeated start of a run its first start found
///   missed answers `Ended(missed)` again.
/// - A decided end (`Interrupting`, `Missing`) and an unrecorded one (`Ending`) are
///   live until a holder that recorded them ends them: a fire time never ends without
///   its record, whoever dies.
#[async_trait]
pub trait RunStore: JobStore {
    /// Releases jobs as [`JobStore::release_jobs`] does and, in the same step for each
    /// job whose release is applied, creates its runs, leased to the caller for `lease`.
    ///
    /// # Errors
    /// Backend errors: the store may or may not have applied any of it.
    async fn release_with_runs(
        &self,
        holder: &str,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        lease: Duration,
    ) -> Result<ReleasedRuns, Error>;

    /// Creates runs outside a release (a run started by hand, a backfill), leased to
    /// the caller. Answers the created rows; a run whose job does not exist or whose
    /// key exists is not created.
    ///
    /// # Errors
    /// Backend errors.
    async fn insert_runs(
        &self,
        holder: &str,
        runs: Vec<NewRun>,
        lease: Duration,
    ) -> Result<Vec<Run>, Error>;

    /// Starts runs the caller holds, one answer per run in order (see the table).
    /// A start or a wait renews the run's lease for `lease`. The leases are judged on
    /// the store's clock; a run's due time and misfire grace at `at`, the caller's
    /// time (they were computed on the caller's clock, as its due jobs are).
    ///
    /// # Errors
    /// Backend errors: the store may or may not have applied any of it (a repeated
    /// start answers as the first).
    async fn start_runs(
        &self,
        holder: &str,
        runs: &[Held],
        at: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<StartReply>, Error>;

    /// Extends the leases of the live runs the caller holds to the store's time plus
    /// `lease`.
    ///
    /// # Errors
    /// Backend errors.
    async fn renew_runs(
        &self,
        holder: &str,
        runs: &[Held],
        lease: Duration,
    ) -> Result<Renewed, Error>;

    /// Ends runs the caller holds, one answer per end in order; a retry is created
    /// `Waiting`, leased to the caller for `lease`.
    ///
    /// # Errors
    /// Backend errors: the store may or may not have applied any of it (a repeated end
    /// answers as the first).
    async fn end_runs(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        lease: Duration,
    ) -> Result<Vec<EndReply>, Error>;

    /// [`end_runs`](RunStore::end_runs), then
    /// [`release_with_runs`](RunStore::release_with_runs), in one atomic step: a
    /// scheduler's pass writes the ends since the last one with its releases. The runs
    /// the releases create are not started here: a caller whose reply is lost does not
    /// know them, and an unstarted run is taken over once its lease ran out, where a
    /// started one would only be interrupted.
    ///
    /// # Errors
    /// Backend errors: the store may or may not have applied any of it (a repeated end
    /// answers as the first; the runs a release created start once their lease ran out
    /// and a sweep took them).
    async fn end_and_release(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        lease: Duration,
    ) -> Result<EndedAndReleased, Error>;

    /// [`end_and_release`](RunStore::end_and_release), then
    /// [`start_runs`](RunStore::start_runs) of every run it created: two atomic steps,
    /// the second decided once the first is written. A store may send the second's
    /// reads with the first's commit, saving a round trip; the runs are still created
    /// unstarted first, so that a reply lost before the first's answer leaves runs a
    /// sweep starts.
    ///
    /// # Errors
    /// The first step's, as [`end_and_release`](RunStore::end_and_release)'s; the
    /// second's error is in [`ReleasedAndStarted::starts`].
    async fn end_release_and_start(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        at: DateTime<Utc>,
        lease: Duration,
    ) -> Result<ReleasedAndStarted, Error> {
        let step = self.end_and_release(holder, ends, releases, lease).await?;
        let handles: Vec<Held> = step.released.runs.iter().map(Run::held).collect();
        let starts = if handles.is_empty() {
            Ok(Vec::new())
        } else {
            self.start_runs(holder, &handles, at, lease).await
        };
        Ok(ReleasedAndStarted { step, starts })
    }

    /// Takes up to `limit` live runs whose lease expired on the store's clock (see the
    /// table), leasing what it takes to `sweeper` for `lease`.
    ///
    /// # Errors
    /// Backend errors.
    async fn sweep_runs(
        &self,
        sweeper: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Swept, Error>;

    /// The run with this id, if kept.
    ///
    /// # Errors
    /// Backend errors.
    async fn lookup_run(&self, id: &str) -> Result<Option<Run>, Error>;

    /// The kept runs of a job, by key.
    ///
    /// # Errors
    /// Backend errors.
    async fn runs_of_job(&self, job_id: &str) -> Result<Vec<Run>, Error>;

    /// Forgets runs that ended or were interrupted before `before`; answers how many.
    /// (The run history keeps what happened to them.)
    ///
    /// # Errors
    /// Backend errors.
    async fn prune_runs(&self, before: DateTime<Utc>) -> Result<usize, Error>;
}

/// A `release_with_runs` call's releases as a store applies them: per job (in the
/// order first named), its new state encoded by the store (`None`: the job is
/// removed) and its runs; the last release of a job counts, and the runs of all of
/// its releases are created. Jobs whose new state the store cannot encode are
/// refused.
#[derive(Debug)]
pub struct ReleaseBatch<E> {
    /// The releases to apply.
    pub jobs: Vec<(Arc<str>, Option<E>, Vec<NewRun>)>,
    /// The releases refused, with why (they go to [`Released::refused`]).
    pub refused: Vec<(Arc<str>, Error)>,
}

impl<E> ReleaseBatch<E> {
    /// Groups `releases` by job, encoding each new state with `encode`.
    pub fn new(
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        mut encode: impl FnMut(&crate::Job) -> Result<E, Error>,
    ) -> ReleaseBatch<E> {
        let mut batch = ReleaseBatch {
            jobs: Vec::with_capacity(releases.len()),
            refused: Vec::new(),
        };
        for (release, runs) in releases {
            let (id, state) = match release {
                JobRelease::Update(job) => match encode(&job) {
                    Ok(state) => (job.id.clone(), Some(state)),
                    Err(e) => {
                        batch.refused.push((job.id.clone(), e));
                        continue;
                    }
                },
                JobRelease::Remove(id) => (id, None),
            };
            match batch.jobs.iter_mut().find(|(i, ..)| *i == id) {
                Some(entry) => {
                    entry.1 = state;
                    entry.2.extend(runs);
                }
                None => batch.jobs.push((id, state, runs)),
            }
        }
        batch
    }
}

impl fmt::Display for RunKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

//! The store's key names under its prefix, and what a prefix may be.

use apscheduler_core::Error;

use crate::error::StoreError;

/// The names of the keys a store uses.
///
/// # Key layout
/// With the default prefix `apscheduler.` (see
/// [`RedisJobStoreBuilder::prefix`](crate::RedisJobStoreBuilder::prefix)):
///
/// | key | type | holds |
/// |---|---|---|
/// | `apscheduler.jobs` | hash | job id → the job's [`JobState`](apscheduler_core::JobState) as JSON, plus `next_run_time_zone` (the IANA zone of the next run time) |
/// | `apscheduler.run_times` | sorted set | job id → next run time in UTC microseconds, for scheduled jobs nobody has claimed; paused jobs are not in it |
/// | `apscheduler.claimed` | sorted set | job id → the instant (UTC microseconds) a claimed job can be claimed again: the later of its next run time and its lease's expiry |
/// | `apscheduler.leases` | hash | job id → `<expiry_us>\|<run_us>\|<scheduler id>`: who holds the claim, until when (on the server's clock, `TIME`), and the run time it was claimed for (empty when paused while claimed) |
/// | `apscheduler.corrupt` | hash | job id → why the job cannot be read; such jobs stay in `jobs` and are in neither sorted set |
///
/// The first two keys are APScheduler's own layout (`jobs_key`, `run_times_key`); a
/// claimed job moves from `run_times` to `claimed` until it is released, so a claim
/// never has to step over jobs other schedulers are running. Every change that
/// touches more than one key is one Lua script (or a `MULTI`/`EXEC` transaction), so
/// the keys are consistent at every instant and a crash at any point leaves no job
/// half-written. Scores are whole microseconds (exact as Redis doubles until the year
/// 2255); a run time with a fraction of a microsecond is rounded up, so a job is never
/// due early.
///
/// A claim ([`acquire_due_jobs`](apscheduler_core::JobStore::acquire_due_jobs)) is one
/// script: it first drops the leases that have expired on due jobs (members of
/// `claimed` scored at or before now) and puts those jobs back into `run_times`, then
/// takes up to `limit` members of `run_times` scored at or before now, leases them,
/// moves them to `claimed` and returns their states. Releasing, adding (a whole batch,
/// with the conflict check), updating, extending leases and setting corrupt jobs aside
/// are scripts too; removing one job is a `MULTI`/`EXEC` transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    /// Hash: job id → job state JSON.
    pub jobs: String,
    /// Sorted set: job id → next run time (UTC microseconds), unclaimed scheduled jobs.
    pub run_times: String,
    /// Sorted set: job id → when a claimed job can be claimed again (UTC microseconds).
    pub claimed: String,
    /// Hash: job id → `<expiry_us>|<run_us>|<scheduler id>`.
    pub leases: String,
    /// Hash: job id → why the job cannot be read.
    pub corrupt: String,
}

impl KeyLayout {
    pub(crate) fn new(prefix: &str) -> Self {
        KeyLayout {
            jobs: format!("{prefix}jobs"),
            run_times: format!("{prefix}run_times"),
            claimed: format!("{prefix}claimed"),
            leases: format!("{prefix}leases"),
            corrupt: format!("{prefix}corrupt"),
        }
    }

    /// Every key, in the order the scripts take them.
    pub(crate) fn all(&self) -> [&str; 5] {
        [
            &self.jobs,
            &self.run_times,
            &self.claimed,
            &self.leases,
            &self.corrupt,
        ]
    }
}

/// Checks a key prefix: not empty, at most 256 bytes, no whitespace or control
/// characters.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](apscheduler_core::ErrorKind::InvalidInput) naming the
/// problem.
pub fn validate_prefix(prefix: &str) -> Result<(), Error> {
    let problem = if prefix.is_empty() {
        Some("it is empty".to_owned())
    } else if prefix.len() > 256 {
        Some(format!("it is {} bytes long, more than 256", prefix.len()))
    } else {
        prefix
            .chars()
            .find(|c| c.is_whitespace() || c.is_control())
            .map(|c| format!("it contains the character {c:?}"))
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(StoreError::InvalidInput(format!(
            "invalid value for field 'prefix': {prefix:?}: {why} (use letters, digits and \
             punctuation, such as 'apscheduler.')"
        ))
        .into()),
    }
}

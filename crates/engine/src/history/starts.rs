//! Starts written before runs start
//! ([`HistoryOptions::record_starts`](super::HistoryOptions::record_starts)): a
//! `running` record without a start time then proves its run never started.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{ErrorKind, JobRun, RunRecord};
use chrono::{DateTime, TimeZone, Utc};

use super::{lock, Recorder, BEGIN_DEADLINE};

/// Whether `fire_time` (a trigger's, to the nanosecond) is `recorded`, a fire time as a
/// run history gives it back: the histories keep whole microseconds (rounded down),
/// and an interval trigger started at "now" fires at times with nanoseconds. Compared
/// whole, the two never match: a record of the fire time would look older than it.
pub(crate) fn is_fire_time<Z: TimeZone>(fire_time: &DateTime<Z>, recorded: &DateTime<Utc>) -> bool {
    fire_time.timestamp_micros() == recorded.timestamp_micros()
}

/// Whether `next` (a job's next run time) is at or before `recorded` (a fire time as a
/// run history gives it back, see [`is_fire_time`]): the job has not moved past it.
pub(crate) fn not_past<Z: TimeZone>(next: &DateTime<Z>, recorded: &DateTime<Utc>) -> bool {
    next.timestamp_micros() <= recorded.timestamp_micros()
}

impl Recorder {
    /// Writes the start time of the `running` records of `runs` (fire times
    /// [`begin`](Self::begin) recorded as claimed), awaited: only then may they start,
    /// so that a record without a start time proves its run never started. One
    /// conditional write for all of them ([`RunHistory::record_starts`]); nothing to do
    /// without [`HistoryOptions::record_starts`](super::HistoryOptions::record_starts).
    ///
    /// Returns the run ids whose start the history refused: their records are no
    /// longer `running` (another node took this one for dead, recorded them
    /// `interrupted` and starts those fire times itself). They are this node's no
    /// more: dropped from its runs in flight, their records left as they are, and
    /// their runs must not start here.
    ///
    /// Then, as an error, why none of the other runs may start either: their starts are not recorded (this write failed
    /// or timed out; it also writes whole the records the claim could not), or this
    /// node was silent long enough to be taken for dead meanwhile (see
    /// [`StartRefused::Silent`], which concerns only jobs that ask for recovery).
    ///
    /// [`RunHistory::record_starts`]: apscheduler_core::RunHistory::record_starts
    pub(crate) async fn confirm_starts<'a>(
        &self,
        runs: impl Iterator<Item = &'a JobRun>,
    ) -> (Vec<Arc<str>>, Result<(), StartRefused>) {
        if !self.options.record_starts {
            return (Vec::new(), Ok(()));
        }
        let now = self.clock.now();
        let mut records = Vec::new();
        {
            let in_flight = lock(&self.in_flight);
            for run in runs {
                for id in &run.run_ids {
                    let Some(entry) = in_flight.get(id) else {
                        continue;
                    };
                    if entry.record.started_at.is_some() {
                        continue;
                    }
                    // A record `begin` could not write is written here whole.
                    let mut record = entry.record.clone();
                    record.started_at = Some(now);
                    records.push(record);
                }
            }
        }
        if records.is_empty() {
            return (Vec::new(), Ok(()));
        }
        let accepted: HashSet<String> = match self.write_starts(&records).await {
            Ok(accepted) => accepted.into_iter().collect(),
            Err(e) => return (Vec::new(), Err(e)),
        };
        let mut refused = Vec::new();
        {
            let mut in_flight = lock(&self.in_flight);
            for r in &records {
                let id = r.run_id.as_str();
                if accepted.contains(id) {
                    if let Some(entry) = in_flight.get_mut(id) {
                        entry.record.started_at = r.started_at;
                        entry.written = true;
                    }
                } else if let Some((id, _)) = in_flight.remove_entry(id) {
                    refused.push(id);
                }
            }
        }
        // Checked once the starts are written: a node that took this one for dead
        // just after the write finds the runs started, and starts them again only
        // for jobs that ask for recovery. It did so at least a node time-out after
        // this node's last confirmed heartbeat on its clock; half of it leaves the
        // other half for clock skew and a slow registry read.
        let silence = match self.liveness.own_silence() {
            Some(silent) if silent >= self.options.node_timeout / 2 => Err(StartRefused::Silent {
                silent,
                node_timeout: self.options.node_timeout,
            }),
            _ => Ok(()),
        };
        (refused, silence)
    }

    /// Writes the starts of `records` ([`RunHistory::record_starts`]), tried again while
    /// the history is unreachable (a dropped connection, a server restarting: the runs
    /// would otherwise not start) until [`BEGIN_DEADLINE`]; the write is conditional,
    /// so a retry gives the same answer. Returns the run ids accepted.
    ///
    /// [`RunHistory::record_starts`]: apscheduler_core::RunHistory::record_starts
    async fn write_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, StartRefused> {
        let deadline = tokio::time::Instant::now() + BEGIN_DEADLINE;
        let mut pause = Duration::from_millis(50);
        loop {
            let error = match tokio::time::timeout_at(deadline, self.history.record_starts(records))
                .await
            {
                Ok(Ok(accepted)) => return Ok(accepted),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(StartRefused::NotWritten(format!(
                        "no answer within {BEGIN_DEADLINE:?}"
                    )))
                }
            };
            if error.kind() != ErrorKind::Unavailable
                || tokio::time::Instant::now() + pause >= deadline
            {
                return Err(StartRefused::NotWritten(error.to_string()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

/// Why runs whose fire times this node owns must not start.
#[derive(Debug)]
pub(crate) enum StartRefused {
    /// Their starts could not be written to the history (why): a run without a
    /// recorded start would be started again by another node if this one died.
    NotWritten(String),
    /// This node's last confirmed heartbeat was sent `silent` ago, half the node
    /// time-out or more: another node may take it for dead just after the start
    /// write, record its runs `interrupted` and, for jobs with `recover` set, start
    /// them again. Refuses the runs of those jobs only.
    Silent {
        silent: std::time::Duration,
        node_timeout: std::time::Duration,
    },
}

impl StartRefused {
    /// Whether it keeps a run of a job whose `recover` is `recover` from starting: a
    /// start not written keeps every run; a silent node, only those of jobs that ask
    /// for recovery (for the others the conditional start write settles the race
    /// with a node taking this one for dead).
    pub(crate) fn refuses(&self, recover: bool) -> bool {
        match self {
            StartRefused::NotWritten(_) => true,
            StartRefused::Silent { .. } => recover,
        }
    }
}

impl std::fmt::Display for StartRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartRefused::NotWritten(why) => write!(
                f,
                "its start could not be written to the run history ({why}); a run whose \
                 start is not recorded could be started again by another node if this one \
                 died"
            ),
            StartRefused::Silent {
                silent,
                node_timeout,
            } => write!(
                f,
                "this node's last confirmed heartbeat was sent {:.1} s ago, half the node \
                 time-out ({node_timeout:?}) or more: another node may take it for dead \
                 and, as the job asks for recovery (recover = true), start this fire time \
                 again",
                silent.as_secs_f64()
            ),
        }
    }
}

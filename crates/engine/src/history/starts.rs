//! Starts written before runs start
//! ([`HistoryOptions::record_starts`](super::HistoryOptions::record_starts)): a
//! `running` record without a start time then proves its run never started.

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
    /// so that a record without a start time proves its run never started. One write
    /// for all of them; nothing to do without
    /// [`HistoryOptions::record_starts`](super::HistoryOptions::record_starts).
    ///
    /// # Errors
    /// Why the runs must not start: their starts are not recorded (this write failed
    /// or timed out; it also writes whole the records the claim could not), or this
    /// node was silent long
    /// enough to be taken for dead meanwhile (see [`StartRefused::Silent`]).
    pub(crate) async fn confirm_starts<'a>(
        &self,
        runs: impl Iterator<Item = &'a JobRun>,
    ) -> Result<(), StartRefused> {
        if !self.options.record_starts {
            return Ok(());
        }
        let now = self.clock.now();
        let mut records = Vec::new();
        {
            let mut in_flight = lock(&self.in_flight);
            for run in runs {
                for id in &run.run_ids {
                    let Some(entry) = in_flight.get_mut(id) else {
                        continue;
                    };
                    if entry.record.started_at.is_some() {
                        continue;
                    }
                    // A record `begin` could not write is written here whole.
                    entry.record.started_at = Some(now);
                    records.push(entry.record.clone());
                }
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        self.write_starts(&records).await?;
        {
            let mut in_flight = lock(&self.in_flight);
            for r in &records {
                if let Some(entry) = in_flight.get_mut(r.run_id.as_str()) {
                    entry.written = true;
                }
            }
        }
        // Checked once the starts are written: had another node taken this one for
        // dead before the write, it was at least a node time-out after this node's
        // last confirmed heartbeat on that node's clock; half of it leaves the other
        // half for clock skew and a slow registry read.
        match self.liveness.own_silence() {
            Some(silent) if silent >= self.options.node_timeout / 2 => Err(StartRefused::Silent {
                silent,
                node_timeout: self.options.node_timeout,
            }),
            _ => Ok(()),
        }
    }

    /// Writes `records` (starts), tried again while the history is unreachable (a
    /// dropped connection, a server restarting: the runs would otherwise not start)
    /// until [`BEGIN_DEADLINE`]; writes replace whole records, so a retry is harmless.
    async fn write_starts(&self, records: &[RunRecord]) -> Result<(), StartRefused> {
        let deadline = tokio::time::Instant::now() + BEGIN_DEADLINE;
        let mut pause = Duration::from_millis(50);
        loop {
            let error =
                match tokio::time::timeout_at(deadline, self.history.record_runs(records)).await {
                    Ok(Ok(())) => return Ok(()),
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
    /// time-out or more: another node may have taken it for dead, recorded its runs
    /// `interrupted` and started these fire times itself.
    Silent {
        silent: std::time::Duration,
        node_timeout: std::time::Duration,
    },
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
                 time-out ({node_timeout:?}) or more: another node may have taken it for \
                 dead and started this fire time itself",
                silent.as_secs_f64()
            ),
        }
    }
}

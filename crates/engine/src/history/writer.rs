//! The recorder's writer: a task that batches queued records, writes them (retrying a
//! history that is down, never dropping a record), answers flushes, counts what it
//! wrote, and prunes at an interval.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::{RunHistory, RunOutcome, RunRecord};
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
// The virtual clock of a paused runtime in the deterministic simulation.
use tokio::time::Instant;

use super::{lock, Msg, Retention, GATHER, RETRY_CAP};

/// Records queued and written, in queue order: a record queued when `queued` was `n`
/// is written once `written` reaches `n`. Leased runs end in their store only after
/// their records are written, so that a fire time never ends without its record.
#[derive(Default)]
pub(crate) struct Counts {
    pub(super) queued: std::sync::atomic::AtomicU64,
    pub(super) written: std::sync::atomic::AtomicU64,
    /// Called after each write.
    pub(super) on_written: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    /// How long the records of the latest write waited from their queuing to their
    /// write, in microseconds.
    last_lag_micros: std::sync::atomic::AtomicU64,
    /// When the oldest record taken and not yet written was queued.
    oldest_unwritten: Mutex<Option<Instant>>,
}

impl Counts {
    /// How far behind the writer is (see `Recorder::write_lag`).
    pub(super) fn lag(&self) -> Duration {
        let last = Duration::from_micros(
            self.last_lag_micros
                .load(std::sync::atomic::Ordering::Acquire),
        );
        let waiting = lock(&self.oldest_unwritten).map_or(Duration::ZERO, |t| t.elapsed());
        last.max(waiting)
    }

    /// Notes that records just written waited `lag` from their queuing.
    pub(super) fn note_lag(&self, lag: Duration) {
        let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.last_lag_micros
            .store(micros, std::sync::atomic::Ordering::Release);
    }
}

/// Whether the writer behind `tx` writes every record queued before this call within
/// `deadline` (it answers a flush once everything before it is written).
pub(super) async fn written_by(tx: mpsc::UnboundedSender<Msg>, deadline: Duration) -> bool {
    let (done, wait) = oneshot::channel();
    let sent = tx.send(Msg::Flush(done)).is_ok();
    drop(tx);
    sent && tokio::time::timeout(deadline, wait).await.is_ok()
}

/// The writer: batches queued records, writes them (retrying a history that is down,
/// never dropping a record), answers flushes once everything before them is written,
/// and prunes at an interval. With `leased` runs, a run's start is written only on a
/// record still `running` (see [`write`]).
pub(super) async fn write_loop(
    history: Arc<dyn RunHistory>,
    counts: Arc<Counts>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    retention: Retention,
    prune_interval: Duration,
    leased: bool,
) {
    let mut pending: Vec<RunRecord> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    let mut ended_jobs: HashSet<String> = HashSet::new();
    let mut failures: u32 = 0;
    let mut prune = tokio::time::interval(prune_interval);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    prune.tick().await;
    let mut open = true;
    loop {
        if pending.is_empty() {
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
            if !open {
                return;
            }
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(m) => take(m, &mut pending, &mut flushes, &counts),
                    None => open = false,
                },
                _ = prune.tick() => {
                    prune_now(&*history, retention, &mut ended_jobs).await;
                    continue;
                }
            }
        }
        if pending.len() == 1 && failures == 0 {
            // The ends of a pass's runs come close together: one write for them,
            // not one for the first and another for the rest.
            tokio::time::sleep(GATHER).await;
        }
        while let Ok(m) = rx.try_recv() {
            take(m, &mut pending, &mut flushes, &counts);
        }
        if pending.is_empty() {
            continue;
        }
        match write(&*history, &pending, leased).await {
            Ok(()) => {
                if failures > 0 {
                    apscheduler_core::log_warn!(target: "apscheduler", "run history reachable again after {failures} failed attempt(s); waiting records written");
                }
                failures = 0;
                let oldest = lock(&counts.oldest_unwritten).take();
                if let Some(oldest) = oldest {
                    counts.note_lag(oldest.elapsed());
                }
                counts
                    .written
                    .fetch_add(pending.len() as u64, std::sync::atomic::Ordering::AcqRel);
                let hook = lock(&counts.on_written).clone();
                if let Some(hook) = hook {
                    hook();
                }
                ended_jobs.extend(
                    pending
                        .drain(..)
                        .filter(|r| r.outcome.is_final())
                        .map(|r| r.job_id),
                );
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    apscheduler_core::log_error!(target: "apscheduler", "run history unavailable; {} record(s) wait in memory and are retried: {e}", pending.len());
                }
                let wait = Duration::from_millis(100 * 2u64.saturating_pow(failures.min(6)));
                tokio::time::sleep(wait.min(RETRY_CAP)).await;
            }
        }
    }
}

/// Writes `records` in one go. With leased runs the store decides which node holds a
/// run, and a sweeper records `interrupted` a run whose holder stopped renewing its
/// lease: the start record such a holder queued before it stalled must not replace
/// that record when the holder wakes. So the starts (`running` records with a start
/// time) are written only where the record is still `running` or absent
/// ([`RunHistory::record_starts`]: a refused one is dropped, the record that refused
/// it stays), before the rest (a start and the end after it may share a batch).
pub(super) async fn write(
    history: &dyn RunHistory,
    records: &[RunRecord],
    leased: bool,
) -> Result<(), apscheduler_core::Error> {
    let is_start = |r: &&RunRecord| r.outcome == RunOutcome::Running && r.started_at.is_some();
    if !leased || !records.iter().any(|r| is_start(&r)) {
        return history.record_runs(records).await;
    }
    let (starts, rest): (Vec<RunRecord>, Vec<RunRecord>) =
        records.iter().cloned().partition(|r| is_start(&r));
    history.record_starts(&starts).await?;
    if rest.is_empty() {
        return Ok(());
    }
    history.record_runs(&rest).await
}

fn take(
    msg: Msg,
    pending: &mut Vec<RunRecord>,
    flushes: &mut Vec<oneshot::Sender<()>>,
    counts: &Counts,
) {
    match msg {
        Msg::Record(r, queued) => {
            pending.push(r);
            let mut oldest = lock(&counts.oldest_unwritten);
            *oldest = Some(oldest.map_or(queued, |t| t.min(queued)));
        }
        Msg::Flush(done) => flushes.push(done),
    }
}

async fn prune_now(history: &dyn RunHistory, retention: Retention, jobs: &mut HashSet<String>) {
    if let Some(keep) = retention.max_runs_per_job {
        let todo: Vec<String> = jobs.drain().collect();
        for (i, job) in todo.iter().enumerate() {
            if let Err(e) = history.prune_job_runs(job, keep).await {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %job, "run history pruning failed (retried at the next interval): {e}");
                jobs.extend(todo[i..].iter().cloned());
                break;
            }
        }
    }
    if let Some(age) = retention.max_age {
        let cut = Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::TimeDelta::MAX);
        if let Err(e) = history.prune_runs_before(cut).await {
            apscheduler_core::log_warn!(target: "apscheduler", "run history pruning by age failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use apscheduler_core::{JobStore, RunQuery};
    use apscheduler_store_memory::MemoryJobStore;
    use chrono::TimeZone;

    use super::*;

    /// A node that stalled after queuing a run's start wakes to find the run swept
    /// and recorded `interrupted` by another node: with leased runs its start record
    /// is refused and the sweeper's record stays; without, it would replace it.
    #[tokio::test]
    async fn a_start_queued_before_a_stall_never_replaces_the_sweepers_record() {
        let at = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap();
        let mut interrupted = RunRecord::pending("j@1", "j", at, "sweeper");
        interrupted.started_at = Some(at);
        interrupted.finished_at = Some(at + chrono::Duration::seconds(9));
        interrupted.outcome = RunOutcome::Interrupted;
        let mut start = RunRecord::pending("j@1", "j", at, "stalled");
        start.started_at = Some(at);
        let mut other = RunRecord::pending("j@2", "j", at, "stalled");
        other.started_at = Some(at);
        for (leased, expected) in [
            (true, RunOutcome::Interrupted),
            (false, RunOutcome::Running),
        ] {
            let history = MemoryJobStore::new().run_history().expect("a run history");
            history.record_runs(&[interrupted.clone()]).await.unwrap();
            write(&*history, &[start.clone(), other.clone()], leased)
                .await
                .unwrap();
            let records = history.query_runs(&RunQuery::default()).await.unwrap();
            let outcome = |id: &str| records.iter().find(|r| r.run_id == id).map(|r| r.outcome);
            assert_eq!(outcome("j@1"), Some(expected), "leased {leased}");
            assert_eq!(
                outcome("j@2"),
                Some(RunOutcome::Running),
                "a new start is written"
            );
        }
    }
}

//! The `running` records of a pass's runs, made before they are written: by
//! [`Recorder::begin`](super::Recorder::begin), or with the release that makes the
//! runs this node's, in the same round trip, when the history is the store's own
//! ([`JobStore::release_jobs_recorded`]).

use std::sync::Arc;

use apscheduler_core::{JobRun, JobStore, RunRecord};

use super::{lock, InFlight, Recorder};

impl Recorder {
    /// The `running` records of `runs` (one per fire time), registered as in flight
    /// and shown to the observers, for the caller to write. `note` is each record's
    /// message; `claimed` fire times get no start time yet under
    /// [`HistoryOptions::record_starts`](super::HistoryOptions::record_starts);
    /// `backfill` marks them.
    pub(crate) fn stage<'a>(
        &self,
        runs: impl Iterator<Item = &'a JobRun>,
        note: Option<&str>,
        claimed: bool,
        backfill: bool,
    ) -> Vec<RunRecord> {
        let now = self.clock.now();
        let unstarted = claimed && self.options.record_starts;
        let mut records = Vec::new();
        for run in runs {
            for (id, t) in run.run_ids.iter().zip(&run.run_times) {
                let mut record = self.blank(id, &run.job_id, t.with_timezone(&chrono::Utc));
                record.started_at = (!unstarted).then_some(now);
                record.message = note.map(str::to_owned);
                record.attempt = run.attempt;
                record.backfill = backfill;
                records.push(record);
            }
        }
        if records.is_empty() {
            return records;
        }
        {
            let mut in_flight = lock(&self.in_flight);
            for r in &records {
                in_flight.insert(
                    r.run_id.as_str().into(),
                    InFlight {
                        record: r.clone(),
                        started: false,
                        written: false,
                    },
                );
            }
        }
        for r in &records {
            self.observe(r);
        }
        records
    }

    /// The staged `records` are written.
    pub(crate) fn staged_written(&self, records: &[RunRecord]) {
        let mut in_flight = lock(&self.in_flight);
        for r in records {
            if let Some(entry) = in_flight.get_mut(r.run_id.as_str()) {
                entry.written = true;
            }
        }
    }

    /// The staged `records` could not be written (`error`): the writer gets them, and
    /// retries until the history answers.
    ///
    /// Records without a start time ([`HistoryOptions::record_starts`](super::HistoryOptions::record_starts))
    /// are not queued: the writer could write one without its start after
    /// `confirm_starts` wrote it with its start, and the node that reaps this one
    /// would take the run for never started. `confirm_starts` writes these whole,
    /// start included, before the runs start (or they do not start).
    pub(crate) fn staged_unwritten(&self, records: Vec<RunRecord>, error: &str) {
        let (unstarted, queued): (Vec<_>, Vec<_>) =
            records.into_iter().partition(|r| r.started_at.is_none());
        if !unstarted.is_empty() {
            apscheduler_core::log_warn!(target: "apscheduler", "run history: {} running record(s) not written before their release ({error}); each is written with its start before its run starts, and a run whose record cannot be written then does not start", unstarted.len());
        }
        if queued.is_empty() {
            return;
        }
        apscheduler_core::log_warn!(target: "apscheduler", "run history: {} running record(s) not written before their runs start ({error}); queued for the writer", queued.len());
        for r in queued {
            self.send(r);
        }
    }

    /// Whether this recorder writes to `store`'s own run history, and `store` writes
    /// records with a release in one round trip: a pass then writes its `running`
    /// records with its release.
    pub(crate) fn records_with_release_on(&self, store: &dyn JobStore) -> bool {
        store.records_with_release()
            && store
                .run_history()
                .is_some_and(|own| same(&own, &self.history))
    }
}

/// Whether two handles are the same history object (data pointers compared: vtable
/// pointers of one type may differ between codegen units).
fn same(
    a: &Arc<dyn apscheduler_core::RunHistory>,
    b: &Arc<dyn apscheduler_core::RunHistory>,
) -> bool {
    std::ptr::eq(Arc::as_ptr(a).cast::<()>(), Arc::as_ptr(b).cast::<()>())
}

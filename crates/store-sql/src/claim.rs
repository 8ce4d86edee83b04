//! The job store's claim, plain or preferring some partitions, and the record of a
//! wait for a release (PostgreSQL), beside [`crate::store`].

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{Acquired, CorruptJob, Error};
use chrono::{DateTime, Utc};

use crate::codec;
use crate::driver::{ClaimRequest, Driver};
use crate::store::SqlJobStore;

impl SqlJobStore {
    /// A claim, preferring the partitions `prefer` names when given.
    pub(crate) async fn claim(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
        prefer: Option<&[u32]>,
    ) -> Result<Acquired, Error> {
        codec::check_id("scheduler_id", scheduler_id)?;
        if limit == 0 {
            return Ok(Acquired::default());
        }
        self.lock_single_node()?;
        let driver = self.driver().await?;
        let req = ClaimRequest {
            holder: scheduler_id,
            now: codec::micros_floor(&now),
            expires: codec::expiry(&now, lease),
            lease: codec::lease_length(lease),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            max_bytes: self.max_bytes(),
            prefer,
        };
        let mut rows = retry!(driver.claim(req))?;
        rows.sort_unstable_by(|a, b| (a.next_run_time, &a.id).cmp(&(b.next_run_time, &b.id)));
        let mut acquired = Acquired {
            jobs: Vec::with_capacity(rows.len()),
            corrupt: Vec::new(),
        };
        let mut marks = Vec::new();
        for row in &rows {
            match codec::decode(row, &self.codec) {
                Ok(job) => acquired.jobs.push(job),
                Err(reason) => {
                    marks.push((row.id.clone(), reason.clone()));
                    acquired.corrupt.push(CorruptJob {
                        id: row.id.clone(),
                        error: reason,
                    });
                }
            }
        }
        if !marks.is_empty() {
            // Set aside for good. Should this fail, the rows stay leased to us and are
            // reported again when the lease expires.
            if let Err(e) = retry!(driver.mark_corrupt(&marks)) {
                apscheduler_core::log_warn!(target: "apscheduler", table = %self.link.names.table, "cannot mark corrupt jobs: {e}");
            }
        }
        Ok(acquired)
    }

    /// Records (PostgreSQL) that this store's scheduler sleeps until `until`, a lease's
    /// end, so that the release of a job under a lease wakes it. Written once per wait
    /// and only by a store that listens. A wait recorded just after another node's
    /// release checked for waiters misses that release: the scheduler then wakes at
    /// the lease's end, and the node that released the job has planned it meanwhile.
    pub(crate) async fn wait_for_release(&self, driver: &Arc<dyn Driver>, until: i64) {
        use std::sync::atomic::Ordering;
        if self.changes.listener().is_none() || self.waiting_until.load(Ordering::Relaxed) >= until
        {
            return;
        }
        match driver.wait_for_release(self.changes.token(), until).await {
            Ok(()) => {
                self.waiting_until.fetch_max(until, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(target: "apscheduler", "wait for a release not recorded (this scheduler wakes at the lease's end): {e}");
            }
        }
    }
}

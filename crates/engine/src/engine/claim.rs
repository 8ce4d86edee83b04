//! The claim of a pass: the partitions this node owns first, where the store has
//! partitions and enough nodes are live (see [`crate::partition`]).

use super::*;

impl Engine {
    /// Claims up to `batch` due jobs, the partitions this node owns first when the
    /// store has partitions and enough nodes are live (see [`crate::partition`]).
    pub(super) async fn claim(
        &self,
        store: &Arc<dyn JobStore>,
        capabilities: apscheduler_core::Capabilities,
        now: DateTime<Utc>,
        batch: usize,
    ) -> Result<apscheduler_core::Acquired, Error> {
        let (id, lease) = (&self.inner.scheduler_id, self.inner.lease);
        let owned = match &self.inner.history {
            Some(recorder) if capabilities.shared => {
                recorder.owned_partitions(capabilities.partitions)
            }
            _ => None,
        };
        match owned {
            Some(owned) => {
                let hint = apscheduler_core::ClaimHint {
                    partitions: capabilities.partitions,
                    owned: &owned,
                };
                store
                    .acquire_due_jobs_preferring(id, now, batch, lease, hint)
                    .await
            }
            None => store.acquire_due_jobs(id, now, batch, lease).await,
        }
    }
}

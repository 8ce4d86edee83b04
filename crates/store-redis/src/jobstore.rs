//! The [`JobStore`] contract on Redis: connecting, the change subscription, job
//! writes and reads (the claim path is in `claims`).

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{async_trait, Acquired, Error, Job, JobRelease, JobStore, Released};
use chrono::{DateTime, Utc};

use crate::codec::{self, from_micros};
use crate::error::StoreError;
use crate::scripts::SCRIPTS;
use crate::{changes, RedisJobStore};

/// The score of the first member of a flat `WITHSCORES` reply, in whole microseconds.
fn scored(flat: &[Vec<u8>]) -> Result<Option<i64>, StoreError> {
    let Some(score) = flat.get(1) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(score).unwrap_or_default();
    let value: f64 = text.parse().map_err(|_| StoreError::Reply {
        what: "get next run time",
        detail: format!("score {text:?}"),
    })?;
    Ok(Some(value.round() as i64))
}

#[async_trait]
impl JobStore for RedisJobStore {
    /// Connects (`PING`). With a change listener set, also subscribes to the prefix's
    /// change channel on a connection of its own.
    async fn start(&self, _alias: &str) -> Result<(), Error> {
        let _: String = self.query("ping", &redis::cmd("PING")).await?;
        if let Some(listener) = self.changes.listener() {
            self.changes.stop().await;
            let task = tokio::spawn(changes::listen_loop(
                self.conn.clone(),
                self.changes_channel(),
                self.changes.token().clone(),
                listener,
            ));
            self.changes.listening(Box::new(move || {
                task.abort();
                Box::pin(async {})
            }));
        }
        Ok(())
    }

    /// Heard through the subscription to `<prefix>changes` from
    /// [`start`](JobStore::start) on: every job added, changed, removed or released by
    /// another store on the prefix (another process's scheduler or `aps jobs`) calls it,
    /// and so does every re-subscription after the connection dropped.
    fn set_change_listener(&self, listener: apscheduler_core::ChangeListener) {
        self.changes.set_listener(listener);
    }

    async fn shutdown(&self) -> Result<(), Error> {
        self.changes.stop().await;
        if self
            .waiting_until
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            // Left behind, it would only wake the others for nothing until it ends.
            self.stop_waiting().await;
        }
        // Dropping the last handle closes the connection; a later call (of the store or
        // its run history) reconnects.
        self.conn.disconnect();
        Ok(())
    }

    fn runs(&self) -> Option<&dyn apscheduler_core::RunStore> {
        Some(self)
    }

    fn run_history(&self) -> Option<Arc<dyn apscheduler_core::RunHistory>> {
        Some(self.history.clone())
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn capabilities(&self) -> apscheduler_core::Capabilities {
        let mut capabilities = apscheduler_core::Capabilities::persistent_shared(true);
        capabilities.notifications = true;
        capabilities.store_clock = true;
        // On a cluster the engine's partitions are the store's (a job's partition is
        // a stable hash of its id): a node that prefers its own spreads the claims
        // over the primaries.
        let parts = self.parts.all().len();
        if parts > 1 {
            capabilities.partitions = u32::try_from(parts).unwrap_or(0);
        }
        capabilities
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        self.add(std::slice::from_ref(&job), replace_existing)
            .await?;
        self.changed().await;
        Ok(())
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        if jobs.is_empty() {
            return Ok(());
        }
        self.add(&jobs, replace_existing).await?;
        self.changed().await;
        Ok(())
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        let enc = self.encode(&job)?;
        let part = self.parts.of(&job.id);
        let mut invocation = self.invocation(part, &SCRIPTS.update);
        invocation
            .arg(&*job.id)
            .arg(&enc.state[..])
            .arg(enc.run_arg());
        let updated: i64 = self.invoke("update job", &invocation).await?;
        if updated == 0 {
            return Err(StoreError::NotFound(job.id.to_string()).into());
        }
        self.replicated(&[part], "update job").await?;
        self.changed().await;
        Ok(())
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        let part = self.parts.of(id);
        let mut invocation = self.invocation(part, &SCRIPTS.remove);
        invocation.arg(id);
        let removed: i64 = self.invoke("remove job", &invocation).await?;
        if removed == 0 {
            return Err(StoreError::NotFound(id.to_owned()).into());
        }
        self.replicated(&[part], "remove job").await?;
        self.changed().await;
        Ok(())
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        let deletes = (0..self.parts.all().len()).map(|part| async move {
            let invocation = self.invocation(part, &SCRIPTS.clear);
            self.invoke::<i64>("remove all jobs", &invocation).await
        });
        futures_util::future::try_join_all(deletes).await?;
        let parts: Vec<usize> = (0..self.parts.all().len()).collect();
        self.replicated(&parts, "remove all jobs").await?;
        self.changed().await;
        Ok(())
    }

    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        let raw: Option<Vec<u8>> = self
            .query(
                "look up job",
                redis::cmd("HGET")
                    .arg(&self.parts.get(self.parts.of(id)).jobs)
                    .arg(id),
            )
            .await?;
        match raw {
            None => Ok(None),
            Some(raw) => Ok(Some(self.decode(id.as_bytes(), &raw)?)),
        }
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        let reads = self.parts.all().iter().map(|k| async move {
            let mut cmd = redis::cmd("HGETALL");
            cmd.arg(&k.jobs);
            self.query::<Vec<Vec<u8>>>("list jobs", &cmd).await
        });
        let flat: Vec<Vec<u8>> = futures_util::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let mut jobs: Vec<(Option<i64>, Job)> = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            match self.decode(&pair[0], &pair[1]) {
                Ok(job) => jobs.push((job.next_run_time.as_ref().map(codec::score), job)),
                Err(e) => {
                    apscheduler_core::log_warn!(target: "apscheduler", prefix = %self.prefix, "skipping a stored job: {e}");
                }
            }
        }
        // Paused jobs (`None`) sort after every run time.
        jobs.sort_unstable_by(|(a, ja), (b, jb)| {
            (a.is_none(), a, &ja.id).cmp(&(b.is_none(), b, &jb.id))
        });
        Ok(jobs.into_iter().map(|(_, job)| job).collect())
    }

    /// On a cluster, a partition known down (see `shards`) is not read: the call fails
    /// at once (`Unavailable`, naming the partitions), so the engine looks again soon
    /// while the other partitions are claimed.
    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let parts = self.parts.all().len();
        let asked = if parts > 1 {
            self.claimable_partitions()
        } else {
            vec![0]
        };
        let reads = asked.iter().map(|&part| async move {
            let k = self.parts.get(part);
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("ZRANGE")
                .arg(&k.run_times)
                .arg(0)
                .arg(0)
                .arg("WITHSCORES")
                .cmd("ZRANGE")
                .arg(&k.claimed)
                .arg(0)
                .arg(0)
                .arg("WITHSCORES");
            let read = async {
                let (due, claimed): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
                    self.pipeline("get next run time", &pipe).await?;
                Ok::<_, StoreError>((scored(&due)?, scored(&claimed)?))
            };
            (part, read.await)
        });
        let (mut due, mut leased) = (None::<i64>, None::<(i64, usize)>);
        let mut failed = None;
        for (part, read) in futures_util::future::join_all(reads).await {
            match read {
                Ok((d, c)) => {
                    due = d.into_iter().chain(due).min();
                    leased = c.map(|c| (c, part)).into_iter().chain(leased).min();
                }
                Err(e) => {
                    if parts > 1 {
                        self.partition_failed(part, &e);
                    }
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        if asked.len() < parts {
            let down: Vec<String> = (0..parts)
                .filter(|p| !asked.contains(p))
                .map(|p| p.to_string())
                .collect();
            return Err(StoreError::Unavailable {
                what: "get next run time",
                source: redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "partitions whose primary does not answer",
                    format!(
                        "partition(s) {} failed their last call and are probed at each claim",
                        down.join(", ")
                    ),
                )),
            }
            .into());
        }
        // Sleeping until another scheduler's lease ends: only then does a release
        // concern this scheduler (a release never moves a job it saw unleased earlier).
        if let Some((until, part)) = leased.filter(|(l, _)| due.is_none_or(|d| *l <= d)) {
            self.wait_for_release(part, until).await;
        }
        let next = match (due, leased) {
            (Some(d), Some((l, _))) => Some(d.min(l)),
            (d, l) => d.or(l.map(|(l, _)| l)),
        };
        Ok(next.map(from_micros))
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        self.claim(scheduler_id, now, limit, lease, None).await
    }

    /// On a cluster whose partition count is the hint's, the preferred partitions'
    /// due jobs first (earliest first), then the others' to fill `limit`, in the same
    /// two round trips as a plain claim. Elsewhere (one partition, another count, a
    /// hint that names every partition or none) a plain claim.
    async fn acquire_due_jobs_preferring(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
        hint: apscheduler_core::ClaimHint<'_>,
    ) -> Result<Acquired, Error> {
        let parts = self.parts.all().len();
        let partitioned = parts > 1
            && hint.partitions as usize == parts
            && !hint.owned.is_empty()
            && !hint.owns_all();
        self.claim(
            scheduler_id,
            now,
            limit,
            lease,
            partitioned.then_some(hint.owned),
        )
        .await
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        _now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        self.extend(scheduler_id, ids, lease).await
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        self.release(scheduler_id, releases, &[]).await
    }

    fn records_with_release(&self) -> bool {
        // A cluster keeps the history in a slot of its own.
        !self.conn.is_cluster()
    }

    async fn release_jobs_recorded(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
        records: &[apscheduler_core::RunRecord],
    ) -> Result<Released, Error> {
        self.release(scheduler_id, releases, records).await
    }
}

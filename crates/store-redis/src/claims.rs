//! The claim path: claiming due jobs, extending and releasing leases, setting aside
//! claimed jobs that cannot be read.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{Acquired, CorruptJob, Error, JobRelease, Released};
use chrono::{DateTime, Utc};

use crate::codec::{decode, lease_length, now_micros, score};
use crate::error::StoreError;
use crate::scripts::SCRIPTS;
use crate::RedisJobStore;

impl RedisJobStore {
    /// [`JobStore::acquire_due_jobs`](apscheduler_core::JobStore::acquire_due_jobs):
    /// one claim script, then the states decoded. On a cluster with several
    /// partitions, two steps: every partition is asked at once what it would give
    /// first (`PEEK`), the answers are merged by (run time, id), and each partition
    /// that holds some of the first `limit` is claimed from, at once, for that many;
    /// so a claim takes the earliest due jobs of the whole store, in the contract's
    /// order, in two round trips.
    pub(crate) async fn claim(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        let mut acquired = Acquired {
            jobs: Vec::new(),
            corrupt: Vec::new(),
        };
        let parts = self.parts.all().len();
        if parts == 1 {
            self.claim_in(0, scheduler_id, now, limit, lease, &mut acquired)
                .await?;
            return Ok(acquired);
        }
        if limit == 0 {
            return Ok(acquired);
        }
        let wanted = self.plan_claim(scheduler_id, now, limit).await?;
        let claims =
            wanted
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(part, n)| async move {
                    let mut mine = Acquired {
                        jobs: Vec::new(),
                        corrupt: Vec::new(),
                    };
                    let result = self
                        .claim_in(part, scheduler_id, now, *n, lease, &mut mine)
                        .await;
                    (part, result, mine)
                });
        let mut failed = None;
        for (part, result, mine) in futures_util::future::join_all(claims).await {
            acquired.jobs.extend(mine.jobs);
            acquired.corrupt.extend(mine.corrupt);
            if let Err(e) = result {
                failed = Some((part, e));
            }
        }
        if let Some((part, e)) = failed {
            if acquired.jobs.is_empty() && acquired.corrupt.is_empty() {
                return Err(e);
            }
            // Jobs claimed in other partitions are leased to this scheduler: hand them
            // over rather than let them wait for their leases to expire.
            apscheduler_core::log_warn!(target: "apscheduler", prefix = %self.prefix, partition = part, "Redis: claiming in a partition failed, {} jobs claimed in others are returned: {e}", acquired.jobs.len());
        }
        acquired.jobs.sort_by(|a, b| {
            let key =
                |j: &apscheduler_core::Job| (j.next_run_time.as_ref().map(score), j.id.clone());
            key(a).cmp(&key(b))
        });
        Ok(acquired)
    }

    /// How many jobs to claim from each partition: the first `limit` of every
    /// partition's `PEEK`, merged by (run time, id).
    async fn plan_claim(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<usize>, Error> {
        let peeks = (0..self.parts.all().len()).map(|part| {
            let mut invocation = self.invocation(part, &SCRIPTS.peek);
            invocation
                .arg(now_micros(&now))
                .arg(i64::try_from(limit).unwrap_or(i64::MAX))
                .arg(scheduler_id);
            async move {
                let flat: Vec<String> = self.invoke("acquire due jobs", &invocation).await?;
                Ok::<_, StoreError>((part, flat))
            }
        });
        let mut heads: Vec<(i64, String, usize)> = Vec::new();
        for (part, flat) in futures_util::future::try_join_all(peeks).await? {
            let mut seen = std::collections::HashSet::new();
            for pair in flat.chunks_exact(2) {
                let run = pair[1].parse::<f64>().map_err(|_| StoreError::Reply {
                    what: "acquire due jobs",
                    detail: format!("run time {:?}", pair[1]),
                })?;
                if seen.insert(pair[0].clone()) {
                    heads.push((run.round() as i64, pair[0].clone(), part));
                }
            }
        }
        heads.sort_unstable();
        let mut wanted = vec![0; self.parts.all().len()];
        for (_, _, part) in heads.into_iter().take(limit) {
            wanted[part] += 1;
        }
        Ok(wanted)
    }

    /// The claim script on one partition, its jobs appended to `acquired`.
    async fn claim_in(
        &self,
        part: usize,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
        acquired: &mut Acquired,
    ) -> Result<(), Error> {
        let mut invocation = self.invocation(part, &SCRIPTS.claim);
        invocation
            .arg(now_micros(&now))
            .arg(lease_length(lease))
            .arg(i64::try_from(limit).unwrap_or(i64::MAX))
            .arg(scheduler_id)
            .arg(self.max_state_bytes);
        let (taken, too_large): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
            self.invoke("acquire due jobs", &invocation).await?;

        for pair in too_large.chunks_exact(2) {
            acquired.corrupt.push(CorruptJob {
                id: String::from_utf8_lossy(&pair[0]).into_owned(),
                error: String::from_utf8_lossy(&pair[1]).into_owned(),
            });
        }
        let mut bad = Vec::new();
        let mut taken = taken.into_iter();
        while let (Some(id), Some(state)) = (taken.next(), taken.next()) {
            match decode(&id, &state, &self.codec()) {
                Ok(job) => acquired.jobs.push(job),
                Err(error) => {
                    acquired.corrupt.push(CorruptJob {
                        id: String::from_utf8_lossy(&id).into_owned(),
                        error: error.clone(),
                    });
                    bad.push((id, state, error));
                }
            }
        }
        if !bad.is_empty() {
            self.quarantine(part, scheduler_id, &bad).await;
        }
        Ok(())
    }

    /// [`JobStore::extend_leases`](apscheduler_core::JobStore::extend_leases): leases run by the server's clock, so `now` is not
    /// needed.
    pub(crate) async fn extend(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        lease: Duration,
    ) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let groups = self.parts.group(ids.iter(), |id| &***id);
        let calls = groups.iter().map(|(part, group)| {
            let mut invocation = self.invocation(*part, &SCRIPTS.extend);
            invocation.arg(scheduler_id).arg(lease_length(lease));
            for id in group {
                invocation.arg(&***id);
            }
            async move {
                self.invoke::<Vec<String>>("extend leases", &invocation)
                    .await
            }
        });
        let lost: Vec<String> = futures_util::future::try_join_all(calls)
            .await?
            .into_iter()
            .flatten()
            .collect();
        if lost.is_empty() {
            Ok(())
        } else {
            Err(StoreError::LeaseLost {
                holder: scheduler_id.to_owned(),
                ids: lost.join(", "),
            }
            .into())
        }
    }

    /// [`JobStore::release_jobs`](apscheduler_core::JobStore::release_jobs).
    pub(crate) async fn release(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        if releases.is_empty() {
            return Ok(Released::all());
        }
        // A state that cannot be stored is not released (its lease runs out); the others
        // are.
        let mut refused = Vec::new();
        let mut entries = Vec::with_capacity(releases.len());
        for release in &releases {
            match release {
                JobRelease::Update(job) => match self.encode(job) {
                    Ok(enc) => entries.push((&job.id, Some(enc))),
                    Err(e) => refused.push((job.id.clone(), e)),
                },
                JobRelease::Remove(id) => entries.push((id, None)),
            }
        }
        let groups = self.parts.group(entries, |(id, _)| &***id);
        let calls = groups.iter().map(|(part, group)| {
            let mut invocation = self.invocation(*part, &SCRIPTS.release);
            invocation.arg(scheduler_id);
            for (id, enc) in group {
                match enc {
                    Some(enc) => {
                        invocation
                            .arg("u")
                            .arg(&***id)
                            .arg(&enc.state[..])
                            .arg(enc.run_arg());
                    }
                    None => {
                        invocation.arg("r").arg(&***id);
                    }
                }
            }
            async move {
                let lost: Vec<String> = self.invoke("release jobs", &invocation).await?;
                Ok::<_, StoreError>((*part, group.len(), lost))
            }
        });
        let results = futures_util::future::try_join_all(calls).await?;
        // Not confirmed: the scheduler starts none of these fire times and retries the
        // release, which then finds the leases gone (applied here) or applies them (on
        // a new primary that never had them).
        let applied: Vec<usize> = results
            .iter()
            .filter(|(_, sent, lost)| lost.len() < *sent)
            .map(|(part, ..)| *part)
            .collect();
        if !applied.is_empty() {
            self.replicated(&applied, "release jobs").await?;
            // A node that saw these jobs under this one's lease sleeps until it
            // expires: wake it now.
            self.changed().await;
        }
        let lost: Vec<String> = results.into_iter().flat_map(|(_, _, lost)| lost).collect();
        let lost = lost.into_iter().map(Arc::from).collect();
        Ok(Released::new(lost, refused))
    }

    /// Sets aside claimed jobs that cannot be decoded (best effort: on failure they are
    /// reported again when their lease expires).
    async fn quarantine(
        &self,
        part: usize,
        scheduler_id: &str,
        bad: &[(Vec<u8>, Vec<u8>, String)],
    ) {
        let mut invocation = self.invocation(part, &SCRIPTS.quarantine);
        invocation.arg(scheduler_id);
        for (id, state, error) in bad {
            invocation.arg(&id[..]).arg(&state[..]).arg(error.as_str());
        }
        let result: Result<i64, _> = self.invoke("set aside corrupt jobs", &invocation).await;
        if let Err(e) = result {
            apscheduler_core::log_warn!(target: "apscheduler", prefix = %self.prefix, "cannot set aside corrupt jobs (they will be reported again): {e}");
        }
    }
}

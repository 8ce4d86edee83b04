//! The claim path: claiming due jobs, extending and releasing leases, setting aside
//! claimed jobs that cannot be read.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{Acquired, CorruptJob, Error, JobRelease, Released, RunRecord};
use chrono::{DateTime, Utc};

use crate::codec::{decode, from_micros, lease_length, now_micros};
use crate::error::StoreError;
use crate::scripts::SCRIPTS;
use crate::RedisJobStore;

impl RedisJobStore {
    /// [`JobStore::acquire_due_jobs`](apscheduler_core::JobStore::acquire_due_jobs): one claim script, then the states decoded.
    pub(crate) async fn claim(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        let mut invocation = self.invocation(&SCRIPTS.claim);
        invocation
            .arg(now_micros(&now))
            .arg(lease_length(lease))
            .arg(i64::try_from(limit).unwrap_or(i64::MAX))
            .arg(scheduler_id)
            .arg(self.max_state_bytes);
        let (taken, too_large): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
            self.invoke("acquire due jobs", &invocation).await?;

        let mut acquired = Acquired {
            jobs: Vec::with_capacity(taken.len() / 2),
            corrupt: Vec::new(),
        };
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
            self.quarantine(scheduler_id, &bad).await;
        }
        Ok(acquired)
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
        let mut invocation = self.invocation(&SCRIPTS.extend);
        invocation.arg(scheduler_id).arg(lease_length(lease));
        for id in ids {
            invocation.arg(&**id);
        }
        let lost: Vec<String> = self.invoke("extend leases", &invocation).await?;
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

    /// [`JobStore::release_jobs`](apscheduler_core::JobStore::release_jobs), and
    /// [`JobStore::release_jobs_recorded`](apscheduler_core::JobStore::release_jobs_recorded):
    /// the history's record script and the release script in one pipeline (one round
    /// trip). The release script applies only when the records exist: should the
    /// first script not run (not loaded on this server), the records are written
    /// first, then the release, each in a round trip of its own. The release publishes
    /// the change and reads the next run time in the same script.
    pub(crate) async fn release(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
        records: &[RunRecord],
    ) -> Result<Released, Error> {
        if releases.is_empty() {
            if !records.is_empty() {
                self.history.record(records).await?;
            }
            return Ok(Released::all());
        }
        let call = self.history.record_call(records);
        if call.is_none() && !records.is_empty() {
            self.history.record(records).await?;
        }
        let required: &[String] = call.as_ref().map_or(&[], |(_, keys)| keys);
        let mut invocation = self.invocation(&SCRIPTS.release);
        invocation
            .arg(scheduler_id)
            .arg(self.changes_channel())
            .arg(&**self.changes.token())
            .arg(required.len());
        for key in required {
            invocation.arg(key);
        }
        // A state that cannot be stored is not released (its lease runs out); the others
        // are.
        let mut refused = Vec::new();
        for release in &releases {
            match release {
                JobRelease::Update(job) => {
                    let enc = match self.encode(job) {
                        Ok(enc) => enc,
                        Err(e) => {
                            refused.push((job.id.clone(), e));
                            continue;
                        }
                    };
                    invocation
                        .arg("u")
                        .arg(&*job.id)
                        .arg(&enc.state[..])
                        .arg(enc.run_arg());
                }
                JobRelease::Remove(id) => {
                    invocation.arg("r").arg(&**id);
                }
            }
        }
        let reply: ReleaseReply = match &call {
            Some((record, _)) => {
                let mut pipe = redis::pipe();
                pipe.invoke_script(record)
                    .ignore()
                    .invoke_script(&invocation);
                match self
                    .pipeline::<(ReleaseReply,)>("record runs and release jobs", &pipe)
                    .await
                {
                    Ok((reply,)) if reply.is_some() => reply,
                    // A script not loaded here (a restarted or new primary): nothing was
                    // released. Records first, then the release, each loading its script.
                    Ok(_) => {
                        self.history.record(records).await?;
                        self.invoke("release jobs", &invocation).await?
                    }
                    Err(e) if e.is_no_script() => {
                        self.history.record(records).await?;
                        self.invoke("release jobs", &invocation).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None => self.invoke("release jobs", &invocation).await?,
        };
        let Some((lost, due, claimed)) = reply else {
            return Err(StoreError::Reply {
                what: "release jobs",
                detail: "the release found its run records missing".to_owned(),
            }
            .into());
        };
        // Not confirmed: the scheduler starts none of these fire times and retries the
        // release, which then finds the leases gone (applied here) or applies them (on
        // a new primary that never had them).
        if lost.len() + refused.len() < releases.len() {
            self.replicated("release jobs").await?;
        }
        let next = match (score(&due)?, score(&claimed)?) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let lost = lost.into_iter().map(Arc::from).collect();
        Ok(Released::new(lost, refused).with_next_run_time(next.map(from_micros)))
    }

    /// Sets aside claimed jobs that cannot be decoded (best effort: on failure they are
    /// reported again when their lease expires).
    async fn quarantine(&self, scheduler_id: &str, bad: &[(Vec<u8>, Vec<u8>, String)]) {
        let mut invocation = self.invocation(&SCRIPTS.quarantine);
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

/// The release script's reply: `None` when its run records were missing.
type ReleaseReply = Option<(Vec<String>, String, String)>;

/// A score the release script read (`''`: the set was empty), in microseconds.
fn score(text: &str) -> Result<Option<i64>, StoreError> {
    if text.is_empty() {
        return Ok(None);
    }
    let value: f64 = text.parse().map_err(|_| StoreError::Reply {
        what: "release jobs",
        detail: format!("score {text:?}"),
    })?;
    Ok(Some(value.round() as i64))
}

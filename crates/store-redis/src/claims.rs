//! The claim path: claiming due jobs, extending and releasing leases, setting aside
//! claimed jobs that cannot be read.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{Acquired, CorruptJob, Error, JobRelease, Released, RunRecord};
use chrono::{DateTime, Utc};

use crate::codec::{decode, from_micros, lease_length, now_micros, score};
use crate::error::StoreError;
use crate::scripts::SCRIPTS;
use crate::RedisJobStore;

impl RedisJobStore {
    /// [`JobStore::acquire_due_jobs`](apscheduler_core::JobStore::acquire_due_jobs)
    /// and, with `prefer`,
    /// [`acquire_due_jobs_preferring`](apscheduler_core::JobStore::acquire_due_jobs_preferring):
    /// one claim script, then the states decoded. On a cluster with several
    /// partitions, two steps: every partition is asked at once what it would give
    /// first (`PEEK`), the answers are merged by (run time, id), and each partition
    /// that holds some of the first `limit` is claimed from, at once, for that many;
    /// so a claim takes the earliest due jobs of the whole store, in the contract's
    /// order, in two round trips. With `prefer`, the first `limit` are taken from the
    /// preferred partitions' answers first, then from the others'. A partition whose
    /// call fails is left out (see `shards`); the claim fails only when no partition
    /// answered, or when nothing was claimed and a claim failed.
    pub(crate) async fn claim(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
        prefer: Option<&[u32]>,
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
        let wanted = self.plan_claim(scheduler_id, now, limit, prefer).await?;
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
                self.partition_failed(part, &e);
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            if acquired.jobs.is_empty() && acquired.corrupt.is_empty() {
                return Err(e.into());
            }
        }
        acquired.jobs.sort_by(|a, b| {
            let key =
                |j: &apscheduler_core::Job| (j.next_run_time.as_ref().map(score), j.id.clone());
            key(a).cmp(&key(b))
        });
        Ok(acquired)
    }

    /// How many jobs to claim from each partition: the first `limit` of the
    /// partitions' `PEEK`s merged by (run time, id), the preferred partitions' first.
    /// Partitions known down are not asked; one whose `PEEK` fails is left out.
    async fn plan_claim(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        prefer: Option<&[u32]>,
    ) -> Result<Vec<usize>, StoreError> {
        let asked = self.claimable_partitions();
        if asked.is_empty() {
            return Err(StoreError::Unavailable {
                what: "acquire due jobs",
                source: redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "no partition's primary answers",
                    format!(
                        "every one of the {} partitions failed its last call; each claim probes them",
                        self.parts.all().len()
                    ),
                )),
            });
        }
        let peeks = asked.into_iter().map(|part| {
            let mut invocation = self.invocation(part, &SCRIPTS.peek);
            invocation
                .arg(now_micros(&now))
                .arg(i64::try_from(limit).unwrap_or(i64::MAX))
                .arg(scheduler_id);
            async move {
                let flat: Result<Vec<String>, _> =
                    self.invoke("acquire due jobs", &invocation).await;
                (part, flat)
            }
        });
        // (preferred first, run time, id, partition)
        let mut heads: Vec<(bool, i64, String, usize)> = Vec::new();
        let (mut answered, mut failed) = (0, None);
        for (part, flat) in futures_util::future::join_all(peeks).await {
            let flat = match flat {
                Ok(flat) => flat,
                Err(e) => {
                    self.partition_failed(part, &e);
                    failed = Some(e);
                    continue;
                }
            };
            answered += 1;
            let other = prefer.is_some_and(|owned| {
                u32::try_from(part).map_or(true, |p| owned.binary_search(&p).is_err())
            });
            let mut seen = std::collections::HashSet::new();
            for pair in flat.chunks_exact(2) {
                let run = pair[1].parse::<f64>().map_err(|_| StoreError::Reply {
                    what: "acquire due jobs",
                    detail: format!("run time {:?}", pair[1]),
                })?;
                if seen.insert(pair[0].clone()) {
                    heads.push((other, run.round() as i64, pair[0].clone(), part));
                }
            }
        }
        if let (0, Some(e)) = (answered, failed) {
            return Err(e);
        }
        heads.sort_unstable();
        let mut wanted = vec![0; self.parts.all().len()];
        for (_, _, _, part) in heads.into_iter().take(limit) {
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
    ) -> Result<(), StoreError> {
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

    /// [`JobStore::release_jobs`](apscheduler_core::JobStore::release_jobs), and
    /// [`JobStore::release_jobs_recorded`](apscheduler_core::JobStore::release_jobs_recorded):
    /// the history's record script and the release script in one pipeline (one round
    /// trip). The release script applies only when the records exist: should the
    /// first script not run (not loaded on this server), the records are written
    /// first, then the release, each in a round trip of its own. The release publishes
    /// the change (when some scheduler waits for a release) and reads the next run
    /// time in the same script.
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
        // On one server the history's keys share the script's node, so the release
        // can require the records written just before it; a cluster's history lives
        // in another slot, so there the records go first, in a round trip of their own.
        let call = if self.conn.is_cluster() {
            None
        } else {
            self.history.record_call(records)
        };
        if call.is_none() && !records.is_empty() {
            self.history.record(records).await?;
        }
        let required: &[String] = call.as_ref().map_or(&[], |(_, keys)| keys);
        let channel = self.changes_channel();
        let groups = self.parts.group(entries, |(id, _)| &***id);
        let invocations: Vec<_> = groups
            .iter()
            .map(|(part, group)| {
                let mut invocation = self.invocation(*part, &SCRIPTS.release);
                invocation
                    .key(&self.parts.get(*part).waiters)
                    .arg(scheduler_id)
                    .arg(&channel)
                    .arg(&**self.changes.token())
                    .arg(required.len());
                for key in required {
                    invocation.arg(key);
                }
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
                (*part, group.len(), invocation)
            })
            .collect();
        let replies: Vec<(usize, usize, ReleaseReply)> = match (&call, &invocations[..]) {
            (Some((record, _)), [(part, sent, invocation)]) => {
                let mut pipe = redis::pipe();
                pipe.invoke_script(record)
                    .ignore()
                    .invoke_script(invocation);
                let reply = match self
                    .pipeline::<(ReleaseReply,)>("record runs and release jobs", &pipe)
                    .await
                {
                    Ok((reply,)) if reply.is_some() => reply,
                    // A script not loaded here (a restarted or new primary): nothing was
                    // released. Records first, then the release, each loading its script.
                    Ok(_) => {
                        self.history.record(records).await?;
                        self.invoke("release jobs", invocation).await?
                    }
                    Err(e) if e.is_no_script() => {
                        self.history.record(records).await?;
                        self.invoke("release jobs", invocation).await?
                    }
                    Err(e) => return Err(e.into()),
                };
                vec![(*part, *sent, reply)]
            }
            _ => {
                let calls = invocations
                    .iter()
                    .map(|(part, sent, invocation)| async move {
                        let reply: ReleaseReply = self.invoke("release jobs", invocation).await?;
                        Ok::<_, StoreError>((*part, *sent, reply))
                    });
                futures_util::future::try_join_all(calls).await?
            }
        };
        let mut lost = Vec::new();
        let mut applied = Vec::new();
        let mut next = None;
        let whole = replies.len() == 1 && !self.conn.is_cluster();
        for (part, sent, reply) in replies {
            let Some((part_lost, due, claimed)) = reply else {
                return Err(StoreError::Reply {
                    what: "release jobs",
                    detail: "the release found its run records missing".to_owned(),
                }
                .into());
            };
            if part_lost.len() < sent {
                applied.push(part);
            }
            // The next run time the script read is the store's only when the store is
            // one partition (a cluster's others were not read).
            if whole {
                next = match (reply_score(&due)?, reply_score(&claimed)?) {
                    (Some(a), Some(b)) => Some(Some(a.min(b))),
                    (a, b) => Some(a.or(b)),
                };
            }
            lost.extend(part_lost);
        }
        // Not confirmed: the scheduler starts none of these fire times and retries the
        // release, which then finds the leases gone (applied here) or applies them (on
        // a new primary that never had them).
        if !applied.is_empty() {
            self.replicated(&applied, "release jobs").await?;
        }
        let lost = lost.into_iter().map(Arc::from).collect();
        let released = Released::new(lost, refused);
        Ok(match next {
            Some(next) => released.with_next_run_time(next.map(from_micros)),
            None => released,
        })
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

/// The release script's reply: `None` when its run records were missing.
type ReleaseReply = Option<(Vec<String>, String, String)>;

/// A score the release script read (`''`: the set was empty), in microseconds.
fn reply_score(text: &str) -> Result<Option<i64>, StoreError> {
    if text.is_empty() {
        return Ok(None);
    }
    let value: f64 = text.parse().map_err(|_| StoreError::Reply {
        what: "release jobs",
        detail: format!("score {text:?}"),
    })?;
    Ok(Some(value.round() as i64))
}

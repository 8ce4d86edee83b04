//! [`MemoryJobStore`]'s [`JobStore`] implementation: each operation takes the state's
//! lock once and works on its indexes.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{async_trait, Acquired, Error, Job, JobRelease, JobStore, Released};
use chrono::{DateTime, Utc};

use crate::state::{
    expiry, from_micros, insert_sorted, micros, run_time, Key, Lease, Micros, State,
};
use crate::MemoryJobStore;

/// Up to this many due jobs are taken from the index one by one (no tree split, which
/// allocates); more are split off in one go.
const FEW_DUE: usize = 16;

#[async_trait]
impl JobStore for MemoryJobStore {
    fn runs(&self) -> Option<&dyn apscheduler_core::RunStore> {
        Some(self)
    }

    fn run_history(&self) -> Option<Arc<dyn apscheduler_core::RunHistory>> {
        Some(self.history.clone())
    }

    fn is_persistent(&self) -> bool {
        false
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        self.state.lock().add(job, replace_existing)
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        let mut state = self.state.lock();
        if !replace_existing {
            let mut batch = HashSet::with_capacity(jobs.len());
            for job in &jobs {
                if state.jobs.contains(&job.id) || !batch.insert(&*job.id) {
                    return Err(Error::conflict(&job.id));
                }
            }
        }
        state.jobs.reserve(jobs.len());
        for job in jobs {
            state.add(job, replace_existing)?;
        }
        Ok(())
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        self.state.lock().replace(job)
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        let removed = self.state.lock().remove(id);
        match removed {
            Some(_) => Ok(()),
            None => Err(Error::job_not_found(id)),
        }
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        let old = std::mem::take(&mut *self.state.lock());
        // Free the jobs outside the lock.
        drop(old);
        Ok(())
    }

    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        Ok(self.state.lock().jobs.get(id).map(|s| (*s.0).clone()))
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        let mut jobs: Vec<(Option<Micros>, Job)> = self
            .state
            .lock()
            .jobs
            .iter()
            .map(|s| (s.0.next_run_time.as_ref().map(micros), (*s.0).clone()))
            .collect();
        // Paused jobs (`None`) sort after every run time.
        jobs.sort_unstable_by(|(a, ja), (b, jb)| {
            (a.is_none(), a, &ja.id).cmp(&(b.is_none(), b, &jb.id))
        });
        Ok(jobs.into_iter().map(|(_, job)| job).collect())
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let state = self.state.lock();
        let due = state
            .index
            .due
            .first()
            .and_then(|(_, id)| state.run_time(id));
        // A leased job is claimable again at its key: the later of its run time and its
        // lease's expiry. Report the exact run time when that is the later one.
        let leased = state
            .index
            .leased
            .first()
            .map(|(at, id)| match state.run_time(id) {
                Some(t) if micros(&t) >= *at => t,
                _ => from_micros(*at),
            });
        Ok(match (due, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        let now_us = micros(&now);
        let expires = expiry(&now, lease);
        let mut state = self.state.lock();
        state.reap_expired(now_us);
        let State {
            jobs,
            leases,
            index,
            holder: last_holder,
            ..
        } = &mut *state;

        // The keys of earlier microseconds than `now` are due. A few are taken key by
        // key; a long prefix of the index (a burst) is detached in one split instead.
        let due = index
            .due
            .iter()
            .take(limit)
            .take_while(|key| key.0 < now_us)
            .count();
        let mut claimed: Vec<Key> = if due <= FEW_DUE {
            (0..due).filter_map(|_| index.due.pop_first()).collect()
        } else {
            let rest = match index.due.iter().nth(due).cloned() {
                Some(key) => index.due.split_off(&key),
                None => BTreeSet::new(),
            };
            std::mem::replace(&mut index.due, rest)
                .into_iter()
                .collect()
        };
        // In the same microsecond as `now`: compare the exact instants, key by key.
        if claimed.len() < limit {
            let same: Vec<Key> = index
                .due
                .iter()
                .take_while(|key| key.0 == now_us)
                .filter(|key| matches!(run_time(jobs, &key.1), Some(t) if t <= now))
                .take(limit - claimed.len())
                .cloned()
                .collect();
            for key in same {
                index.due.remove(&key);
                claimed.push(key);
            }
        }

        if claimed.is_empty() {
            return Ok(Acquired::default());
        }
        let holder = match last_holder {
            Some(h) if &**h == scheduler_id => h.clone(),
            _ => last_holder.insert(Arc::from(scheduler_id)).clone(),
        };
        let mut acquired = Vec::with_capacity(claimed.len());
        // A claimed job is due (`run <= now < expires`), so it becomes claimable again
        // when its lease expires: every new key has the same instant, `expires`.
        let mut leased_keys = Vec::with_capacity(claimed.len());
        for (_, id) in claimed {
            let Some(stored) = jobs.get(&id) else {
                continue;
            };
            acquired.push((*stored.0).clone());
            leases.insert(
                id.clone(),
                Lease {
                    holder: holder.clone(),
                    expires,
                },
            );
            leased_keys.push((expires, id));
        }
        insert_sorted(&mut index.leased, leased_keys);
        Ok(Acquired {
            jobs: acquired,
            corrupt: Vec::new(),
        })
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        let now_us = micros(&now);
        let expires = expiry(&now, lease);
        let mut state = self.state.lock();
        let State {
            jobs,
            leases,
            index,
            ..
        } = &mut *state;
        let mut lost: Vec<&str> = Vec::new();
        for id in ids {
            let held = leases
                .get_mut(&**id)
                .filter(|l| &*l.holder == scheduler_id && l.is_live(now_us));
            let (Some(held), Some(stored)) = (held, jobs.get(id)) else {
                lost.push(id);
                continue;
            };
            index.unlink(&stored.0, Some(held));
            held.expires = expires;
            index.link(&stored.0, Some(held));
        }
        if lost.is_empty() {
            Ok(())
        } else {
            Err(Error::lease_lost(scheduler_id, &lost))
        }
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        let mut state = self.state.lock();
        // A release that covers a good part of the claimed jobs (a whole claim batch,
        // the usual case) drops their keys from the lease index in one pass at the end
        // instead of one tree removal each.
        let sweep = releases.len() >= 64 && releases.len() * 4 >= state.index.leased.len();
        let mut lost = Vec::new();
        let mut relinked: Vec<Key> = Vec::with_capacity(releases.len());
        for release in releases {
            match state.release_one(scheduler_id, release, sweep) {
                Ok(Some(key)) => relinked.push(key),
                Ok(None) => {}
                Err(id) => lost.push(id),
            }
        }
        let State {
            jobs,
            leases,
            index,
            ..
        } = &mut *state;
        if sweep {
            index.leased.retain(|(_, id)| leases.contains_key(id));
        }
        relinked.sort_unstable();
        relinked.dedup();
        // Keep only the keys of each job's final state (a batch may name a job twice).
        relinked.retain(|(at, id)| {
            !leases.contains_key(id)
                && jobs
                    .get(id)
                    .and_then(|s| s.0.next_run_time.as_ref())
                    .is_some_and(|t| micros(t) == *at)
        });
        insert_sorted(&mut index.due, relinked);
        Ok(Released::new(lost, Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};

    fn job(id: &str, t: i64) -> Job {
        sample_job(id, Some(at(t)), interval_trigger(60))
    }

    async fn claim(store: &MemoryJobStore, who: &str, now: i64, lease: Duration) -> Vec<String> {
        let acquired = store
            .acquire_due_jobs(who, utc(now), 10, lease)
            .await
            .unwrap();
        acquired.jobs.iter().map(|j| j.id.to_string()).collect()
    }

    #[tokio::test]
    async fn next_run_time_reports_when_a_dead_holders_lease_runs_out() {
        let store = MemoryJobStore::new();
        store.add_job(job("a", 0), false).await.unwrap();
        assert_eq!(
            claim(&store, "s1", 10, Duration::from_secs(30)).await,
            ["a"]
        );
        // s1 dies: the job becomes claimable when the lease expires.
        assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(40)));
        assert!(claim(&store, "s2", 39, LEASE).await.is_empty());
        assert_eq!(claim(&store, "s2", 40, LEASE).await, ["a"]);
        assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(100)));
    }

    #[tokio::test]
    async fn update_of_a_claimed_job_keeps_its_lease() {
        let store = MemoryJobStore::new();
        store.add_job(job("a", 0), false).await.unwrap();
        assert_eq!(claim(&store, "s1", 0, LEASE).await, ["a"]);
        // Rescheduled while claimed to a time before the lease ends: still not claimable.
        store.update_job(job("a", 5)).await.unwrap();
        assert!(claim(&store, "s2", 10, LEASE).await.is_empty());
        assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(60)));
        // Rescheduled past the lease's end: reported (and claimable) at its run time.
        store.update_job(job("a", 90)).await.unwrap();
        assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(90)));
        assert_eq!(claim(&store, "s2", 90, LEASE).await, ["a"]);
    }

    #[tokio::test]
    async fn due_check_is_exact_below_the_microsecond() {
        let store = MemoryJobStore::new();
        let t = at(1) + chrono::Duration::nanoseconds(500);
        store
            .add_job(sample_job("a", Some(t), interval_trigger(60)), false)
            .await
            .unwrap();
        let now = utc(1);
        let early = store.acquire_due_jobs("s1", now, 10, LEASE).await.unwrap();
        assert!(early.jobs.is_empty(), "due 500 ns after now");
        let now = now + chrono::Duration::nanoseconds(500);
        let due = store.acquire_due_jobs("s1", now, 10, LEASE).await.unwrap();
        assert_eq!(due.jobs.len(), 1);
        assert_eq!(due.jobs[0].next_run_time, Some(t));
    }

    #[tokio::test]
    async fn extend_keeps_the_leases_still_held() {
        let store = MemoryJobStore::new();
        store.add_job(job("a", 0), false).await.unwrap();
        store.add_job(job("b", 0), false).await.unwrap();
        assert_eq!(
            claim(&store, "s1", 0, Duration::from_secs(5)).await,
            ["a", "b"]
        );
        let ids: [Arc<str>; 3] = ["a".into(), "ghost".into(), "b".into()];
        let err = store
            .extend_leases("s1", &ids, utc(1), LEASE)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), apscheduler_core::ErrorKind::LeaseLost);
        assert!(err.message().contains("ghost"), "{err}");
        assert!(!err.message().contains("a,"), "{err}");
        // a and b were extended to 61 s.
        assert!(claim(&store, "s2", 30, LEASE).await.is_empty());
        assert_eq!(claim(&store, "s2", 61, LEASE).await, ["a", "b"]);
    }

    /// Checks the invariants of [`State`]: each scheduled job has exactly one key, in the
    /// index its lease says, and no key names a missing job.
    fn check_invariants(store: &MemoryJobStore) {
        let state = store.state.lock();
        let mut keys = 0;
        for stored in state.jobs.iter() {
            let job = &stored.0;
            let Some(t) = job.next_run_time.as_ref() else {
                continue;
            };
            keys += 1;
            let run = micros(t);
            match state.leases.get(&*job.id) {
                Some(lease) => assert!(
                    state
                        .index
                        .leased
                        .contains(&(run.max(lease.expires), job.id.clone())),
                    "leased key of {}",
                    job.id
                ),
                None => assert!(
                    state.index.due.contains(&(run, job.id.clone())),
                    "due key of {}",
                    job.id
                ),
            }
        }
        assert_eq!(state.index.due.len() + state.index.leased.len(), keys);
        for id in state.leases.keys() {
            assert!(state.jobs.contains(id), "lease of missing job {id}");
        }
    }

    #[tokio::test]
    async fn indexes_stay_consistent_under_random_batches() {
        // A fixed linear congruential sequence: the same operations on every run.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n.max(1)
        };
        let store = MemoryJobStore::new();
        let mut claimed: Vec<(String, Job)> = Vec::new();
        let mut now = 0i64;
        for step in 0..800 {
            match next(10) {
                0 | 1 => {
                    let batch: Vec<Job> = (0..next(150))
                        .map(|k| job(&format!("j{step}-{k}"), now + next(20) as i64))
                        .collect();
                    store.add_jobs(batch, false).await.unwrap();
                }
                2..=4 => {
                    now += next(15) as i64;
                    let who = if next(4) == 0 { "s2" } else { "s1" };
                    let lease = Duration::from_secs(next(40));
                    let got = store
                        .acquire_due_jobs(who, utc(now), next(300) as usize + 1, lease)
                        .await
                        .unwrap();
                    claimed.extend(got.jobs.into_iter().map(|j| (who.to_owned(), j)));
                }
                5..=7 if !claimed.is_empty() => {
                    // Release a batch, sometimes naming a job twice.
                    let take = (next(claimed.len() as u64) as usize + 1).min(claimed.len());
                    let who = claimed[0].0.clone();
                    let mut releases = Vec::new();
                    for (holder, mut job) in claimed.drain(..take) {
                        if holder != who {
                            continue;
                        }
                        let twice = next(20) == 0;
                        let release = match next(4) {
                            0 => JobRelease::Remove(job.id.clone()),
                            1 => {
                                job.next_run_time = None;
                                JobRelease::Update(job)
                            }
                            _ => {
                                job.next_run_time = Some(at(now + next(30) as i64));
                                JobRelease::Update(job)
                            }
                        };
                        if twice {
                            // An earlier release of the same job, with another state.
                            let earlier = match &release {
                                JobRelease::Update(j) if j.next_run_time.is_some() => {
                                    let mut j = j.clone();
                                    j.next_run_time = Some(at(now + 100));
                                    JobRelease::Update(j)
                                }
                                other => other.clone(),
                            };
                            releases.push(earlier);
                        }
                        releases.push(release);
                    }
                    store.release_jobs(&who, releases).await.unwrap();
                }
                8 => {
                    let all = store.get_all_jobs().await.unwrap();
                    if !all.is_empty() {
                        let pick = &all[next(all.len() as u64) as usize];
                        if next(2) == 0 {
                            store.remove_job(&pick.id).await.unwrap();
                        } else {
                            let mut changed = pick.clone();
                            changed.next_run_time = Some(at(now + next(50) as i64));
                            store.update_job(changed).await.unwrap();
                        }
                    }
                }
                _ => {
                    let ids: Vec<Arc<str>> = claimed.iter().map(|(_, j)| j.id.clone()).collect();
                    let _ = store
                        .extend_leases("s1", &ids, utc(now), Duration::from_secs(next(40)))
                        .await;
                }
            }
            check_invariants(&store);
        }
        assert!(!store.is_empty());
    }

    #[tokio::test]
    async fn messages_and_bookkeeping() {
        let store = MemoryJobStore::with_capacity(4);
        assert!(store.is_empty());
        store.add_job(job("a", 0), false).await.unwrap();
        let err = store.add_job(job("a", 0), false).await.unwrap_err();
        assert_eq!(
            err.message(),
            "Job identifier (a) conflicts with an existing job"
        );
        let err = store.remove_job("x").await.unwrap_err();
        assert_eq!(err.message(), "No job by the id of x was found");
        assert_eq!(claim(&store, "s1", 0, LEASE).await, ["a"]);
        assert_eq!(
            format!("{store:?}"),
            "MemoryJobStore { jobs: 1, claimed: 1 }"
        );
        store.remove_job("a").await.unwrap();
        assert_eq!(store.len(), 0);
        assert_eq!(
            format!("{store:?}"),
            "MemoryJobStore { jobs: 0, claimed: 0 }"
        );
        let state = store.state.lock();
        assert!(state.index.due.is_empty() && state.index.leased.is_empty());
    }
}

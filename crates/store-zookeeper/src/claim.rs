//! Claims: leasing due jobs with versioned writes, setting unreadable ones aside,
//! extending and releasing leases.

use super::*;

impl ZooKeeperJobStore {
    pub(crate) fn held_ids(&self, scheduler: &str) -> Vec<String> {
        let held = self.held.lock().expect("held lock");
        held.get(scheduler)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn mark_held(&self, scheduler: &str, ids: impl IntoIterator<Item = String>) {
        let mut held = self.held.lock().expect("held lock");
        held.entry(scheduler.to_owned()).or_default().extend(ids);
    }

    pub(crate) fn unmark_held(&self, scheduler: &str, ids: &[&str]) {
        let mut held = self.held.lock().expect("held lock");
        if let Some(set) = held.get_mut(scheduler) {
            for id in ids {
                set.remove(*id);
            }
            if set.is_empty() {
                held.remove(scheduler);
            }
        }
    }

    /// Tries to claim (or set aside, when its state cannot be read) one due job: due by
    /// the caller's `now`, with no live lease by the server's `clock` (both UTC
    /// microseconds).
    pub(crate) async fn claim_one(
        &self,
        c: &Client,
        scheduler: &str,
        (now, clock): (i64, i64),
        expires: i64,
        (id, version, record): (String, i32, Record),
    ) -> Result<Option<Result<Job, CorruptJob>>, Error> {
        let h = &record.header;
        let Some(next) = h.next else { return Ok(None) };
        let mine = h.owner.as_deref() == Some(scheduler);
        let claimable = h.corrupt.is_none()
            && next <= now
            && (mine || h.expires.is_none_or(|e| e <= clock) || h.owner.is_none());
        if !claimable {
            return Ok(None);
        }
        // Lease it, or mark it corrupt (which takes it out of the index).
        let (header, outcome) = match self.decode_job(&id, &record.state) {
            Ok(job) => (
                Header {
                    owner: Some(scheduler.to_owned()),
                    expires: Some(expires),
                    ..h.clone()
                },
                Ok(job),
            ),
            Err(why) => (
                Header {
                    corrupt: Some(why.clone()),
                    ..h.clone()
                },
                Err(why),
            ),
        };
        let ops = self.rewrite(
            &id,
            version,
            h,
            &Record {
                header,
                state: record.state.clone(),
            },
        );
        match self.commit(c, &ops).await {
            Ok(_) => Ok(Some(outcome.map_err(|why| {
                log_warn!(
                    "ZooKeeper job store: job '{id}' cannot be read and is set aside \
                     (kept under {}): {why}",
                    self.layout.job(&id)
                );
                CorruptJob {
                    id: id.clone(),
                    error: why,
                }
            }))),
            Err(Failed::Op { .. }) => Ok(None), // another claimer or writer won
            Err(Failed::Call(e)) => Err(e),
        }
    }

    /// Sets aside a job whose header cannot be read: its bytes are kept after a header
    /// that marks it; the index entry that led here is dropped.
    pub(crate) async fn set_aside_unreadable(
        &self,
        c: &Client,
        id: &str,
        version: i32,
        key: i64,
        unreadable: Unreadable,
    ) -> Result<bool, Error> {
        let record = Record {
            header: Header {
                corrupt: Some(unreadable.why),
                ..Header::default()
            },
            state: unreadable.raw,
        };
        let ops = [
            Op::Set {
                path: self.layout.job(id),
                data: record.encode(),
                version,
            },
            Op::Delete {
                path: self.layout.entry(key, id),
                version: None,
            },
        ];
        match self.commit(c, &ops).await {
            Ok(_) => Ok(true),
            Err(Failed::Op { .. }) => Ok(false),
            Err(Failed::Call(e)) => Err(e),
        }
    }

    /// Drops an index entry whose job is gone.
    pub(crate) async fn drop_entry(&self, c: &Client, e: &Entry) -> Result<(), Error> {
        match c.delete(&self.layout.entry(e.key, &e.id), None).await {
            Ok(()) | Err(ZkError::NoNode) => Ok(()),
            Err(err) => Err(zk("drop a stale index entry", err)),
        }
    }

    pub(crate) async fn acquire(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        let c = self.client().await?;
        let now_us = micros::now(&now);
        // The server's time, read once, when there is something to claim.
        let mut clock: Option<i64> = None;
        let mut acquired = Acquired::default();
        let mut tried: HashSet<String> = HashSet::new();
        // The caller's own stranded leases first (see the JobStore contract).
        let mut candidates: Vec<(String, Option<i64>)> = self
            .held_ids(scheduler_id)
            .into_iter()
            .map(|id| (id, None))
            .collect();
        // A few rounds: candidates lost to another claimer make room for later ones.
        for _round in 0..4 {
            let want = limit.saturating_sub(acquired.jobs.len());
            if want == 0 {
                break;
            }
            for e in self.scan(&c, Some(now_us), want + tried.len()).await? {
                if !tried.contains(&e.id) && candidates.len() < want + 64 {
                    candidates.push((e.id, Some(e.key)));
                }
            }
            candidates.retain(|(id, _)| tried.insert(id.clone()));
            if candidates.is_empty() {
                break;
            }
            let keys: HashMap<String, Option<i64>> = candidates.drain(..).collect();
            let ids: Vec<String> = keys.keys().cloned().collect();
            let reads = self.read_many(&c, &ids).await?;
            let mut stale: Vec<Entry> = Vec::new();
            let mut unreadable = Vec::new();
            let mut due = Vec::new();
            let found: HashSet<&str> = reads.iter().map(|r| r.id.as_str()).collect();
            for (id, key) in &keys {
                if let (false, Some(key)) = (found.contains(id.as_str()), key) {
                    stale.push(Entry {
                        key: *key,
                        id: id.clone(),
                    }); // the job is gone
                }
            }
            for read in reads {
                let key = keys.get(&read.id).copied().flatten();
                match read.record {
                    Err(damaged) => {
                        if let Some(key) = key {
                            unreadable.push((read.id, read.version, key, damaged));
                        }
                    }
                    // A held mark of a job since released (by a run step, or by
                    // another scheduler's claim after its lease ran out) and not due:
                    // not a candidate (it would take a due job's place).
                    Ok(record)
                        if key.is_none() && record.header.next.is_none_or(|n| n > now_us) => {}
                    // An entry that does not match its job's header was left behind.
                    Ok(record) if key.is_some() && record.header.due_key() != key => {
                        stale.push(Entry {
                            key: key.expect("checked"),
                            id: read.id,
                        });
                    }
                    Ok(record) => due.push((read.id, read.version, record)),
                }
            }
            for dropped in join_all(stale.iter().map(|e| self.drop_entry(&c, e))).await {
                dropped?;
            }
            // Past the limit, the earliest run times win.
            due.sort_by(|a, b| (a.2.header.next, &a.0).cmp(&(b.2.header.next, &b.0)));
            due.truncate(want);
            let attempted = due.len();
            let clock = match (clock, attempted) {
                (_, 0) => now_us, // nothing to claim: no lease is judged
                (Some(t), _) => t,
                (None, _) => *clock.insert(self.server_time(&c).await?),
            };
            let expires = clock.saturating_add(micros::lease_length(lease));
            self.mark_held(scheduler_id, due.iter().map(|d| d.0.clone()));
            let outcomes = join_all(
                due.into_iter()
                    .map(|d| self.claim_one(&c, scheduler_id, (now_us, clock), expires, d)),
            )
            .await;
            let mut won = 0;
            for outcome in outcomes {
                match outcome? {
                    Some(Ok(job)) => {
                        won += 1;
                        acquired.jobs.push(job);
                    }
                    Some(Err(corrupt)) => {
                        won += 1;
                        acquired.corrupt.push(corrupt);
                    }
                    None => {}
                }
            }
            for (id, version, key, damaged) in unreadable {
                let why = damaged.why.clone();
                if self
                    .set_aside_unreadable(&c, &id, version, key, damaged)
                    .await?
                {
                    log_warn!(
                        "ZooKeeper job store: job '{id}' cannot be read and is set aside: {why}"
                    );
                    acquired.corrupt.push(CorruptJob { id, error: why });
                }
            }
            if won == attempted {
                break;
            }
        }
        // Keep held marks only for the jobs this claim holds now.
        {
            let claimed: HashSet<&str> = acquired.jobs.iter().map(|j| &*j.id).collect();
            let mut held = self.held.lock().expect("held lock");
            if let Some(set) = held.get_mut(scheduler_id) {
                set.retain(|id| claimed.contains(id.as_str()) || !tried.contains(id));
                if set.is_empty() {
                    held.remove(scheduler_id);
                }
            }
        }
        acquired.jobs.sort_by(|a, b| {
            let key = |j: &Job| j.next_run_time.as_ref().map(micros::run_time);
            key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
        });
        Ok(acquired)
    }

    pub(crate) async fn extend(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        _now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        let c = self.client().await?;
        // The lease runs on the server's clock; the caller's `now` plays no part.
        let clock = self.server_time(&c).await?;
        let expires = clock.saturating_add(micros::lease_length(lease));
        let extend = |id: Arc<str>| {
            let c = &c;
            async move {
                self.read_modify_write(c, &id, "extend a lease", |read| {
                    let Some(Read {
                        record: Ok(record),
                        version,
                        ..
                    }) = read
                    else {
                        return Ok(Step::Done(false));
                    };
                    if !record.header.held_by(scheduler_id, clock) {
                        return Ok(Step::Done(false));
                    }
                    let extended = Record {
                        header: Header {
                            expires: Some(expires),
                            ..record.header.clone()
                        },
                        state: record.state,
                    };
                    let ops = self.rewrite(&id, version, &record.header, &extended);
                    Ok(Step::Write(ops, true))
                })
                .await
            }
        };
        let mut lost = Vec::new();
        for chunk in ids.chunks(BURST) {
            let done = join_all(chunk.iter().cloned().map(extend)).await;
            for (id, held) in chunk.iter().zip(done) {
                if !held? {
                    lost.push(&**id);
                }
            }
        }
        if lost.is_empty() {
            Ok(())
        } else {
            Err(Error::lease_lost(scheduler_id, &lost))
        }
    }

    pub(crate) async fn release(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<apscheduler_core::Released, Error> {
        let c = self.client().await?;
        // Whether it was applied; `Err` for a state that cannot be stored.
        let release = |r: &JobRelease| {
            let c = &c;
            let (id, new) = match r {
                JobRelease::Update(job) => (job.id.clone(), Some(self.encode(job))),
                JobRelease::Remove(id) => (id.clone(), None),
            };
            async move {
                let new = match new.transpose() {
                    Ok(new) => new,
                    Err(e) => return (id, Err(e)),
                };
                let applied = self
                    .read_modify_write_at(c, &id, "release a job", |read| {
                        let Some(Read {
                            record: Ok(old),
                            version,
                            ..
                        }) = read
                        else {
                            return Ok(Step::Done(false)); // gone (or unreadable)
                        };
                        if old.header.owner.as_deref() != Some(scheduler_id) {
                            return Ok(Step::Done(false)); // lost the lease: the new holder's claim stands
                        }
                        let ops = match &new {
                            Some(record) => self.rewrite(&id, version, &old.header, record),
                            None => self.deletion(&id, version, Some(&old.header)),
                        };
                        Ok(Step::Write(ops, true))
                    })
                    .await;
                (id, Ok(applied))
            }
        };
        let ids: Vec<&str> = releases
            .iter()
            .map(|r| match r {
                JobRelease::Update(job) => &*job.id,
                JobRelease::Remove(id) => &**id,
            })
            .collect();
        let (mut lost, mut refused) = (Vec::new(), Vec::new());
        // Whether a release applied, and the latest server time its writes gave.
        let mut wrote: Option<Option<i64>> = None;
        for chunk in releases.chunks(BURST) {
            for (id, done) in join_all(chunk.iter().map(release)).await {
                match done {
                    Ok(applied) => match applied? {
                        (true, at) => wrote = Some(wrote.flatten().max(at)),
                        (false, _) => lost.push(id),
                    },
                    Err(e) => refused.push((id, e)),
                }
            }
        }
        self.unmark_held(scheduler_id, &ids);
        if let Some(at) = wrote {
            // Removals alone give no server time: this node's clock stands in.
            let now = at.unwrap_or_else(|| micros::now(&Utc::now()));
            self.wake_waiters(&c, now).await;
        }
        Ok(apscheduler_core::Released::new(lost, refused))
    }
}

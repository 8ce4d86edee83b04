//! [`JobStore`] for [`MongoDbJobStore`]: the operations a scheduler calls.

use super::*;

#[async_trait]
impl JobStore for MongoDbJobStore {
    /// Connects (creating the client from the connection string), checks that the
    /// server answers and creates the indexes (idempotent). Calling it again is a
    /// no-op while connected. With a change listener set (and a tokio runtime), also
    /// opens a change stream on the jobs collection, on a task of its own that opens
    /// it again whenever it ends (see [`set_change_listener`](JobStore::set_change_listener)).
    async fn start(&self, _alias: &str) -> Result<(), Error> {
        self.conn().await?;
        if let (Some(listener), Ok(runtime)) = (
            self.changes.listener(),
            tokio::runtime::Handle::try_current(),
        ) {
            self.changes.stop().await;
            let jobs = runtime.spawn(changes::watch_loop(
                self.link.clone(),
                changes::JobChanges {
                    listener: listener.clone(),
                    streaming: self.streaming.clone(),
                },
            ));
            let waits = runtime.spawn(changes::watch_loop(
                self.link.clone(),
                waits::WaitChanges {
                    waits: self.waits.clone(),
                    listener,
                },
            ));
            let streaming = self.streaming.clone();
            self.changes.listening(Box::new(move || {
                jobs.abort();
                waits.abort();
                streaming.store(false, Ordering::SeqCst);
                Box::pin(async {})
            }));
        }
        Ok(())
    }

    /// Heard through a change stream on the jobs collection, from
    /// [`start`](JobStore::start) on, where the server offers change streams (a replica
    /// set): every job added, replaced, changed (run time or state) or removed, by any
    /// process, this store included, calls it; claims and lease extensions do not, and
    /// a release does only while this store waits for it (its next wake-up was the
    /// end of that lease; the wait is recorded in `<collection>_waiters`). It is called too each time the stream opens or ends. While
    /// no stream is open, [`capabilities`](JobStore::capabilities) says so and the
    /// scheduler looks every `change_poll` instead.
    fn set_change_listener(&self, listener: apscheduler_core::ChangeListener) {
        self.changes.set_listener(listener);
    }

    /// Stops the change stream and forgets the client, shutting it down when the store
    /// created it.
    async fn shutdown(&self) -> Result<(), Error> {
        let conn = self.link.conn.lock().clone();
        if let Some(conn) = conn {
            self.waits.stop_waiting(&conn).await;
        }
        self.changes.stop().await;
        let _connecting = self.link.connecting.lock().await;
        let conn = self.link.conn.lock().take();
        if let (Some(conn), Source::Url(_)) = (conn, &self.link.source) {
            conn.client.shutdown().immediate(true).await;
        }
        Ok(())
    }

    /// A [`MongoDbRunHistory`] in the collection `<collection>_runs`, sharing this
    /// store's client (see [`MongoDbJobStore::history`]).
    fn runs(&self) -> Option<&dyn apscheduler_core::RunStore> {
        Some(self)
    }

    fn run_history(&self) -> Option<Arc<dyn apscheduler_core::RunHistory>> {
        Some(Arc::new(self.history()))
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn capabilities(&self) -> apscheduler_core::Capabilities {
        let mut caps = apscheduler_core::Capabilities::persistent_shared(false);
        caps.store_clock = true;
        caps.notifications = self.streaming.load(Ordering::SeqCst);
        caps
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        let encoded = self.encode(&job)?;
        let conn = self.conn().await?;
        if replace_existing {
            return self.upsert(&conn, &encoded).await;
        }
        match conn.jobs.insert_one(encoded.document()).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(self.conflict(&job.id, Some(e))),
            Err(e) => Err(self.fail(format!("insert of job '{}'", job.id), e)),
        }
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        if jobs.is_empty() {
            return Ok(());
        }
        let encoded = jobs
            .iter()
            .map(|job| self.encode(job))
            .collect::<Result<Vec<_>, _>>()?;

        if replace_existing {
            // A repeated id keeps its last job, as if added one by one.
            let mut seen = HashSet::with_capacity(encoded.len());
            let mut unique: Vec<&Encoded> = encoded
                .iter()
                .rev()
                .filter(|e| seen.insert(&*e.id))
                .collect();
            unique.reverse();
            let statements = unique
                .iter()
                .map(|e| {
                    let statement = doc! {
                        "q": {field::ID: &*e.id},
                        "u": {"$set": e.set_state(), "$unset": {field::CORRUPT: ""}},
                        "upsert": true,
                    };
                    (statement, e.size)
                })
                .collect();
            let conn = self.conn().await?;
            let failures = self
                .write_command(&conn, "update", "updates", statements, "add_jobs (replace)")
                .await?
                .failures;
            for (index, code, message) in failures {
                match unique.get(index) {
                    // Raced with another insert of the same new id: update it.
                    Some(job) if code == DUPLICATE_KEY => self.upsert(&conn, job).await?,
                    _ => return Err(self.write_error("add_jobs (replace)", code, message)),
                }
            }
            return Ok(());
        }

        let mut seen = HashSet::with_capacity(encoded.len());
        if let Some(repeated) = encoded.iter().find(|e| !seen.insert(&*e.id)) {
            return Err(self.conflict(&repeated.id, None));
        }
        let conn = self.conn().await?;
        let result = conn
            .jobs
            .insert_many(encoded.iter().map(Encoded::document))
            .ordered(true)
            .await;
        let Err(e) = result else {
            return Ok(());
        };
        let stopped_at = match &*e.kind {
            DriverKind::InsertMany(failure) => {
                failure.write_errors.iter().flatten().map(|w| w.index).min()
            }
            _ => None,
        };
        let Some(stopped_at) = stopped_at.filter(|i| *i < encoded.len()) else {
            return Err(self.fail("add_jobs", e));
        };
        // Ordered: exactly the jobs before the failed one were inserted by this call.
        let inserted: Vec<&str> = encoded[..stopped_at].iter().map(|e| &*e.id).collect();
        for chunk in inserted.chunks(IDS_PER_QUERY) {
            let undo = conn
                .jobs
                .delete_many(doc! {field::ID: {"$in": chunk}})
                .await;
            if let Err(undo) = undo {
                apscheduler_core::log_warn!(
                    target: "apscheduler",
                    namespace = %self.link.namespace,
                    error = %undo,
                    jobs = inserted.len(),
                    "add_jobs failed and the jobs it inserted could not be removed again"
                );
            }
        }
        if is_duplicate_key(&e) {
            Err(self.conflict(&encoded[stopped_at].id, Some(e)))
        } else {
            Err(self.fail("add_jobs", e))
        }
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        let encoded = self.encode(&job)?;
        let conn = self.conn().await?;
        let result = conn
            .jobs
            .update_one(
                doc! {field::ID: &*job.id},
                doc! {"$set": encoded.set_state(), "$unset": {field::CORRUPT: ""}},
            )
            .await
            .map_err(|e| self.fail(format!("update of job '{}'", job.id), e))?;
        if result.matched_count == 0 {
            return Err(Error::job_not_found(&job.id));
        }
        Ok(())
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        let conn = self.conn().await?;
        let result = conn
            .jobs
            .delete_one(doc! {field::ID: id})
            .await
            .map_err(|e| self.fail(format!("removal of job '{id}'"), e))?;
        if result.deleted_count == 0 {
            return Err(Error::job_not_found(id));
        }
        Ok(())
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        let conn = self.conn().await?;
        conn.jobs
            .delete_many(doc! {})
            .await
            .map_err(|e| self.fail("removal of all jobs", e))?;
        Ok(())
    }

    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        let conn = self.conn().await?;
        let found = conn
            .raw
            .find_one(doc! {field::ID: id})
            .projection(codec::projection())
            .await
            .map_err(|e| self.fail(format!("lookup of job '{id}'"), e))?;
        match found {
            None => Ok(None),
            Some(document) => codec::decode(&document, &self.codec)
                .map(Some)
                .map_err(|corrupt| (*corrupt).into_error()),
        }
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        let conn = self.conn().await?;
        let mut cursor = conn
            .raw
            .find(doc! {})
            .projection(codec::projection())
            .await
            .map_err(|e| self.fail("listing of jobs", e))?;
        let mut jobs = Vec::new();
        while cursor
            .advance()
            .await
            .map_err(|e| self.fail("listing of jobs", e))?
        {
            match codec::decode(cursor.current(), &self.codec) {
                Ok(job) => jobs.push(job),
                Err(corrupt) => apscheduler_core::log_warn!(
                    target: "apscheduler",
                    namespace = %self.link.namespace,
                    job_id = %corrupt.id,
                    error = %corrupt.error,
                    "skipping a job that cannot be read"
                ),
            }
        }
        jobs.sort_by(|a, b| {
            let key = |j: &Job| {
                (
                    j.next_run_time.is_none(),
                    j.next_run_time.as_ref().map(run_time_micros),
                )
            };
            key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
        });
        Ok(jobs)
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let conn = self.conn().await?;
        let context = "next run time";
        // Any number (type bracketing): the scheduled jobs.
        let scheduled = doc! {"$gte": i64::MIN};
        let free = conn
            .raw
            .find_one(doc! {
                field::NEXT_RUN_TIME: scheduled.clone(),
                field::CORRUPT: Bson::Null,
                field::LEASE_EXPIRES: Bson::Null,
            })
            .sort(doc! {field::NEXT_RUN_TIME: 1})
            .projection(doc! {field::NEXT_RUN_TIME: 1})
            .await
            .map_err(|e| self.fail(context, e))?
            .and_then(|d| micros_field(&d, field::NEXT_RUN_TIME));
        // A leased job becomes claimable at the later of its run time and its expiry.
        let mut cursor = conn
            .raw
            .aggregate([
                doc! {"$match": {
                    field::LEASE_EXPIRES: {"$ne": Bson::Null},
                    field::NEXT_RUN_TIME: scheduled,
                    field::CORRUPT: Bson::Null,
                }},
                doc! {"$group": {
                    "_id": Bson::Null,
                    "at": {"$min": {"$max": [
                        format!("${}", field::NEXT_RUN_TIME),
                        format!("${}", field::LEASE_EXPIRES),
                    ]}},
                }},
            ])
            .await
            .map_err(|e| self.fail(context, e))?;
        let leased = if cursor.advance().await.map_err(|e| self.fail(context, e))? {
            micros_field(cursor.current(), "at")
        } else {
            None
        };
        if let Some(leased) = leased.filter(|&l| free.is_none_or(|f| l <= f)) {
            // The next wake-up is a lease's end (or a leased job's run time): a
            // release before it should wake this scheduler.
            if leased > micros(&Utc::now()) {
                self.waits.wait_until(&conn, leased).await;
            }
        }
        Ok(match (free, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(from_micros))
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        let mut acquired = Acquired::default();
        if limit == 0 {
            return Ok(acquired);
        }
        let conn = self.conn().await?;
        let now_us = micros(&now);
        let clock = self.server_time(&conn, &now).await?;
        let claim = Claim {
            holder: scheduler_id,
            token: uuid::Uuid::new_v4().simple().to_string(),
            expires: clock.saturating_add(lease_length(lease)),
        };
        // Due by the caller's `now`, readable, and not under another scheduler's live
        // lease (none, expired by the server's clock, or the caller's own: see the
        // JobStore contract on stranded leases), and
        // not taken by an earlier round of this very claim (its jobs are the caller's own
        // now: a later round would return them twice).
        let claimable = doc! {
            field::NEXT_RUN_TIME: {"$lte": now_us},
            field::CORRUPT: Bson::Null,
            field::LEASE_TOKEN: {"$ne": &claim.token},
            "$or": [
                {field::LEASE_EXPIRES: {"$not": {"$gt": clock}}},
                {field::LEASE_HOLDER: scheduler_id},
            ],
        };
        let mut rounds = 0;
        while acquired.jobs.len() < limit && rounds < CLAIM_ROUNDS {
            rounds += 1;
            let wanted = limit - acquired.jobs.len();
            let round = self
                .claim_round(&conn, &claimable, &claim, wanted, &mut acquired)
                .await;
            match round {
                // Fewer candidates than wanted: nothing else is due.
                Ok(Round {
                    candidates,
                    claimed,
                }) if candidates < wanted && claimed == candidates => break,
                // Everything wanted was there and taken.
                Ok(Round {
                    candidates,
                    claimed,
                }) if claimed == candidates => {}
                // Other schedulers took some candidates first: look again.
                Ok(_) => {}
                Err(error) if acquired.jobs.is_empty() && acquired.corrupt.is_empty() => {
                    return Err(error)
                }
                Err(error) => {
                    // Keep what was claimed: those jobs are leased to the caller now.
                    apscheduler_core::log_warn!(
                        target: "apscheduler",
                        namespace = %self.link.namespace,
                        error = %error,
                        claimed = acquired.jobs.len(),
                        "a claim failed part way; returning the jobs claimed so far"
                    );
                    break;
                }
            }
        }
        acquired.jobs.sort_by(|a, b| {
            let key = |j: &Job| j.next_run_time.as_ref().map(run_time_micros);
            key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
        });
        Ok(acquired)
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        let mut seen = HashSet::with_capacity(ids.len());
        let unique: Vec<&str> = ids
            .iter()
            .map(|id| &**id)
            .filter(|id| seen.insert(*id))
            .collect();
        if unique.is_empty() {
            return Ok(());
        }
        let conn = self.conn().await?;
        let context = "lease extension";
        // The lease runs on the server's clock; `now` counts only where it cannot be read.
        let clock = self.server_time(&conn, &now).await?;
        let expires = clock.saturating_add(lease_length(lease));
        let mut lost: Vec<&str> = Vec::new();
        for chunk in unique.chunks(IDS_PER_QUERY) {
            let filters = chunk.iter().map(|id| {
                doc! {
                    field::ID: *id,
                    field::LEASE_HOLDER: scheduler_id,
                    field::LEASE_EXPIRES: {"$gt": clock},
                }
            });
            let update = doc! {"$set": {field::LEASE_EXPIRES: expires}};
            let matched = self.update_each(&conn, filters, &update, context).await?;
            if usize::try_from(matched).is_ok_and(|n| n == chunk.len()) {
                continue;
            }
            // Which ones are held now (extended just now, by this call or a twin)?
            let mut cursor = conn
                .raw
                .find(doc! {
                    field::ID: {"$in": chunk},
                    field::LEASE_HOLDER: scheduler_id,
                    field::LEASE_EXPIRES: expires,
                })
                .projection(doc! {field::ID: 1})
                .await
                .map_err(|e| self.fail(context, e))?;
            let mut held = HashSet::new();
            while cursor.advance().await.map_err(|e| self.fail(context, e))? {
                if let Ok(id) = cursor.current().get_str(field::ID) {
                    held.insert(id.to_owned());
                }
            }
            lost.extend(chunk.iter().filter(|id| !held.contains(**id)));
        }
        if lost.is_empty() {
            return Ok(());
        }
        Err(Error::lease_lost(scheduler_id, &lost))
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        if releases.is_empty() {
            return Ok(Released::all());
        }
        let mut updates: Vec<Encoded> = Vec::new();
        let mut removes: Vec<Arc<str>> = Vec::new();
        let mut refused = Vec::new();
        for release in releases {
            match release {
                JobRelease::Update(job) => match self.encode(&job) {
                    Ok(encoded) => updates.push(encoded),
                    Err(e) => refused.push((job.id.clone(), e)),
                },
                JobRelease::Remove(id) => removes.push(id),
            }
        }
        // A repeated id keeps its last state (the removals run after the updates).
        let mut seen = HashSet::with_capacity(updates.len());
        let mut unique: Vec<&Encoded> = updates
            .iter()
            .rev()
            .filter(|e| seen.insert(&*e.id))
            .collect();
        unique.reverse();

        let conn = self.conn().await?;
        // One conditional write per job (atomic per document, filtered on the caller's
        // lease), so that each answer says whether it was applied; a burst of them in
        // flight at once over the pool. Each update also stores this call's token: a
        // write the driver sent again after a lost reply finds the lease already gone
        // (its first attempt cleared it), and the token then tells whether that first
        // attempt applied (a server that deduplicates retried writes, as MongoDB does,
        // answers for the first attempt anyway).
        let token = uuid::Uuid::new_v4().to_string();
        let context = "release of jobs";
        let writes = unique
            .iter()
            .map(|e| (&*e.id, Some(*e)))
            .chain(removes.iter().map(|id| (&**id, None)));
        let mut lost = Vec::new();
        // Updates that matched nothing: lost, unless `token` shows they applied.
        let mut unmatched: Vec<&str> = Vec::new();
        let writes: Vec<_> = writes.collect();
        for burst in writes.chunks(RELEASE_BURST) {
            let answers = futures_util::future::join_all(burst.iter().map(|(id, update)| {
                let (conn, token) = (&conn, &token);
                async move {
                    let filter = doc! {field::ID: *id, field::LEASE_HOLDER: scheduler_id};
                    let applied = match update {
                        Some(e) => {
                            let mut set = e.set_state();
                            set.insert(field::RELEASE_TOKEN, token);
                            conn.jobs
                                .update_one(filter, doc! {"$set": set, "$unset": unset_lease(true)})
                                .await
                                .map(|r| r.matched_count > 0)
                        }
                        None => conn
                            .jobs
                            .delete_one(filter)
                            .await
                            .map(|r| r.deleted_count > 0),
                    };
                    (*id, update.is_some(), applied)
                }
            }))
            .await;
            for (id, update, applied) in answers {
                match applied {
                    Ok(true) => {}
                    Ok(false) if update => unmatched.push(id),
                    Ok(false) => lost.push(Arc::from(id)),
                    Err(e) => return Err(self.fail(context, e)),
                }
            }
        }
        if !unmatched.is_empty() {
            let applied = self
                .released_by(&conn, &unmatched, &token)
                .await
                .map_err(|e| self.fail(context, e))?;
            if !applied.is_empty() {
                tracing::info!(
                    target: "apscheduler",
                    namespace = %self.link.namespace,
                    "{} release write(s) sent again by the driver had applied at the first attempt",
                    applied.len()
                );
            }
            lost.extend(
                unmatched
                    .iter()
                    .filter(|id| !applied.contains(**id))
                    .map(|id| Arc::from(*id)),
            );
        }
        if !unique.is_empty() {
            self.waits
                .wake_waiters(&conn, micros(&Utc::now()), &self.link.namespace)
                .await;
        }
        Ok(Released::new(lost, refused))
    }
}

//! The job store's building blocks: the server's time, inserts and replacements,
//! write commands, claim rounds, corrupt marks, and finding which releases applied.

use super::*;

impl MongoDbJobStore {
    // -----------------------------------------------------------------------------
    // Connection
    // -----------------------------------------------------------------------------

    pub(crate) async fn conn(&self) -> Result<Conn, Error> {
        self.link.conn().await
    }

    // -----------------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------------

    pub(crate) fn fail(&self, context: impl Into<String>, source: DriverError) -> Error {
        fail(&self.link.namespace, context, source)
    }

    /// The server's time, UTC microseconds: `hello`'s `localTime`, from the primary.
    /// Leases are timed by it, so that node clocks do not matter; read before a claim's
    /// writes, it is never later than the server's time at them, so a lease judged
    /// expired by it has expired on the server too. A server that does not tell its
    /// time (some servers of the wire protocol) leaves `fallback`, the caller's clock,
    /// with a warning the first time.
    pub(crate) async fn server_time(
        &self,
        conn: &Conn,
        fallback: &DateTime<Utc>,
    ) -> Result<i64, Error> {
        let reply = conn
            .database
            .run_command(doc! {"hello": 1})
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
            .await
            .map_err(|e| self.fail("read the server's time", e))?;
        match reply.get_datetime("localTime") {
            Ok(t) => Ok(t.timestamp_millis().saturating_mul(1000)),
            Err(_) => {
                if !self.link.no_server_time.swap(true, Ordering::Relaxed) {
                    apscheduler_core::log_warn!(
                        target: "apscheduler",
                        namespace = %self.link.namespace,
                        "the server's hello reply has no localTime: leases are timed by \
                         each scheduler's own clock (keep them synchronised)"
                    );
                }
                Ok(micros(fallback))
            }
        }
    }

    pub(crate) fn encode(&self, job: &Job) -> Result<Encoded, Error> {
        codec::encode(job, &self.codec)
    }

    /// The duplicate-id error of APScheduler (`ConflictingIdError`), with its cause.
    pub(crate) fn conflict(&self, id: &str, source: Option<DriverError>) -> Error {
        let error = Error::conflict(id);
        match source {
            Some(source) => error.with_source(StoreError::Driver {
                namespace: self.link.namespace.clone(),
                context: format!("insert of job '{id}'"),
                source,
            }),
            None => error,
        }
    }

    /// Inserts or replaces one job, keeping a lease it has.
    pub(crate) async fn upsert(&self, conn: &Conn, job: &Encoded) -> Result<(), Error> {
        let filter = doc! {field::ID: &*job.id};
        let update = doc! {"$set": job.set_state(), "$unset": {field::CORRUPT: ""}};
        let mut raced = false;
        loop {
            match conn
                .jobs
                .update_one(filter.clone(), update.clone())
                .upsert(true)
                .await
            {
                Ok(_) => return Ok(()),
                // Two upserts of a new id raced to insert it: the retry updates.
                Err(e) if !raced && is_duplicate_key(&e) => raced = true,
                Err(e) => return Err(self.fail(format!("replace of job '{}'", job.id), e)),
            }
        }
    }

    /// Runs a write command on the jobs collection: see [`write_command`].
    pub(crate) async fn write_command(
        &self,
        conn: &Conn,
        command: &str,
        list: &str,
        statements: Vec<(Document, usize)>,
        context: &str,
    ) -> Result<Written, Error> {
        write_command(
            &conn.database,
            &conn.jobs,
            &self.link.namespace,
            command,
            list,
            statements,
            context,
        )
        .await
    }

    pub(crate) fn write_error(&self, context: &str, code: i32, message: String) -> Error {
        write_error(&self.link.namespace, context, code, message)
    }

    /// Applies `update` to the one job each filter matches, in one unordered `update`
    /// command of single-document statements, and returns how many matched; a
    /// statement's write error fails the call.
    ///
    /// Not one `updateMany`: the run steps write jobs inside transactions, and on
    /// SecantusDB (the MongoDB-wire server the tests run on) a multi-document update
    /// keeps the collection's lock while it waits out a transaction's uncommitted write,
    /// while that transaction's next statement waits for the lock: the server hangs. A
    /// single-document statement waits without the lock. MongoDB runs either shape.
    pub(crate) async fn update_each(
        &self,
        conn: &Conn,
        filters: impl Iterator<Item = Document>,
        update: &Document,
        context: &str,
    ) -> Result<u64, Error> {
        let statements = filters
            .map(|q| {
                let statement = doc! {"q": q, "u": update.clone(), "multi": false};
                let size = bson::to_vec(&statement).map_or(0, |b| b.len());
                (statement, size)
            })
            .collect();
        let written = self
            .write_command(conn, "update", "updates", statements, context)
            .await?;
        if let Some((_, code, message)) = written.failures.into_iter().next() {
            return Err(self.write_error(context, code, message));
        }
        Ok(written.matched)
    }

    /// One round of a claim: finds up to `wanted` claimable jobs in order, leases them
    /// with one `update` command per chunk of ids, a statement per job filtered on
    /// "still claimable" (so a job another claimer took in between is not taken), then
    /// reads back the jobs that carry this call's token. See [`update_each`] for why a
    /// statement per job rather than one `updateMany`.
    pub(crate) async fn claim_round(
        &self,
        conn: &Conn,
        claimable: &Document,
        claim: &Claim<'_>,
        wanted: usize,
        acquired: &mut Acquired,
    ) -> Result<Round, Error> {
        let context = "claim of due jobs";
        let mut cursor = conn
            .raw
            .find(claimable.clone())
            .sort(doc! {field::NEXT_RUN_TIME: 1, field::ID: 1})
            .projection(doc! {field::ID: 1})
            .limit(i64::try_from(wanted).unwrap_or(i64::MAX))
            .await
            .map_err(|e| self.fail(context, e))?;
        let mut candidates: Vec<Bson> = Vec::new();
        while cursor.advance().await.map_err(|e| self.fail(context, e))? {
            if let Some(id) = cursor
                .current()
                .get(field::ID)
                .ok()
                .flatten()
                .and_then(|id| Bson::try_from(id).ok())
            {
                candidates.push(id);
            }
        }
        let lease = doc! {"$set": {
            field::LEASE_HOLDER: claim.holder,
            field::LEASE_EXPIRES: claim.expires,
            field::LEASE_TOKEN: &claim.token,
        }};
        let mut claimed = 0;
        for chunk in candidates.chunks(IDS_PER_QUERY) {
            let filters = chunk.iter().map(|id| {
                let mut filter = claimable.clone();
                filter.insert(field::ID, id.clone());
                filter
            });
            if self.update_each(conn, filters, &lease, context).await? == 0 {
                continue;
            }
            let mut cursor = conn
                .raw
                .find(doc! {field::ID: {"$in": chunk}, field::LEASE_TOKEN: &claim.token})
                .projection(codec::projection())
                .await
                .map_err(|e| self.fail(context, e))?;
            while cursor.advance().await.map_err(|e| self.fail(context, e))? {
                claimed += 1;
                match codec::decode(cursor.current(), &self.codec) {
                    Ok(job) => acquired.jobs.push(job),
                    Err(corrupt) => {
                        self.mark_corrupt(conn, &corrupt, claim).await;
                        apscheduler_core::log_error!(
                            target: "apscheduler",
                            namespace = %self.link.namespace,
                            job_id = %corrupt.id,
                            error = %corrupt.error,
                            "a due job cannot be read; it is marked corrupt and left in place"
                        );
                        let corrupt = *corrupt;
                        acquired.corrupt.push(CorruptJob {
                            id: corrupt.id,
                            error: corrupt.error,
                        });
                    }
                }
            }
        }
        Ok(Round {
            candidates: candidates.len(),
            claimed,
        })
    }

    /// Marks a document the caller just claimed as corrupt and drops the lease.
    pub(crate) async fn mark_corrupt(
        &self,
        conn: &Conn,
        corrupt: &codec::Corrupt,
        claim: &Claim<'_>,
    ) {
        let filter = doc! {field::ID: corrupt.key.clone(), field::LEASE_TOKEN: &claim.token};
        let update = doc! {"$set": {field::CORRUPT: &corrupt.error}, "$unset": unset_lease(false)};
        if let Err(e) = conn.jobs.update_one(filter, update).await {
            apscheduler_core::log_warn!(
                target: "apscheduler",
                namespace = %self.link.namespace,
                job_id = %corrupt.id,
                error = %e,
                "cannot mark an unreadable job as corrupt; it will be reported again when its lease expires"
            );
        }
    }
}

/// Release writes in flight at once.
pub(crate) const RELEASE_BURST: usize = 64;

/// `$unset` of the lease fields (and of the corrupt mark).
pub(crate) fn unset_lease(corrupt_too: bool) -> Document {
    let mut unset =
        doc! {field::LEASE_HOLDER: "", field::LEASE_EXPIRES: "", field::LEASE_TOKEN: ""};
    if corrupt_too {
        unset.insert(field::CORRUPT, "");
    }
    unset
}

impl MongoDbJobStore {
    /// Which of `ids` hold `token` as their release token: the ones a release call with
    /// that token stored.
    pub(crate) async fn released_by(
        &self,
        conn: &Conn,
        ids: &[&str],
        token: &str,
    ) -> Result<HashSet<String>, mongodb::error::Error> {
        let mut applied = HashSet::new();
        for chunk in ids.chunks(RELEASE_BURST) {
            let mut cursor = conn
                .jobs
                .find(doc! {field::ID: {"$in": chunk}, field::RELEASE_TOKEN: token})
                .projection(doc! {field::ID: 1})
                .await?;
            while cursor.advance().await? {
                if let Ok(id) = cursor.current().get_str(field::ID) {
                    applied.insert(id.to_owned());
                }
            }
        }
        Ok(applied)
    }
}

/// One claim call: who claims, its unique token, and the lease's expiry.
pub(crate) struct Claim<'a> {
    pub(crate) holder: &'a str,
    pub(crate) token: String,
    pub(crate) expires: i64,
}

/// What one round of a claim found and took.
pub(crate) struct Round {
    pub(crate) candidates: usize,
    pub(crate) claimed: usize,
}

//! [`MongoDbRunHistory`]: run records in a collection beside the jobs collection.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use apscheduler_core::time::micros;
use apscheduler_core::{
    async_trait, Error, ErrorKind, NodeRegistry, RunHistory, RunOutcome, RunQuery, RunRecord,
};
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};
use mongodb::error::ErrorKind as DriverKind;
use mongodb::options::{CollectionOptions, IndexOptions, ReadPreference, SelectionCriteria};
use mongodb::{Collection, Database, IndexModel};

use crate::error::{is_duplicate_key, DUPLICATE_KEY};
use crate::{
    fail, validate_collection_name, write_command, write_error, Link, IDS_PER_QUERY,
    INDEX_CONFLICT_CODES,
};

mod nodes;
mod starts;

/// Field names of a run document.
pub(crate) mod field {
    /// The run id (a string).
    pub(crate) const ID: &str = "_id";
    /// The job id (a string).
    pub(crate) const JOB_ID: &str = "job_id";
    /// The fire time: UTC microseconds since the epoch (`Int64`).
    pub(crate) const SCHEDULED: &str = "scheduled_us";
    /// The start: UTC microseconds (`Int64`), or `null`.
    pub(crate) const STARTED: &str = "started_us";
    /// The end: UTC microseconds (`Int64`), or `null`.
    pub(crate) const FINISHED: &str = "finished_us";
    /// The outcome's lowercase name (a string).
    pub(crate) const OUTCOME: &str = "outcome";
    /// The exit code (`Int32`), or `null`.
    pub(crate) const EXIT_CODE: &str = "exit_code";
    /// The HTTP status (`Int32`), or `null`.
    pub(crate) const HTTP_STATUS: &str = "http_status";
    /// The output tail (a string).
    pub(crate) const OUTPUT: &str = "output";
    /// Why it failed (a string), or `null`.
    pub(crate) const MESSAGE: &str = "message";
    /// The node that ran it (a string).
    pub(crate) const NODE: &str = "node";
    /// Which attempt at its fire time (`Int64`, 1 for the first run); absent (a record
    /// from before the field) reads as 1.
    pub(crate) const ATTEMPT: &str = "attempt";
    /// Whether a backfill started it (a boolean); absent reads as `false`.
    pub(crate) const BACKFILL: &str = "backfill";
    /// When a waiting run is due: UTC microseconds (`Int64`), or `null` (or absent).
    pub(crate) const DUE: &str = "due_us";
}

/// What the history collection's name adds to the jobs collection's name.
pub(crate) const RUNS_SUFFIX: &str = "_runs";
/// What the node registry collection's name adds to the jobs collection's name.
pub(crate) const NODES_SUFFIX: &str = "_nodes";

/// The indexes [`MongoDbRunHistory::prepare`](RunHistory::prepare) creates: name, keys.
fn indexes() -> [(&'static str, Document); 4] {
    use field::*;
    [
        // Unfiltered queries (newest first) and pruning by age.
        ("aps_runs_scheduled", doc! {SCHEDULED: -1, ID: -1}),
        // A job's runs, newest first, and pruning by count.
        ("aps_runs_job", doc! {JOB_ID: 1, SCHEDULED: -1, ID: -1}),
        // Runs with one outcome, newest first (with `_id`, the index gives the whole
        // order, so MongoDB streams the first `limit` instead of sorting every match).
        ("aps_runs_outcome", doc! {OUTCOME: 1, SCHEDULED: -1, ID: -1}),
        // A node's running records (interrupt_running).
        ("aps_runs_node", doc! {NODE: 1, OUTCOME: 1}),
    ]
}

/// Run history in a MongoDB collection: one document per run, in the collection
/// `<jobs collection>_runs` of the store's database (`jobs_runs` by default), reached
/// with the store's client. Obtained from [`MongoDbJobStore::history`](crate::MongoDbJobStore::history)
/// or [`JobStore::run_history`](apscheduler_core::JobStore::run_history).
///
/// See the [crate documentation](crate#run-history) for the document layout and the
/// indexes.
pub struct MongoDbRunHistory {
    link: Arc<Link>,
    collection: String,
    namespace: String,
}

impl fmt::Debug for MongoDbRunHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoDbRunHistory")
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl MongoDbRunHistory {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        let collection = format!("{}{RUNS_SUFFIX}", link.collection);
        let namespace = format!("{}.{collection}", link.database);
        MongoDbRunHistory {
            link,
            collection,
            namespace,
        }
    }

    /// The collection's name (`<jobs collection>_runs`).
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// The run collection (connecting the store's client when needed) and its
    /// database. Reads go to the primary, like the store's: a query sees the records
    /// just written.
    async fn runs(&self) -> Result<(Database, Collection<Document>), Error> {
        validate_collection_name(&self.link.database, &self.collection)?;
        let conn = self.link.conn().await?;
        let runs = conn.database.collection_with_options::<Document>(
            &self.collection,
            CollectionOptions::builder()
                .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
                .build(),
        );
        Ok((conn.database, runs))
    }

    fn fail(&self, context: impl Into<String>, source: mongodb::error::Error) -> Error {
        fail(&self.namespace, context, source)
    }

    /// Reads the documents `find` yields, in order.
    async fn read_all(
        &self,
        mut cursor: mongodb::Cursor<RawDocumentBuf>,
        context: &str,
    ) -> Result<Vec<RunRecord>, Error> {
        let mut found = Vec::new();
        while cursor.advance().await.map_err(|e| self.fail(context, e))? {
            found.push(decode(cursor.current(), &self.namespace)?);
        }
        Ok(found)
    }
}

/// A stored time: microseconds since the epoch, truncated (chrono keeps nanoseconds).
fn stored_micros(t: &DateTime<Utc>) -> i64 {
    micros::now(t)
}

/// A bound compared with stored times: rounded up, so that `scheduled_us >= bound`
/// (and `< bound`) agree with comparing the full-precision instants.
fn bound_micros(t: &DateTime<Utc>) -> i64 {
    micros::run_time(t)
}

fn optional_micros(t: Option<&DateTime<Utc>>) -> Bson {
    t.map_or(Bson::Null, |t| Bson::Int64(stored_micros(t)))
}

/// The document of a record (the whole of it: a write replaces the stored one).
pub(crate) fn encode(record: &RunRecord) -> Document {
    use field::*;
    doc! {
        ID: &record.run_id,
        JOB_ID: &record.job_id,
        SCHEDULED: stored_micros(&record.scheduled_at),
        STARTED: optional_micros(record.started_at.as_ref()),
        FINISHED: optional_micros(record.finished_at.as_ref()),
        OUTCOME: record.outcome.as_str(),
        EXIT_CODE: record.exit_code.map_or(Bson::Null, Bson::Int32),
        HTTP_STATUS: record.http_status.map_or(Bson::Null, |s| Bson::Int32(s.into())),
        OUTPUT: &record.output,
        MESSAGE: record.message.as_deref().map_or(Bson::Null, |m| Bson::String(m.to_owned())),
        NODE: &record.node,
        ATTEMPT: i64::from(record.attempt),
        BACKFILL: record.backfill,
        DUE: optional_micros(record.due_at.as_ref()),
    }
}

/// Reads a stored run document.
///
/// # Errors
/// `Serialization` naming the run and the field for a missing or mistyped field or an
/// unknown outcome.
pub(crate) fn decode(document: &RawDocument, namespace: &str) -> Result<RunRecord, Error> {
    use field::*;
    let run_id = match document.get(ID) {
        Ok(Some(RawBsonRef::String(id))) => id.to_owned(),
        other => {
            let what = match other {
                Ok(Some(value)) => format!("{:?}", value.element_type()),
                Ok(None) => "missing".to_owned(),
                Err(e) => e.to_string(),
            };
            return Err(Error::new(
                ErrorKind::Serialization,
                format!(
                    "MongoDB run history ({namespace}): cannot read a run record: \
                     field '_id' is not a string ({what})"
                ),
            ));
        }
    };
    let bad = |field: &str, why: &str| {
        Error::new(
            ErrorKind::Serialization,
            format!(
                "MongoDB run history ({namespace}): cannot read run '{}': field '{field}' {why}",
                run_id.escape_debug()
            ),
        )
    };
    // `None` for a missing or null field.
    let value = |field: &str| match document.get(field) {
        Ok(Some(RawBsonRef::Null)) | Ok(None) => Ok(None),
        Ok(Some(v)) => Ok(Some(v)),
        Err(e) => Err(bad(field, &format!("is unreadable: {e}"))),
    };
    let string = |field: &str| -> Result<Option<String>, Error> {
        match value(field)? {
            None => Ok(None),
            Some(RawBsonRef::String(s)) => Ok(Some(s.to_owned())),
            Some(v) => Err(bad(
                field,
                &format!("is not a string ({:?})", v.element_type()),
            )),
        }
    };
    let integer = |field: &str| -> Result<Option<i64>, Error> {
        match value(field)? {
            None => Ok(None),
            Some(RawBsonRef::Int64(v)) => Ok(Some(v)),
            Some(RawBsonRef::Int32(v)) => Ok(Some(v.into())),
            Some(RawBsonRef::Double(v)) if v.fract() == 0.0 && v.is_finite() => Ok(Some(v as i64)),
            Some(v) => Err(bad(
                field,
                &format!("is not an integer ({:?})", v.element_type()),
            )),
        }
    };
    let required = |field: &str, v: Option<String>| v.ok_or_else(|| bad(field, "is missing"));
    let time = |us: i64| {
        DateTime::from_timestamp_micros(us)
            .ok_or_else(|| bad("time", &format!("is out of range ({us} µs)")))
    };
    let outcome_text = required(OUTCOME, string(OUTCOME)?)?;
    let outcome: RunOutcome = outcome_text.parse().map_err(|_| {
        bad(
            OUTCOME,
            &format!(
                "has an unknown value '{}' (expected one of running, success, failure, \
                 timeout, missed, interrupted, error)",
                outcome_text.escape_debug()
            ),
        )
    })?;
    let scheduled = integer(SCHEDULED)?.ok_or_else(|| bad(SCHEDULED, "is missing"))?;
    let attempt = integer(ATTEMPT)?
        .map(|a| u32::try_from(a).map_err(|_| bad(ATTEMPT, &format!("is out of range ({a})"))))
        .transpose()?
        .unwrap_or(1);
    let due_at = integer(DUE)?.map(time).transpose()?;
    let backfill = match value(BACKFILL)? {
        None => false,
        Some(RawBsonRef::Boolean(b)) => b,
        Some(v) => {
            return Err(bad(
                BACKFILL,
                &format!("is not a boolean ({:?})", v.element_type()),
            ))
        }
    };
    Ok(RunRecord {
        job_id: required(JOB_ID, string(JOB_ID)?)?,
        scheduled_at: time(scheduled)?,
        started_at: integer(STARTED)?.map(time).transpose()?,
        finished_at: integer(FINISHED)?.map(time).transpose()?,
        outcome,
        exit_code: integer(EXIT_CODE)?
            .map(|c| {
                i32::try_from(c).map_err(|_| bad(EXIT_CODE, &format!("is out of range ({c})")))
            })
            .transpose()?,
        http_status: integer(HTTP_STATUS)?
            .map(|s| {
                u16::try_from(s).map_err(|_| bad(HTTP_STATUS, &format!("is out of range ({s})")))
            })
            .transpose()?,
        output: required(OUTPUT, string(OUTPUT)?)?,
        message: string(MESSAGE)?,
        node: required(NODE, string(NODE)?)?,
        run_id,
        attempt,
        backfill,
        due_at,
    })
}

/// The filter of an ended run (any outcome but `running`).
fn ended() -> Bson {
    Bson::Document(doc! {"$ne": RunOutcome::Running.as_str()})
}

#[async_trait]
impl RunHistory for MongoDbRunHistory {
    fn nodes(&self) -> Option<&dyn NodeRegistry> {
        Some(self)
    }

    /// Connects (with the store's client) and creates the collection's four indexes;
    /// idempotent. An index that exists under the same name with other keys is kept
    /// (with a warning).
    async fn prepare(&self) -> Result<(), Error> {
        let (_, runs) = self.runs().await?;
        let models = indexes().map(|(name, keys)| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_owned()).build())
                .build()
        });
        if let Err(e) = runs.create_indexes(models).await {
            match &*e.kind {
                DriverKind::Command(c) if INDEX_CONFLICT_CODES.contains(&c.code) => {
                    apscheduler_core::log_warn!(
                        target: "apscheduler",
                        namespace = %self.namespace,
                        error = %e,
                        "an index of the same name exists with other options; keeping it"
                    );
                }
                _ => return Err(self.fail("cannot create the run history's indexes", e)),
            }
        }
        Ok(())
    }

    /// Records that are most likely new — `running` ones and runs that never started
    /// (`missed`, `error`) — go in one unordered `insertMany`; the others (ended
    /// runs, which replace their `running` record), and any of the first whose id
    /// exists after all, in `update` commands of replacement upserts (1,000 statements
    /// or 8 MiB per command, unordered). A run id repeated in the batch keeps its last
    /// record.
    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let mut seen = HashSet::with_capacity(records.len());
        let mut unique: Vec<&RunRecord> = records
            .iter()
            .rev()
            .filter(|r| seen.insert(&*r.run_id))
            .collect();
        unique.reverse();
        let (fresh, mut replace): (Vec<&RunRecord>, Vec<&RunRecord>) = unique
            .into_iter()
            .partition(|r| r.outcome == RunOutcome::Running || r.started_at.is_none());
        let (database, runs) = self.runs().await?;
        let context = "record of runs";
        if !fresh.is_empty() {
            // An insert is about twice as fast as an upsert on the test server.
            let inserted = runs
                .insert_many(fresh.iter().map(|r| encode(r)))
                .ordered(false)
                .await;
            if let Err(e) = inserted {
                let DriverKind::InsertMany(failure) = &*e.kind else {
                    return Err(self.fail(context, e));
                };
                if failure.write_concern_error.is_some() {
                    return Err(self.fail(context, e));
                }
                for w in failure.write_errors.iter().flatten() {
                    match fresh.get(w.index) {
                        Some(record) if w.code == DUPLICATE_KEY => replace.push(record),
                        Some(record) => {
                            let context = format!("record of run '{}'", record.run_id);
                            return Err(self.fail(context, e));
                        }
                        None => return Err(self.fail(context, e)),
                    }
                }
            }
        }
        if replace.is_empty() {
            return Ok(());
        }
        let statements = replace
            .iter()
            .map(|r| {
                let size = 256
                    + r.run_id.len() * 2
                    + r.job_id.len()
                    + r.output.len()
                    + r.message.as_ref().map_or(0, String::len)
                    + r.node.len();
                let statement = doc! {
                    "q": {field::ID: &r.run_id},
                    "u": encode(r),
                    "upsert": true,
                };
                (statement, size)
            })
            .collect();
        let failures = write_command(
            &database,
            &runs,
            &self.namespace,
            "update",
            "updates",
            statements,
            context,
        )
        .await?
        .failures;
        for (index, code, message) in failures {
            let Some(record) = replace.get(index) else {
                return Err(write_error(&self.namespace, context, code, message));
            };
            let context = format!("record of run '{}'", record.run_id);
            if code != DUPLICATE_KEY {
                return Err(write_error(&self.namespace, &context, code, message));
            }
            // Two upserts of a new run id raced to insert it: the retry replaces.
            let filter = doc! {field::ID: &record.run_id};
            let result = runs
                .replace_one(filter.clone(), encode(record))
                .upsert(true)
                .await;
            match result {
                Ok(_) => {}
                Err(e) if is_duplicate_key(&e) => {
                    runs.replace_one(filter, encode(record))
                        .await
                        .map_err(|e| self.fail(&context, e))?;
                }
                Err(e) => return Err(self.fail(&context, e)),
            }
        }
        Ok(())
    }

    /// See `MongoDbRunHistory::start` (an `insertMany`, an `updateMany` filtered on
    /// `outcome: "running"` and a null start, a `find`).
    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        self.start(records).await
    }

    /// One `find`, sorted `{scheduled_us: -1, _id: -1}`, limited.
    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let mut filter = Document::new();
        if let Some(job) = &query.job_id {
            filter.insert(field::JOB_ID, job);
        }
        if let Some(outcome) = query.outcome {
            filter.insert(field::OUTCOME, outcome.as_str());
        }
        if let Some(node) = &query.node {
            filter.insert(field::NODE, node);
        }
        let mut scheduled = Document::new();
        if let Some(since) = &query.since {
            // `>= t` as `> t - 1` (stored times are integers): SecantusDB 0.7 misses the
            // documents equal to an inclusive bound on a key that has keys after it in
            // the index (here `{job_id, scheduled_us, _id}`); exclusive bounds work.
            scheduled.insert("$gt", bound_micros(since).saturating_sub(1));
        }
        if let Some(until) = &query.until {
            scheduled.insert("$lt", bound_micros(until));
        }
        if !scheduled.is_empty() {
            filter.insert(field::SCHEDULED, scheduled);
        }
        let (_, runs) = self.runs().await?;
        let context = "query of runs";
        let cursor = runs
            .clone_with_type::<RawDocumentBuf>()
            .find(filter)
            .sort(doc! {field::SCHEDULED: -1, field::ID: -1})
            .limit(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| self.fail(context, e))?;
        self.read_all(cursor, context).await
    }

    /// Finds the newest ended run beyond `keep` (a sorted `find` with `skip`), then
    /// deletes it and every ended run of the job ordered before it by
    /// (`scheduled_us`, `_id`) — two `deleteMany`s — so ties on the scheduled time
    /// split exactly where [`query_runs`](RunHistory::query_runs) would.
    async fn prune_job_runs(&self, job_id: &str, keep: usize) -> Result<u64, Error> {
        let (_, runs) = self.runs().await?;
        let context = format!("pruning of the runs of job '{job_id}'");
        let boundary = runs
            .clone_with_type::<RawDocumentBuf>()
            .find_one(doc! {field::JOB_ID: job_id, field::OUTCOME: ended()})
            .sort(doc! {field::SCHEDULED: -1, field::ID: -1})
            .skip(u64::try_from(keep).unwrap_or(u64::MAX))
            .projection(doc! {field::ID: 1, field::SCHEDULED: 1})
            .await
            .map_err(|e| self.fail(&context, e))?;
        let Some(boundary) = boundary else {
            return Ok(0);
        };
        let (Ok(Some(id)), Ok(Some(scheduled))) =
            (boundary.get(field::ID), boundary.get(field::SCHEDULED))
        else {
            return Ok(0);
        };
        let (id, scheduled) = (Bson::try_from(id), Bson::try_from(scheduled));
        let (Ok(id), Ok(scheduled)) = (id, scheduled) else {
            return Ok(0);
        };
        // Two deletions rather than one `$or`, which SecantusDB runs as a collection
        // scan: the older scheduled times, then the boundary's time up to its run id.
        let older = doc! {
            field::JOB_ID: job_id,
            field::OUTCOME: ended(),
            field::SCHEDULED: {"$lt": scheduled.clone()},
        };
        let tied = doc! {
            field::JOB_ID: job_id,
            field::SCHEDULED: scheduled,
            field::ID: {"$lte": id},
            field::OUTCOME: ended(),
        };
        let mut deleted = 0;
        for filter in [older, tied] {
            deleted += runs
                .delete_many(filter)
                .await
                .map_err(|e| self.fail(&context, e))?
                .deleted_count;
        }
        Ok(deleted)
    }

    /// One `deleteMany` of the ended runs with `scheduled_us` before the cut.
    async fn prune_runs_before(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        let (_, runs) = self.runs().await?;
        let deleted = runs
            .delete_many(doc! {
                field::OUTCOME: ended(),
                field::SCHEDULED: {"$lt": bound_micros(&before)},
            })
            .await
            .map_err(|e| self.fail("pruning of old runs", e))?;
        Ok(deleted.deleted_count)
    }

    /// Per 100 running records of the node: a `find` of their ids, an `updateMany`
    /// filtered on `outcome: "running"` (atomic per document: a run that ended in the
    /// meantime keeps its real outcome) and a `find` of the records it changed.
    async fn interrupt_running(
        &self,
        node: &str,
        now: DateTime<Utc>,
        message: &str,
    ) -> Result<Vec<RunRecord>, Error> {
        let (_, runs) = self.runs().await?;
        let raw = runs.clone_with_type::<RawDocumentBuf>();
        let context = format!("interruption of the running records of node '{node}'");
        let running = doc! {field::NODE: node, field::OUTCOME: RunOutcome::Running.as_str()};
        let now_us = stored_micros(&now);
        let mut changed = Vec::new();
        // Ids already handled: a record the update could not change is not retried.
        let mut handled: HashSet<String> = HashSet::new();
        loop {
            let mut cursor = raw
                .find(running.clone())
                .projection(doc! {field::ID: 1})
                .limit(i64::try_from(IDS_PER_QUERY).unwrap_or(i64::MAX))
                .await
                .map_err(|e| self.fail(&context, e))?;
            let mut ids: Vec<Bson> = Vec::new();
            while cursor.advance().await.map_err(|e| self.fail(&context, e))? {
                if let Some(id) = cursor
                    .current()
                    .get(field::ID)
                    .ok()
                    .flatten()
                    .and_then(|id| Bson::try_from(id).ok())
                {
                    ids.push(id);
                }
            }
            ids.retain(|id| id.as_str().is_none_or(|id| !handled.contains(id)));
            if ids.is_empty() {
                break;
            }
            handled.extend(ids.iter().filter_map(Bson::as_str).map(str::to_owned));
            let mut filter = running.clone();
            filter.insert(field::ID, doc! {"$in": &ids});
            runs.update_many(
                filter,
                doc! {"$set": {
                    field::OUTCOME: RunOutcome::Interrupted.as_str(),
                    field::FINISHED: now_us,
                    field::MESSAGE: message,
                }},
            )
            .await
            .map_err(|e| self.fail(&context, e))?;
            let cursor = raw
                .find(doc! {
                    field::ID: {"$in": &ids},
                    field::NODE: node,
                    field::OUTCOME: RunOutcome::Interrupted.as_str(),
                    field::FINISHED: now_us,
                    field::MESSAGE: message,
                })
                .await
                .map_err(|e| self.fail(&context, e))?;
            changed.extend(self.read_all(cursor, &context).await?);
        }
        changed.sort_by(|a, b| (&b.scheduled_at, &b.run_id).cmp(&(&a.scheduled_at, &a.run_id)));
        Ok(changed)
    }
}

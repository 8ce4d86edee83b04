//! [`MongoDbJobStore`]'s side of the run contract ([`RunSteps`], from which core
//! derives [`RunStore`](apscheduler_core::RunStore). A job's runs are one document of
//! `<collection>_run_groups`: `{_id: <job id>, v: <version>, fence, finishing, expiry:
//! <earliest end of a live run's lease, µs, or null>, runs: [<run>...]}`. A step is one
//! transaction: it reads the groups and the jobs it touches and the server's time,
//! lets core's [`RunTable`] decide, and writes each group only if its version is the
//! one read and each released job only while the caller holds its claim; anything
//! that moved meanwhile aborts the transaction, and the step reads and decides again.

use apscheduler_core::{Changes, Decide, Run, RunKey, RunState, RunSteps, RunTable, StepView};
use mongodb::error::{TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use std::collections::HashMap;

use mongodb::ClientSession;

use super::*;
use crate::link::Conn;
use crate::ops::unset_lease;

/// The run groups' collection is named after the jobs collection with this suffix.
pub(crate) const RUN_GROUPS_SUFFIX: &str = "_run_groups";

/// How often a step reads and decides again after something moved under it.
const ATTEMPTS: usize = 30;

/// A job's run group as read: its version (0: no document yet), fence, finishing mark
/// and runs.
#[derive(Default)]
struct Group {
    version: i64,
    fence: u64,
    finishing: bool,
    runs: Vec<Run>,
}

/// Why a transaction did not commit: something moved (read and decide again), or a
/// real error.
enum Aborted {
    Moved,
    Failed(Error),
}

fn bson_of(run: &Run) -> Bson {
    bson::to_bson(run).expect("a run converts to BSON")
}

impl MongoDbJobStore {
    fn groups(&self, conn: &Conn) -> Collection<Document> {
        conn.database
            .collection(&format!("{}{RUN_GROUPS_SUFFIX}", self.link.collection))
    }

    fn read_group(&self, job: &str, document: Option<Document>) -> Result<Group, Error> {
        let Some(d) = document else {
            return Ok(Group::default());
        };
        let runs = match d.get_array("runs") {
            Ok(runs) => runs
                .iter()
                .map(|b| bson::from_bson(b.clone()))
                .collect::<Result<Vec<Run>, _>>()
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Serialization,
                        format!("the runs of job '{job}' cannot be read: {e}"),
                    )
                })?,
            Err(_) => Vec::new(),
        };
        Ok(Group {
            version: d.get_i64("v").unwrap_or(0),
            fence: d.get_i64("fence").map_or(0, |f| f.max(0) as u64),
            finishing: d.get_bool("finishing").unwrap_or(false),
            runs,
        })
    }

    /// One step over `jobs` (see the module documentation).
    async fn step(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        decide: &mut Decide<'_, Encoded>,
    ) -> Result<(), Error> {
        let mut jobs = jobs;
        jobs.sort();
        jobs.dedup();
        if jobs.is_empty() {
            return Ok(());
        }
        let conn = self.conn().await?;
        for _ in 0..ATTEMPTS {
            match self.try_step(&conn, holder, &jobs, decide).await {
                Ok(()) => return Ok(()),
                Err(Aborted::Moved) => tokio::task::yield_now().await,
                Err(Aborted::Failed(e)) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            format!("the runs of these jobs kept changing under concurrent writers: {jobs:?}"),
        ))
    }

    async fn try_step(
        &self,
        conn: &Conn,
        holder: &str,
        jobs: &[Arc<str>],
        decide: &mut Decide<'_, Encoded>,
    ) -> Result<(), Aborted> {
        let failed = |what: &'static str| {
            move |e: mongodb::error::Error| {
                if e.contains_label(TRANSIENT_TRANSACTION_ERROR) {
                    Aborted::Moved
                } else {
                    Aborted::Failed(self.fail(what, e))
                }
            }
        };
        let now = self
            .server_time(conn, &Utc::now())
            .await
            .map_err(Aborted::Failed)?;
        let mut session: ClientSession = conn
            .client
            .start_session()
            .await
            .map_err(failed("start a session"))?;
        session
            .start_transaction()
            .await
            .map_err(failed("start a transaction"))?;
        let groups = self.groups(conn);
        let mut read_jobs = HashMap::new();
        let mut read_groups = HashMap::new();
        for job in jobs {
            let d = conn
                .jobs
                .find_one(doc! {field::ID: &**job})
                .session(&mut session)
                .await
                .map_err(failed("read a job"))?;
            if let Some(d) = d {
                read_jobs.insert(job.clone(), d);
            }
            let g = groups
                .find_one(doc! {"_id": &**job})
                .session(&mut session)
                .await
                .map_err(failed("read a job's runs"))?;
            read_groups.insert(
                job.clone(),
                self.read_group(job, g).map_err(Aborted::Failed)?,
            );
        }
        let runs: Vec<Run> = read_groups
            .values()
            .flat_map(|g| g.runs.iter().cloned())
            .collect();
        let fences: Vec<(Arc<str>, u64, bool)> = read_groups
            .iter()
            .map(|(job, g)| (job.clone(), g.fence, g.finishing))
            .collect();
        let mut table = RunTable::load(runs, fences);
        let held_by = |d: &Document| d.get_str(field::LEASE_HOLDER).is_ok_and(|h| h == holder);
        let view = StepView {
            part: None,
            now: from_micros(now),
            existing: read_jobs.keys().cloned().collect(),
            held: read_jobs
                .iter()
                .filter(|(_, d)| held_by(d))
                .map(|(job, _)| job.clone())
                .collect(),
        };
        let writes = decide(&mut table, &view);
        let mut stored: HashMap<Arc<str>, Encoded> = writes.store.into_iter().collect();
        for id in &writes.pause {
            let paused = self
                .paused_state(id, &read_jobs[id])
                .map_err(Aborted::Failed)?;
            stored.insert(id.clone(), paused);
        }
        let Changes {
            jobs: fences,
            removable,
            ..
        } = table.take_changes();
        for (job, fence, finishing) in fences {
            let runs: Vec<Bson> = table.of_job(&job).map(bson_of).collect();
            let expiry = table
                .of_job(&job)
                .filter(|r| r.state.is_live())
                .map(|r| micros(&r.lease_until))
                .min()
                .map_or(Bson::Null, Bson::Int64);
            let version = read_groups[&job].version;
            let fields = doc! {
                "v": version + 1,
                "fence": i64::try_from(fence).unwrap_or(i64::MAX),
                "finishing": finishing,
                "expiry": expiry,
                "runs": runs,
            };
            let written = if version == 0 {
                let mut document = doc! {"_id": &*job};
                document.extend(fields);
                match groups.insert_one(document).session(&mut session).await {
                    Ok(_) => true,
                    Err(e) if is_duplicate_key(&e) => false,
                    Err(e) => return Err(failed("write a job's runs")(e)),
                }
            } else {
                groups
                    .update_one(doc! {"_id": &*job, "v": version}, doc! {"$set": fields})
                    .session(&mut session)
                    .await
                    .map_err(failed("write a job's runs"))?
                    .matched_count
                    == 1
            };
            if !written {
                let _ = session.abort_transaction().await;
                return Err(Aborted::Moved);
            }
            let applied = if removable.contains(&job) || writes.remove.contains(&job) {
                conn.jobs
                    .delete_one(doc! {field::ID: &*job})
                    .session(&mut session)
                    .await
                    .map_err(failed("remove a finished job"))?
                    .deleted_count
                    == 1
            } else if let Some(encoded) = stored.get(&job) {
                let mut set = encoded.set_state();
                set.insert(field::RELEASE_TOKEN, uuid::Uuid::new_v4().to_string());
                conn.jobs
                    .update_one(
                        doc! {field::ID: &*job, field::LEASE_HOLDER: holder},
                        doc! {"$set": set, "$unset": unset_lease(true)},
                    )
                    .session(&mut session)
                    .await
                    .map_err(failed("release a job"))?
                    .matched_count
                    == 1
            } else {
                true
            };
            if !applied {
                let _ = session.abort_transaction().await;
                return Err(Aborted::Moved);
            }
        }
        loop {
            match session.commit_transaction().await {
                Ok(()) => return Ok(()),
                Err(e) if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) => continue,
                Err(e) => return Err(failed("commit a run step")(e)),
            }
        }
    }

    /// A job's state with no next run time, to keep a finished job paused.
    fn paused_state(&self, job: &str, document: &Document) -> Result<Encoded, Error> {
        let raw = RawDocumentBuf::from_document(document)
            .map_err(|e| Error::new(ErrorKind::Serialization, format!("job '{job}': {e}")))?;
        let mut decoded = crate::codec::decode(&raw, &self.codec)
            .map_err(|c| Error::new(ErrorKind::Serialization, format!("job '{job}': {c:?}")))?;
        decoded.next_run_time = None;
        self.encode(&decoded)
    }

    async fn group_runs(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        let conn = self.conn().await?;
        let d = self
            .groups(&conn)
            .find_one(doc! {"_id": job_id})
            .await
            .map_err(|e| self.fail("read a job's runs", e))?;
        let mut runs = self.read_group(job_id, d)?.runs;
        runs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(runs)
    }
}

#[async_trait]
impl RunSteps for MongoDbJobStore {
    type Encoded = Encoded;

    fn encode_job(&self, job: &Job) -> Result<Encoded, Error> {
        self.encode(job)
    }

    async fn run_step(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        _keys: Vec<RunKey>,
        decide: &mut Decide<'_, Encoded>,
    ) -> Result<(), Error> {
        self.step(holder, jobs, decide).await
    }

    async fn expired_jobs(&self, limit: usize) -> Result<Vec<Arc<str>>, Error> {
        let conn = self.conn().await?;
        let now = self.server_time(&conn, &Utc::now()).await?;
        let mut cursor = self
            .groups(&conn)
            .find(doc! {"expiry": {"$lte": now}})
            .sort(doc! {"expiry": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .projection(doc! {"_id": 1})
            .await
            .map_err(|e| self.fail("find expired runs", e))?;
        let mut jobs: Vec<Arc<str>> = Vec::new();
        while cursor
            .advance()
            .await
            .map_err(|e| self.fail("find expired runs", e))?
        {
            let d = cursor
                .deserialize_current()
                .map_err(|e| self.fail("find expired runs", e))?;
            if let Ok(id) = d.get_str("_id") {
                jobs.push(id.into());
            }
        }
        Ok(jobs)
    }

    async fn job_runs(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        self.group_runs(job_id).await
    }

    async fn prune_ended(&self, before: DateTime<Utc>) -> Result<usize, Error> {
        let conn = self.conn().await?;
        let groups = self.groups(&conn);
        let mut cursor = groups
            .find(doc! {})
            .projection(doc! {"_id": 1})
            .await
            .map_err(|e| self.fail("list run groups", e))?;
        let mut jobs = Vec::new();
        while cursor
            .advance()
            .await
            .map_err(|e| self.fail("list run groups", e))?
        {
            let d = cursor
                .deserialize_current()
                .map_err(|e| self.fail("list run groups", e))?;
            if let Ok(id) = d.get_str("_id") {
                jobs.push(Arc::<str>::from(id));
            }
        }
        let old = |r: &Run| match r.state {
            RunState::Ended { at, .. } | RunState::Interrupted { at } => at < before,
            _ => false,
        };
        let mut pruned = 0;
        for job in jobs {
            for _ in 0..ATTEMPTS {
                let d = groups
                    .find_one(doc! {"_id": &*job})
                    .await
                    .map_err(|e| self.fail("read a job's runs", e))?;
                let group = self.read_group(&job, d)?;
                let count = group.runs.iter().filter(|r| old(r)).count();
                if count == 0 || group.version == 0 {
                    break;
                }
                let kept: Vec<Bson> = group.runs.iter().filter(|r| !old(r)).map(bson_of).collect();
                let done = groups
                    .update_one(
                        doc! {"_id": &*job, "v": group.version},
                        doc! {"$set": {"v": group.version + 1, "runs": kept}},
                    )
                    .await
                    .map_err(|e| self.fail("prune a job's runs", e))?;
                if done.matched_count == 1 {
                    pruned += count;
                    break;
                }
            }
        }
        Ok(pruned)
    }
}

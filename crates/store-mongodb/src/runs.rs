//! [`MongoDbJobStore`]'s [`RunStore`] implementation. A job's runs are one document of
//! `<collection>_run_groups`: `{_id: <job id>, v: <version>, fence, finishing, expiry:
//! <earliest end of a live run's lease, µs, or null>, runs: [<run>...]}`. A step is one
//! transaction: it reads the groups and the jobs it touches and the server's time,
//! lets core's [`RunTable`] decide, and writes each group only if its version is the
//! one read and each released job only while the caller holds its claim; anything
//! that moved meanwhile aborts the transaction, and the step reads and decides again.

use apscheduler_core::{
    Changes, EndReply, Held, JobFate, NewRun, ReleaseBatch, ReleasedRuns, Renewed, Run, RunEnd,
    RunKey, RunState, RunStore, RunTable, StartReply, Swept,
};
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

/// What a step's decision sees: the server's time, the jobs read (their lease holder,
/// and their document) and the groups.
struct View<'a> {
    now: DateTime<Utc>,
    jobs: &'a HashMap<Arc<str>, Document>,
}

impl View<'_> {
    fn exists(&self, job: &str) -> bool {
        self.jobs.contains_key(job)
    }

    fn held_by(&self, job: &str, holder: &str) -> bool {
        self.jobs
            .get(job)
            .and_then(|d| d.get_str(field::LEASE_HOLDER).ok())
            .is_some_and(|h| h == holder)
    }
}

/// What becomes of a job's document in a step.
enum JobOp {
    /// Stores this state and ends the caller's claim (only while it holds it).
    Store(Box<Encoded>),
    Remove,
}

type Decide<'f> =
    dyn FnMut(&mut RunTable, &View<'_>) -> Result<HashMap<Arc<str>, JobOp>, Error> + Send + 'f;

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
    async fn run_step(&self, jobs: Vec<Arc<str>>, decide: &mut Decide<'_>) -> Result<(), Error> {
        let mut jobs = jobs;
        jobs.sort();
        jobs.dedup();
        if jobs.is_empty() {
            return Ok(());
        }
        let conn = self.conn().await?;
        for _ in 0..ATTEMPTS {
            match self.try_step(&conn, &jobs, decide).await {
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
        jobs: &[Arc<str>],
        decide: &mut Decide<'_>,
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
        let view = View {
            now: from_micros(now),
            jobs: &read_jobs,
        };
        let ops = decide(&mut table, &view).map_err(Aborted::Failed)?;
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
            let op = if removable.contains(&job) {
                Some(&JobOp::Remove)
            } else {
                ops.get(&job)
            };
            let applied = match op {
                None => true,
                Some(JobOp::Remove) => {
                    conn.jobs
                        .delete_one(doc! {field::ID: &*job})
                        .session(&mut session)
                        .await
                        .map_err(failed("remove a finished job"))?
                        .deleted_count
                        == 1
                }
                Some(JobOp::Store(encoded)) => {
                    let mut set = encoded.set_state();
                    set.insert(field::RELEASE_TOKEN, uuid::Uuid::new_v4().to_string());
                    conn.jobs
                        .update_one(
                            doc! {field::ID: &*job, field::LEASE_HOLDER: view_holder(&read_jobs, &job)},
                            doc! {"$set": set, "$unset": unset_lease(true)},
                        )
                        .session(&mut session)
                        .await
                        .map_err(failed("release a job"))?
                        .matched_count
                        == 1
                }
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

/// The lease holder a release's filter names: the one read (the caller's, or the
/// release is not asked for).
fn view_holder(jobs: &HashMap<Arc<str>, Document>, job: &str) -> String {
    jobs.get(job)
        .and_then(|d| d.get_str(field::LEASE_HOLDER).ok())
        .unwrap_or_default()
        .to_owned()
}

fn jobs_of(runs: &[Held]) -> Vec<Arc<str>> {
    runs.iter()
        .filter_map(|h| RunKey::from_id(&h.id))
        .map(|k| k.job_id)
        .collect()
}

#[async_trait]
impl RunStore for MongoDbJobStore {
    async fn release_with_runs(
        &self,
        holder: &str,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        lease: Duration,
    ) -> Result<ReleasedRuns, Error> {
        let ReleaseBatch {
            jobs: asked,
            refused,
        } = ReleaseBatch::new(releases, |job| self.encode(job));
        let holder_id: Arc<str> = holder.into();
        let (mut lost, mut made) = (Vec::new(), Vec::new());
        let jobs = asked.iter().map(|(id, ..)| id.clone()).collect();
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            lost.clear();
            made.clear();
            let mut ops = HashMap::new();
            for (id, encoded, runs) in &asked {
                if !view.held_by(id, holder) {
                    lost.push(id.clone());
                    continue;
                }
                let (runs, fate) =
                    table.release_job(&holder_id, id, encoded.is_none(), runs, view.now, lease);
                made.extend(runs);
                let op = match (fate, encoded) {
                    (JobFate::Update, Some(encoded)) => JobOp::Store(Box::new(encoded.clone())),
                    (JobFate::Pause, _) => {
                        JobOp::Store(Box::new(self.paused_state(id, &view.jobs[id])?))
                    }
                    (JobFate::Remove | JobFate::Update, _) => JobOp::Remove,
                };
                ops.insert(id.clone(), op);
            }
            Ok(ops)
        };
        self.run_step(jobs, &mut decide).await?;
        Ok(ReleasedRuns {
            jobs: Released::new(lost, refused),
            runs: made,
        })
    }

    async fn insert_runs(
        &self,
        holder: &str,
        runs: Vec<NewRun>,
        lease: Duration,
    ) -> Result<Vec<Run>, Error> {
        let holder_id: Arc<str> = holder.into();
        let jobs = runs.iter().map(|r| r.key.job_id.clone()).collect();
        let mut made = Vec::new();
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            made.clear();
            for new in &runs {
                let job = &new.key.job_id;
                if view.exists(job) && !table.is_finishing(job) {
                    made.extend(table.insert(&holder_id, new.clone(), view.now, lease));
                }
            }
            Ok(HashMap::new())
        };
        self.run_step(jobs, &mut decide).await?;
        Ok(made)
    }

    async fn start_runs(
        &self,
        holder: &str,
        runs: &[Held],
        lease: Duration,
    ) -> Result<Vec<StartReply>, Error> {
        let mut replies = vec![StartReply::Refused; runs.len()];
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            replies = runs
                .iter()
                .map(|held| table.start(holder, held, view.now, lease))
                .collect();
            Ok(HashMap::new())
        };
        self.run_step(jobs_of(runs), &mut decide).await?;
        Ok(replies)
    }

    async fn renew_runs(
        &self,
        holder: &str,
        runs: &[Held],
        lease: Duration,
    ) -> Result<Renewed, Error> {
        let mut renewed = Renewed {
            held: Vec::new(),
            lost: runs.iter().map(|h| h.id.clone()).collect(),
        };
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            renewed = table.renew(holder, runs, view.now, lease);
            Ok(HashMap::new())
        };
        self.run_step(jobs_of(runs), &mut decide).await?;
        Ok(renewed)
    }

    async fn end_runs(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        lease: Duration,
    ) -> Result<Vec<EndReply>, Error> {
        let held: Vec<Held> = ends.iter().map(|e| e.run.clone()).collect();
        let holder_id: Arc<str> = holder.into();
        let mut replies = vec![EndReply::Refused; ends.len()];
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            replies = ends
                .iter()
                .map(|end| table.end(&holder_id, end, view.now, lease))
                .collect();
            Ok(HashMap::new())
        };
        self.run_step(jobs_of(&held), &mut decide).await?;
        Ok(replies)
    }

    async fn sweep_runs(
        &self,
        sweeper: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Swept, Error> {
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
        let sweeper_id: Arc<str> = sweeper.into();
        let mut swept = Swept::default();
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            swept = table.sweep(&sweeper_id, view.now, lease, limit);
            Ok(HashMap::new())
        };
        self.run_step(jobs, &mut decide).await?;
        Ok(swept)
    }

    async fn lookup_run(&self, id: &str) -> Result<Option<Run>, Error> {
        let Some(key) = RunKey::from_id(id) else {
            return Ok(None);
        };
        let runs = self.group_runs(&key.job_id).await?;
        Ok(runs.into_iter().find(|r| r.key == key))
    }

    async fn runs_of_job(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        self.group_runs(job_id).await
    }

    async fn prune_runs(&self, before: DateTime<Utc>) -> Result<usize, Error> {
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

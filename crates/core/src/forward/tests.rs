use std::fmt;
use std::sync::Mutex;

use chrono_tz::Tz;

use super::*;
use crate::store::CorruptJob;
use crate::{no_args, no_kwargs, ErrorKind, Task, Trigger};

/// A store that overrides every `JobStore` method, those with a default body too, and
/// notes each call: what the wrapper forwards must reach these, never a default.
#[derive(Debug, Default)]
struct Recording {
    calls: Mutex<Vec<&'static str>>,
}

impl Recording {
    fn note(&self, method: &'static str) {
        self.calls.lock().unwrap().push(method);
    }

    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }
}

/// What the recording store's claims return, so the wrapper's caller can tell that the
/// inner store's reply came back whole.
fn marked_claim() -> Acquired {
    Acquired {
        jobs: Vec::new(),
        corrupt: vec![CorruptJob {
            id: "marked".into(),
            error: "from the inner store".into(),
        }],
    }
}

#[async_trait]
impl JobStore for Recording {
    async fn start(&self, _alias: &str) -> Result<(), Error> {
        self.note("start");
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), Error> {
        self.note("shutdown");
        Ok(())
    }

    fn set_change_listener(&self, _listener: ChangeListener) {
        self.note("set_change_listener");
    }

    fn run_history(&self) -> Option<Arc<dyn RunHistory>> {
        self.note("run_history");
        None
    }

    fn is_persistent(&self) -> bool {
        self.note("is_persistent");
        true
    }

    fn capabilities(&self) -> Capabilities {
        self.note("capabilities");
        let mut caps = Capabilities::persistent_shared(true);
        caps.partitions = 8;
        caps
    }

    async fn add_job(&self, _job: Job, _replace_existing: bool) -> Result<(), Error> {
        self.note("add_job");
        Ok(())
    }

    async fn add_jobs(&self, _jobs: Vec<Job>, _replace_existing: bool) -> Result<(), Error> {
        self.note("add_jobs");
        Ok(())
    }

    async fn update_job(&self, _job: Job) -> Result<(), Error> {
        self.note("update_job");
        Ok(())
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        self.note("remove_job");
        Err(Error::job_not_found(id))
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        self.note("remove_all_jobs");
        Ok(())
    }

    async fn lookup_job(&self, _id: &str) -> Result<Option<Job>, Error> {
        self.note("lookup_job");
        Ok(Some(job()))
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        self.note("get_all_jobs");
        Ok(vec![job(), job()])
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        self.note("get_next_run_time");
        Ok(Some(DateTime::UNIX_EPOCH))
    }

    async fn acquire_due_jobs(
        &self,
        _scheduler_id: &str,
        _now: DateTime<Utc>,
        _limit: usize,
        _lease: Duration,
    ) -> Result<Acquired, Error> {
        self.note("acquire_due_jobs");
        Ok(marked_claim())
    }

    async fn acquire_due_jobs_preferring(
        &self,
        _scheduler_id: &str,
        _now: DateTime<Utc>,
        _limit: usize,
        _lease: Duration,
        _hint: ClaimHint<'_>,
    ) -> Result<Acquired, Error> {
        self.note("acquire_due_jobs_preferring");
        Ok(marked_claim())
    }

    async fn extend_leases(
        &self,
        _scheduler_id: &str,
        _ids: &[Arc<str>],
        _now: DateTime<Utc>,
        _lease: Duration,
    ) -> Result<(), Error> {
        self.note("extend_leases");
        Ok(())
    }

    async fn release_jobs(
        &self,
        _scheduler_id: &str,
        _releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        self.note("release_jobs");
        Ok(Released::new(vec!["lost".into()], Vec::new()))
    }

    fn records_with_release(&self) -> bool {
        self.note("records_with_release");
        true
    }

    async fn release_jobs_recorded(
        &self,
        _scheduler_id: &str,
        _releases: Vec<JobRelease>,
        _records: &[RunRecord],
    ) -> Result<Released, Error> {
        self.note("release_jobs_recorded");
        Ok(Released::new(vec!["lost".into()], Vec::new()))
    }
}

/// A trigger that never fires, for the jobs the test passes around.
#[derive(Debug)]
struct Never;

impl fmt::Display for Never {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("never")
    }
}

impl Trigger for Never {
    fn next_fire_time(
        &self,
        _previous: Option<&chrono::DateTime<Tz>>,
        _now: &chrono::DateTime<Tz>,
    ) -> Option<chrono::DateTime<Tz>> {
        None
    }

    fn timezone(&self) -> Tz {
        Tz::UTC
    }
}

fn job() -> Job {
    Job {
        id: "j".into(),
        name: "j".into(),
        task: Task::Named("t".into()),
        args: no_args(),
        kwargs: no_kwargs(),
        trigger: Arc::new(Never),
        executor: "default".into(),
        misfire_grace_time: None,
        coalesce: false,
        max_instances: 1,
        recover: false,
        policy: crate::default_policy(),
        paused_reason: None,
        declaration: None,
        next_run_time: None,
    }
}

/// How a reply looked to the hook, in a form tests can compare.
fn summary(reply: Reply<'_>) -> String {
    match reply {
        Reply::Failed(e) => format!("failed {:?}", e.kind()),
        Reply::Done => "done".into(),
        Reply::Job(job) => format!("job {:?}", job.map(|j| &*j.id)),
        Reply::Jobs(jobs) => format!("{} jobs", jobs.len()),
        Reply::NextRunTime(next) => format!("next {next:?}"),
        Reply::Acquired(a) => format!("claimed {} corrupt {}", a.jobs.len(), a.corrupt.len()),
        Reply::Released(r) => format!("released, lost {:?}", r.lost),
    }
}

/// A wrapper noting each call it passes on with what the call returned, and hiding
/// the wrapped store's partitions.
#[derive(Debug, Default)]
struct Noting {
    inner: Recording,
    seen: Mutex<Vec<(StoreOp, String)>>,
}

impl StoreWrapper for Noting {
    type Inner = Recording;

    fn wrapped(&self) -> &Recording {
        &self.inner
    }

    async fn around<T: StoreReply>(&self, op: StoreOp, call: impl Future<Output = T> + Send) -> T {
        let reply = call.await;
        self.seen.lock().unwrap().push((op, summary(reply.view())));
        reply
    }

    fn adjust_capabilities(&self, mut wrapped: Capabilities) -> Capabilities {
        wrapped.partitions = 0;
        wrapped
    }
}

#[tokio::test]
async fn every_method_reaches_the_wrapped_store_and_each_async_one_the_hook() {
    let store = Noting::default();
    let now = DateTime::UNIX_EPOCH;
    let lease = Duration::from_secs(30);
    let hint = ClaimHint {
        partitions: 8,
        owned: &[1, 5],
    };
    let ids: Vec<Arc<str>> = vec!["j".into()];

    // Through `dyn JobStore`, as a scheduler calls it.
    let s: &dyn JobStore = &store;
    s.start("default").await.unwrap();
    s.shutdown().await.unwrap();
    s.set_change_listener(Arc::new(|| {}));
    assert!(s.run_history().is_none());
    assert!(s.is_persistent());
    let caps = s.capabilities();
    assert!(caps.shared && caps.transactions && caps.persistent);
    assert_eq!(caps.partitions, 0, "adjust_capabilities applies");
    s.add_job(job(), false).await.unwrap();
    s.add_jobs(vec![job()], false).await.unwrap();
    s.update_job(job()).await.unwrap();
    let err = s.remove_job("j").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    s.remove_all_jobs().await.unwrap();
    assert_eq!(&*s.lookup_job("j").await.unwrap().unwrap().id, "j");
    assert_eq!(s.get_all_jobs().await.unwrap().len(), 2);
    assert_eq!(
        s.get_next_run_time().await.unwrap(),
        Some(DateTime::UNIX_EPOCH)
    );
    let claimed = s.acquire_due_jobs("s", now, 10, lease).await.unwrap();
    assert_eq!(claimed.corrupt[0].id, "marked");
    let claimed = s
        .acquire_due_jobs_preferring("s", now, 10, lease, hint)
        .await
        .unwrap();
    assert_eq!(claimed.corrupt[0].id, "marked");
    s.extend_leases("s", &ids, now, lease).await.unwrap();
    let released = s.release_jobs("s", Vec::new()).await.unwrap();
    assert_eq!(released.lost, ids_of(&["lost"]));
    assert!(s.records_with_release());
    let released = s.release_jobs_recorded("s", Vec::new(), &[]).await.unwrap();
    assert_eq!(released.lost, ids_of(&["lost"]));

    assert_eq!(
        store.inner.calls(),
        [
            "start",
            "shutdown",
            "set_change_listener",
            "run_history",
            "is_persistent",
            "capabilities",
            "add_job",
            "add_jobs",
            "update_job",
            "remove_job",
            "remove_all_jobs",
            "lookup_job",
            "get_all_jobs",
            "get_next_run_time",
            "acquire_due_jobs",
            "acquire_due_jobs_preferring",
            "extend_leases",
            "release_jobs",
            "records_with_release",
            "release_jobs_recorded",
        ],
        "each method reached the wrapped store's own version, once"
    );

    let seen = store.seen.lock().unwrap().clone();
    let ops: Vec<StoreOp> = seen.iter().map(|(op, _)| *op).collect();
    assert_eq!(ops, StoreOp::ALL, "each async call passed the hook, once");
    let async_calls: Vec<&str> = store
        .inner
        .calls()
        .into_iter()
        .filter(|m| {
            !matches!(
                *m,
                "set_change_listener"
                    | "run_history"
                    | "is_persistent"
                    | "capabilities"
                    | "records_with_release"
            )
        })
        .collect();
    let names: Vec<&str> = ops.iter().map(|op| op.name()).collect();
    assert_eq!(names, async_calls, "each op is named after its method");

    let replies: Vec<&str> = seen.iter().map(|(_, reply)| reply.as_str()).collect();
    assert_eq!(
        replies,
        [
            "done",
            "done",
            "done",
            "done",
            "done",
            "failed NotFound",
            "done",
            "job Some(\"j\")",
            "2 jobs",
            "next Some(1970-01-01T00:00:00Z)",
            "claimed 0 corrupt 1",
            "claimed 0 corrupt 1",
            "done",
            "released, lost [\"lost\"]",
            "released, lost [\"lost\"]",
        ]
    );
}

fn ids_of(ids: &[&str]) -> Vec<Arc<str>> {
    ids.iter().map(|&id| Arc::from(id)).collect()
}

/// A wrapper that holds `remove_all_jobs` forever without awaiting the call.
#[derive(Debug, Default)]
struct Holding {
    inner: Recording,
}

impl StoreWrapper for Holding {
    type Inner = Recording;

    fn wrapped(&self) -> &Recording {
        &self.inner
    }

    async fn around<T: StoreReply>(&self, op: StoreOp, call: impl Future<Output = T> + Send) -> T {
        if op == StoreOp::RemoveAllJobs {
            drop(call);
            return std::future::pending().await;
        }
        call.await
    }
}

#[tokio::test]
async fn a_call_the_hook_does_not_await_never_reaches_the_wrapped_store() {
    let store = Holding::default();
    let refused = tokio::time::timeout(Duration::from_millis(20), store.remove_all_jobs());
    assert!(refused.await.is_err(), "the hook held the call");
    store.get_all_jobs().await.unwrap();
    assert_eq!(store.inner.calls(), ["get_all_jobs"]);
}

#[test]
fn op_names_are_the_method_names_and_distinct() {
    let names: std::collections::HashSet<&str> = StoreOp::ALL.iter().map(|op| op.name()).collect();
    assert_eq!(names.len(), StoreOp::ALL.len());
    assert_eq!(
        StoreOp::AcquireDueJobsPreferring.to_string(),
        "acquire_due_jobs_preferring"
    );
}

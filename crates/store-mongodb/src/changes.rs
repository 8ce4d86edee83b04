//! Change streams: a scheduler sleeping on this store hears at once when a job is
//! added, changed or removed by another process, and when a release it waits for
//! happens (see [`crate::waits`]), where the server offers change streams (a replica
//! set, or a server of the wire protocol that has them). On a standalone server the
//! scheduler keeps looking every `change_poll`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{async_trait, ChangeListener};
use futures_util::TryStreamExt as _;
use mongodb::bson::{doc, Document};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType};
use mongodb::error::ErrorKind as DriverKind;
use mongodb::Collection;

use crate::codec::field;
use crate::link::Conn;
use crate::Link;

/// Server codes meaning "no change streams here": only on replica sets (40573), an
/// unknown pipeline stage (40324), an unknown or unsupported command (59, 115).
const UNSUPPORTED: [i32; 4] = [40573, 40324, 59, 115];

/// Wait before opening a stream again after it failed.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// What one change stream watches and what it does with what it hears.
#[async_trait]
pub(crate) trait Watched: Send + Sync + 'static {
    /// The stream's name in log lines.
    fn what(&self) -> &'static str;
    /// What the store does while the stream is not open, for log lines.
    fn meanwhile(&self) -> &'static str;
    /// The collection watched.
    fn collection(&self, conn: &Conn) -> Collection<Document>;
    /// The events wanted.
    fn pipeline(&self) -> Vec<Document>;
    /// The stream has just opened (`conn` reaches its server).
    async fn opened(&self, conn: &Conn);
    /// The stream ended, or the server has none (`unsupported`).
    fn closed(&self, unsupported: bool);
    /// One event heard.
    fn heard(&self, event: ChangeStreamEvent<Document>);
}

/// The jobs collection's stream: every event calls the scheduler's listener, and
/// each opening and end too (what changed while none was open was not heard).
/// `streaming` says whether it is open: the store declares notifications only then,
/// and the scheduler polls otherwise.
pub(crate) struct JobChanges {
    pub(crate) listener: ChangeListener,
    pub(crate) streaming: Arc<AtomicBool>,
}

/// The events a scheduler must hear on the jobs: inserts, replacements and
/// deletions, and the updates that set a run time or a state or drop a lease, except
/// releases (they carry a release token): a claim, a lease extension or a release
/// wakes nobody, and a release wakes the schedulers waiting for it through their
/// waits (see [`crate::waits`]).
fn job_pipeline() -> Vec<Document> {
    let set = |name: &str| format!("updateDescription.updatedFields.{name}");
    vec![doc! {"$match": {"$or": [
        {"operationType": {"$ne": "update"}},
        {"$and": [
            {set(field::RELEASE_TOKEN): {"$exists": false}},
            {"$or": [
                {set(field::NEXT_RUN_TIME): {"$exists": true}},
                {set(field::STATE): {"$exists": true}},
                {"updateDescription.removedFields": field::LEASE_HOLDER},
            ]},
        ]},
    ]}}]
}

#[async_trait]
impl Watched for JobChanges {
    fn what(&self) -> &'static str {
        "change stream"
    }

    fn meanwhile(&self) -> &'static str {
        "looking every change_poll"
    }

    fn collection(&self, conn: &Conn) -> Collection<Document> {
        conn.jobs.clone()
    }

    fn pipeline(&self) -> Vec<Document> {
        job_pipeline()
    }

    async fn opened(&self, _conn: &Conn) {
        self.streaming.store(true, Ordering::SeqCst);
        (self.listener)();
    }

    fn closed(&self, unsupported: bool) {
        self.streaming.store(false, Ordering::SeqCst);
        if !unsupported {
            (self.listener)();
        }
    }

    fn heard(&self, _event: ChangeStreamEvent<Document>) {
        (self.listener)();
    }
}

/// Watches until aborted, opening the stream again whenever it ends. Returns when the
/// server has no change streams.
pub(crate) async fn watch_loop(link: Arc<Link>, watched: impl Watched) {
    let what = watched.what();
    let mut warned = false;
    loop {
        let opened = match link.conn().await {
            Ok(conn) => watched
                .collection(&conn)
                .watch()
                .pipeline(watched.pipeline())
                .await
                .map(|stream| (stream, conn))
                .map_err(|e| {
                    let unsupported =
                        matches!(&*e.kind, DriverKind::Command(c) if UNSUPPORTED.contains(&c.code));
                    (e.to_string(), unsupported)
                }),
            Err(e) => Err((e.to_string(), false)),
        };
        match opened {
            Ok((mut stream, conn)) => {
                if std::mem::take(&mut warned) {
                    tracing::info!(target: "apscheduler", namespace = %link.namespace, "MongoDB: {what} open again");
                }
                watched.opened(&conn).await;
                let ended = loop {
                    match stream.try_next().await {
                        // The server may keep the cursor open after an invalidate
                        // (SecantusDB does), though nothing more comes on it.
                        Ok(Some(event)) if event.operation_type == OperationType::Invalidate => {
                            break "the collection was dropped or renamed".to_owned()
                        }
                        Ok(Some(event)) => watched.heard(event),
                        Ok(None) => break "the server closed it".to_owned(),
                        Err(e) => break e.to_string(),
                    }
                };
                watched.closed(false);
                let meanwhile = watched.meanwhile();
                apscheduler_core::log_warn!(target: "apscheduler", namespace = %link.namespace, "MongoDB: {what} ended ({ended}); {meanwhile}, and opening it again");
                warned = true;
            }
            Err((e, true)) => {
                watched.closed(true);
                tracing::info!(target: "apscheduler", namespace = %link.namespace, "MongoDB: the server has no change streams ({e}); other processes' changes are seen every change_poll");
                return;
            }
            Err((e, false)) if !warned => {
                warned = true;
                let meanwhile = watched.meanwhile();
                apscheduler_core::log_warn!(target: "apscheduler", namespace = %link.namespace, "MongoDB: cannot open a {what} ({e}); {meanwhile}, and retrying every second");
            }
            Err(_) => {}
        }
        tokio::time::sleep(REOPEN_AFTER).await;
    }
}

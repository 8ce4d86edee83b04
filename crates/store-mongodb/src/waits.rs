//! Waits for releases. A scheduler whose next wake-up is the end of another
//! scheduler's lease records a wait in the collection `<collection>_waiters` (its
//! document `{_id: <store token>, until: <lease end, µs>}`) and watches its own
//! document there. A release adds one to `wakes` in every document whose wait is still
//! ahead: it wakes exactly the schedulers that wait for it, and nobody while nobody
//! waits (releases are left out of the jobs' change stream). The same stream tells each
//! store the ends of the others' waits, so a release made while no wait is ahead costs
//! no write at all.

use std::future::IntoFuture as _;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use apscheduler_core::{async_trait, ChangeListener};
use mongodb::bson::{doc, Bson, Document};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType};
use mongodb::Collection;

use crate::changes::Watched;
use crate::link::Conn;

/// The waits collection is named after the jobs collection with this suffix.
pub(crate) const WAITERS_SUFFIX: &str = "_waiters";
/// The end of a wait, server microseconds.
const UNTIL: &str = "until";
/// Bumped by each release made while the wait is ahead.
const WAKES: &str = "wakes";
/// Waits that ended this long ago (of schedulers that died without removing theirs)
/// are removed by the next wait recorded.
const STALE_AFTER_MICROS: i64 = 3_600_000_000;

/// One store's side of the waits.
pub(crate) struct Waits {
    /// This store's document id (its change token).
    token: Arc<str>,
    /// The end of this store's recorded wait, µs; 0 when none is recorded.
    waiting_until: AtomicI64,
    /// The latest end of any store's wait this store has heard of, µs: `i64::MAX`
    /// while it cannot know (its stream is not open: every release then wakes), and
    /// `i64::MIN` on a server without change streams (nobody could hear a wake).
    latest_until: AtomicI64,
    /// Whether this store's stream on the waits is open: it records waits only then,
    /// since it could not hear them answered otherwise.
    open: AtomicBool,
}

impl Waits {
    pub(crate) fn new(token: Arc<str>) -> Self {
        Waits {
            token,
            waiting_until: AtomicI64::new(0),
            latest_until: AtomicI64::new(i64::MAX),
            open: AtomicBool::new(false),
        }
    }

    /// Records that this store waits for a release until `until` (µs), unless a wait as
    /// long is recorded already. A wait not recorded only costs lateness: the scheduler
    /// wakes at the lease's end, and the scheduler that released the job has planned it
    /// meanwhile.
    pub(crate) async fn wait_until(&self, conn: &Conn, until: i64) {
        if !self.open.load(Ordering::SeqCst) || self.waiting_until.load(Ordering::SeqCst) >= until {
            return;
        }
        let record = conn
            .waiters
            .update_one(doc! {"_id": &*self.token}, doc! {"$set": {UNTIL: until}})
            .upsert(true);
        let purge = conn
            .waiters
            .delete_many(doc! {UNTIL: {"$lt": until - STALE_AFTER_MICROS}});
        match futures_util::future::join(record.into_future(), purge.into_future())
            .await
            .0
        {
            Ok(_) => {
                self.waiting_until.fetch_max(until, Ordering::SeqCst);
            }
            Err(e) => {
                tracing::debug!(target: "apscheduler", "wait for a release not recorded (this scheduler wakes at the lease's end): {e}");
            }
        }
    }

    /// After a release: wakes the schedulers whose wait is still ahead of `now` (µs,
    /// this scheduler's clock; a wait that ends meanwhile needs no wake). A failed wake
    /// is not the release's failure: the waiting schedulers wake at the lease's end.
    pub(crate) async fn wake_waiters(&self, conn: &Conn, now: i64, namespace: &str) {
        if self.latest_until.load(Ordering::SeqCst) <= now {
            return;
        }
        if let Err(e) = conn
            .waiters
            .update_many(doc! {UNTIL: {"$gt": now}}, doc! {"$inc": {WAKES: 1}})
            .await
        {
            tracing::warn!(target: "apscheduler", %namespace, "MongoDB: the schedulers waiting for a release were not woken (they wake at the lease's end): {e}");
        }
    }

    /// Removes this store's wait (at shutdown).
    pub(crate) async fn stop_waiting(&self, conn: &Conn) {
        if self.waiting_until.swap(0, Ordering::SeqCst) == 0 {
            return;
        }
        if let Err(e) = conn.waiters.delete_one(doc! {"_id": &*self.token}).await {
            tracing::debug!(target: "apscheduler", "wait for a release not removed (it ends by itself): {e}");
        }
    }

    fn heard_until(&self, until: Option<i64>) {
        if let Some(until) = until {
            self.latest_until.fetch_max(until, Ordering::SeqCst);
        }
    }
}

fn until_of(document: &Document) -> Option<i64> {
    match document.get(UNTIL)? {
        Bson::Int64(v) => Some(*v),
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Double(v) => Some(*v as i64),
        _ => None,
    }
}

/// The stream on the waits: the wakes of this store's own wait call the scheduler's
/// listener; the waits recorded by any store keep [`Waits::latest_until`].
pub(crate) struct WaitChanges {
    pub(crate) waits: Arc<Waits>,
    pub(crate) listener: ChangeListener,
}

#[async_trait]
impl Watched for WaitChanges {
    fn what(&self) -> &'static str {
        "change stream on the waits for releases"
    }

    fn meanwhile(&self) -> &'static str {
        "waiting for leases to end"
    }

    fn collection(&self, conn: &Conn) -> Collection<Document> {
        conn.waiters.clone()
    }

    fn pipeline(&self) -> Vec<Document> {
        let set = |name: &str| format!("updateDescription.updatedFields.{name}");
        vec![doc! {"$match": {"$or": [
            {"documentKey._id": &*self.waits.token, set(WAKES): {"$exists": true}},
            {"operationType": {"$in": ["insert", "replace"]}},
            {set(UNTIL): {"$exists": true}},
        ]}}]
    }

    async fn opened(&self, conn: &Conn) {
        // The stream is open before this read: a wait recorded after it is heard.
        let latest = conn
            .waiters
            .find_one(doc! {})
            .sort(doc! {UNTIL: -1})
            .projection(doc! {UNTIL: 1})
            .await;
        if let Ok(latest) = latest {
            let until = latest.as_ref().and_then(until_of).unwrap_or(0);
            self.waits.latest_until.store(until, Ordering::SeqCst);
        }
        self.waits.open.store(true, Ordering::SeqCst);
        // This store's wait may have been woken while no stream was open; without a
        // wait there was nothing to miss, and a wake-up would only make the scheduler
        // plan again for nothing.
        if self.waits.waiting_until.load(Ordering::SeqCst) != 0 {
            (self.listener)();
        }
    }

    fn closed(&self, unsupported: bool) {
        self.waits.open.store(false, Ordering::SeqCst);
        let latest = if unsupported { i64::MIN } else { i64::MAX };
        self.waits.latest_until.store(latest, Ordering::SeqCst);
    }

    fn heard(&self, event: ChangeStreamEvent<Document>) {
        match event.operation_type {
            OperationType::Insert | OperationType::Replace => {
                self.waits
                    .heard_until(event.full_document.as_ref().and_then(until_of));
            }
            OperationType::Update => {
                let Some(update) = event.update_description else {
                    return;
                };
                if update.updated_fields.contains_key(WAKES) {
                    (self.listener)();
                }
                self.waits.heard_until(until_of(&update.updated_fields));
            }
            _ => {}
        }
    }
}

//! Change streams: a scheduler sleeping on this store hears at once when a job is
//! added, changed, released or removed by another process, where the server offers
//! change streams (a replica set, or a server of the wire protocol that has them).
//! On a standalone server the scheduler keeps looking every `change_poll`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::ChangeListener;
use futures_util::TryStreamExt as _;
use mongodb::bson::{doc, Document};
use mongodb::change_stream::event::OperationType;
use mongodb::error::ErrorKind as DriverKind;

use crate::codec::field;
use crate::Link;

/// Server codes meaning "no change streams here": only on replica sets (40573), an
/// unknown pipeline stage (40324), an unknown or unsupported command (59, 115).
const UNSUPPORTED: [i32; 4] = [40573, 40324, 59, 115];

/// Wait before opening a stream again after it failed.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// The events a scheduler must hear: inserts, replacements and deletions, and the
/// updates that set a run time or a state or drop a lease (releases, `update_job`).
/// Claims and lease extensions only set lease fields: they are left out, so that a
/// claim does not wake every other node.
fn pipeline() -> Vec<Document> {
    let set = |name: &str| format!("updateDescription.updatedFields.{name}");
    vec![doc! {"$match": {"$or": [
        {"operationType": {"$ne": "update"}},
        {set(field::NEXT_RUN_TIME): {"$exists": true}},
        {set(field::STATE): {"$exists": true}},
        {"updateDescription.removedFields": field::LEASE_HOLDER},
    ]}}]
}

/// Watches the jobs collection until aborted, calling `listener` for each event it
/// hears, and once each time a stream opens or ends (what changed while none was open
/// was not heard). `streaming` says whether a stream is open now: the store declares
/// notifications only then, and the scheduler polls otherwise. Returns when the server
/// has no change streams.
pub(crate) async fn watch_loop(
    link: Arc<Link>,
    listener: ChangeListener,
    streaming: Arc<AtomicBool>,
) {
    let mut warned = false;
    loop {
        let opened = match link.conn().await {
            Ok(conn) => conn.jobs.watch().pipeline(pipeline()).await.map_err(|e| {
                let unsupported =
                    matches!(&*e.kind, DriverKind::Command(c) if UNSUPPORTED.contains(&c.code));
                (e.to_string(), unsupported)
            }),
            Err(e) => Err((e.to_string(), false)),
        };
        match opened {
            Ok(mut stream) => {
                streaming.store(true, Ordering::SeqCst);
                if std::mem::take(&mut warned) {
                    tracing::info!(target: "apscheduler", namespace = %link.namespace, "MongoDB: change stream open again");
                }
                listener();
                let ended = loop {
                    match stream.try_next().await {
                        // The server may keep the cursor open after an invalidate
                        // (SecantusDB does), though nothing more comes on it.
                        Ok(Some(event)) if event.operation_type == OperationType::Invalidate => {
                            break "the collection was dropped or renamed".to_owned()
                        }
                        Ok(Some(_)) => listener(),
                        Ok(None) => break "the server closed it".to_owned(),
                        Err(e) => break e.to_string(),
                    }
                };
                streaming.store(false, Ordering::SeqCst);
                apscheduler_core::log_warn!(target: "apscheduler", namespace = %link.namespace, "MongoDB: change stream ended ({ended}); looking every change_poll, and opening it again");
                warned = true;
                listener();
            }
            Err((e, true)) => {
                tracing::info!(target: "apscheduler", namespace = %link.namespace, "MongoDB: the server has no change streams ({e}); other processes' changes are seen every change_poll");
                return;
            }
            Err((e, false)) if !warned => {
                warned = true;
                apscheduler_core::log_warn!(target: "apscheduler", namespace = %link.namespace, "MongoDB: cannot open a change stream ({e}); looking every change_poll, and retrying every second");
            }
            Err(_) => {}
        }
        tokio::time::sleep(REOPEN_AFTER).await;
    }
}

//! Waits for a release. A scheduler whose next wake-up is the end of a lease (the
//! index's first entry is a job under a lease that ends after its run time) records
//! that it waits, as the ephemeral znode `P/waiters/<session>_<until>`: its session id
//! (hex) and the lease's end (UTC microseconds on the server's clock). Ephemeral, so
//! the wait of a dead session goes with it. A release writes `P/changes` (waking the
//! watchers) only while another session's wait is ahead of the server's time at the
//! release's writes.
//!
//! How a releasing store knows of the waits, at no cost to a release nobody waits
//! for: a persistent recursive watch on `P/waiters`, set (and the folder listed once)
//! at the session's first release. The names hold everything a release needs, so the
//! watch's create and delete events keep the view without reads. The events are taken
//! in after the release's writes have answered: ZooKeeper delivers a watch event
//! before any reply that follows the change that raised it, so a wait recorded before
//! those writes is seen. (One listing per release pass would cost a request on every
//! pass, nobody waiting or not.)

use super::*;

use futures_util::FutureExt;
use zookeeper_client::PersistentWatcher;

const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());

/// A wait's znode name.
fn wait_name(session: i64, until: i64) -> String {
    format!("{:016x}_{until}", session as u64)
}

/// A wait's znode name → its session and until.
fn parse_wait_name(name: &str) -> Option<(i64, i64)> {
    let (session, until) = name.split_once('_')?;
    let session = u64::from_str_radix(session, 16).ok()? as i64;
    Some((session, until.parse().ok()?))
}

/// What a store knows of the waits for a release: its own, and everyone's.
#[derive(Default)]
pub(crate) struct Waits {
    /// This store's recorded wait: its session and until.
    mine: Mutex<Option<(i64, i64)>>,
    /// The index entry `get_next_run_time` last looked at and whether its key is the
    /// end of a lease: a scheduler sleeping until the same entry reads its job once.
    seen: Mutex<Option<(Entry, bool)>>,
    /// The waits of every session, as the watch on `P/waiters` tells them.
    known: Mutex<Option<Known>>,
}

/// The waits seen through one session's watch.
struct Known {
    session: i64,
    watcher: PersistentWatcher,
    /// The session and until of each wait znode.
    waits: HashSet<(i64, i64)>,
    /// Events may have been lost (the connection dropped): list the folder again.
    stale: bool,
    /// The session ended: the watcher is not polled again (it panics then).
    ended: bool,
}

impl Known {
    /// Takes in the events already delivered, without waiting for more.
    fn drain(&mut self, prefix: &str) {
        while !self.ended {
            let Some(event) = self.watcher.changed().now_or_never() else {
                return;
            };
            match event.event_type {
                EventType::Session if event.session_state.is_terminated() => self.ended = true,
                // Disconnected, or back: events in between may be lost.
                EventType::Session => self.stale = true,
                EventType::NodeCreated | EventType::NodeDeleted => {
                    let Some(wait) = event.path.strip_prefix(prefix).and_then(parse_wait_name)
                    else {
                        continue;
                    };
                    if event.event_type == EventType::NodeCreated {
                        self.waits.insert(wait);
                    } else {
                        self.waits.remove(&wait);
                    }
                }
                _ => {}
            }
        }
    }
}

/// What a release must do before it can tell whether someone waits.
enum Need {
    Nothing,
    List,
    Watch,
}

impl ZooKeeperJobStore {
    fn wait_path(&self, session: i64, until: i64) -> String {
        format!("{}/{}", self.layout.waiters, wait_name(session, until))
    }

    /// Called with the index's first entry, `first`, by `get_next_run_time`: when its
    /// key is the end of a lease still ahead, the scheduler sleeps until then, and a
    /// release can bring that forward; records the wait. Only while a watch relays
    /// changes (nobody would hear the release otherwise), and only when no wait as
    /// long is recorded. A failure is logged: the scheduler then wakes at the lease's
    /// end.
    pub(crate) async fn wait_if_leased(&self, c: &Client, first: &Entry) {
        // Due already (on this node's clock): the scheduler does not sleep.
        if first.key <= micros::now(&Utc::now()) {
            return;
        }
        let session = c.session_id().0;
        let mine = *self.waits.mine.lock().expect("waits lock");
        if mine.is_some_and(|(s, until)| s == session && until >= first.key) {
            return;
        }
        if !self.conn.watching(c).await {
            return;
        }
        let seen = self.waits.seen.lock().expect("waits lock").clone();
        let leased = match seen {
            Some((entry, leased)) if entry == *first => leased,
            _ => {
                let leased = match self.read(c, &first.id).await {
                    Ok(Some(Read {
                        record: Ok(record), ..
                    })) => record.header.lease_end() == Some(first.key),
                    // Gone or unreadable: the next claim deals with it.
                    Ok(_) => return,
                    Err(e) => {
                        tracing::debug!(target: "apscheduler", "ZooKeeper job store: wait for a release not recorded (the scheduler wakes at the lease's end): {e}");
                        return;
                    }
                };
                *self.waits.seen.lock().expect("waits lock") = Some((first.clone(), leased));
                leased
            }
        };
        if leased {
            self.record_wait(c, session, first.key).await;
        }
    }

    /// Writes this store's wait until `until` in `session`, replacing its earlier one
    /// in the same `multi`.
    async fn record_wait(&self, c: &Client, session: i64, until: i64) {
        let old = self
            .waits
            .mine
            .lock()
            .expect("waits lock")
            .filter(|(s, _)| *s == session);
        let mut w = c.new_multi_writer();
        let mut prepared = w.add_create(&self.wait_path(session, until), b"", &EPHEMERAL);
        if let (Ok(()), Some((_, old))) = (&prepared, old) {
            prepared = w.add_delete(&self.wait_path(session, old), None);
        }
        let done = match prepared {
            Err(e) => Err(e),
            Ok(()) => match w.commit().await {
                Ok(_) => Ok(()),
                // Written by an earlier call whose reply was lost.
                Err(MultiWriteError::OperationFailed {
                    index: 0,
                    source: ZkError::NodeExists,
                }) => Ok(()),
                Err(
                    MultiWriteError::OperationFailed { source, .. }
                    | MultiWriteError::RequestFailed { source },
                ) => Err(source),
            },
        };
        let mut mine = self.waits.mine.lock().expect("waits lock");
        match done {
            Ok(()) => {
                if mine.is_none_or(|(s, u)| s != session || u < until) {
                    *mine = Some((session, until));
                }
            }
            Err(e) => {
                // Written afresh next time, without the earlier one (which, if it is
                // still there, ends with the session).
                *mine = None;
                tracing::debug!(target: "apscheduler", "ZooKeeper job store: wait for a release not recorded (the scheduler wakes at the lease's end): {e}");
            }
        }
    }

    /// After a release applied something: writes `P/changes`, waking the watchers,
    /// when another session's wait is ahead of `now` (the server's time at the
    /// release, UTC microseconds). This store's own scheduler is not woken for its
    /// own release: it plans again after it. When the waits cannot be known, it
    /// notifies (a spare wake-up costs a pass; a missed one, a late one).
    pub(crate) async fn wake_waiters(&self, c: &Client, now: i64) {
        match self.someone_waits(c, now).await {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => {
                tracing::debug!(target: "apscheduler", "ZooKeeper job store: cannot tell whether a scheduler waits for a release, so notifying: {e}");
            }
        }
        if let Err(e) = c.set_data(&self.layout.changes, b"", None).await {
            tracing::debug!(target: "apscheduler", "ZooKeeper job store: release notification not sent: {e}");
        }
    }

    async fn someone_waits(&self, c: &Client, now: i64) -> Result<bool, Error> {
        let session = c.session_id().0;
        let prefix = format!("{}/", self.layout.waiters);
        let need = {
            let mut known = self.waits.known.lock().expect("waits lock");
            match known.as_mut() {
                Some(k) if k.session == session && !k.ended => {
                    if c.state().is_terminated() {
                        k.ended = true;
                    }
                    k.drain(&prefix);
                    if k.stale {
                        Need::List
                    } else {
                        Need::Nothing
                    }
                }
                _ => Need::Watch,
            }
        };
        if let Need::Watch = need {
            // Set before the listing, so no wait written after it goes unseen.
            let watcher = c
                .watch(&self.layout.waiters, AddWatchMode::PersistentRecursive)
                .await
                .map_err(|e| zk("watch the waits for a release", e))?;
            *self.waits.known.lock().expect("waits lock") = Some(Known {
                session,
                watcher,
                waits: HashSet::new(),
                stale: true,
                ended: false,
            });
        }
        if !matches!(need, Need::Nothing) {
            let names = match c.list_children(&self.layout.waiters).await {
                Ok(names) => names,
                Err(ZkError::NoNode) => Vec::new(),
                Err(e) => return Err(zk("list the waits for a release", e)),
            };
            let mut known = self.waits.known.lock().expect("waits lock");
            if let Some(k) = known.as_mut().filter(|k| k.session == session) {
                k.waits = names.iter().filter_map(|n| parse_wait_name(n)).collect();
                k.stale = false;
                // Events raised before the listing end as it says (a wait's name is
                // never reused), so taking them in after it is right.
                k.drain(&prefix);
            }
        }
        let known = self.waits.known.lock().expect("waits lock");
        Ok(known.as_ref().is_some_and(|k| {
            k.waits
                .iter()
                .any(|&(s, until)| s != session && until > now)
        }))
    }

    /// Removes this store's wait (at shutdown): left behind, it would make releases
    /// notify for nothing until the session's end.
    pub(crate) async fn stop_waiting(&self) {
        let mine = self.waits.mine.lock().expect("waits lock").take();
        *self.waits.known.lock().expect("waits lock") = None;
        *self.waits.seen.lock().expect("waits lock") = None;
        let Some((session, until)) = mine else {
            return;
        };
        let Some(c) = self.conn.current().await else {
            return;
        };
        if c.session_id().0 != session {
            return; // it ended with its session
        }
        match c.delete(&self.wait_path(session, until), None).await {
            Ok(()) | Err(ZkError::NoNode) => {}
            Err(e) => {
                tracing::debug!(target: "apscheduler", "ZooKeeper job store: wait for a release not removed (it ends with the session): {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_names_round_trip() {
        for (session, until) in [
            (0, 0),
            (1, 1_700_000_000_000_000),
            (-1, -5),
            (i64::MIN, i64::MAX),
        ] {
            let name = wait_name(session, until);
            assert_eq!(parse_wait_name(&name), Some((session, until)), "{name}");
        }
        assert_eq!(parse_wait_name("zz_1"), None);
        assert_eq!(parse_wait_name("1"), None);
    }
}

//! The ZooKeeper session: connecting (and laying out the root path) on first use and
//! after an expired session, and the watch that wakes the scheduler.

use super::*;

use std::time::Instant;

use apscheduler_core::reach::{self, Cause};

use crate::error::{invalid, is_unavailable};

/// ZooKeeper's client port when a host names none.
const DEFAULT_PORT: u16 = 2181;

/// The hosts and ports of a connection string (`h1:2181,h2:2181/chroot`).
fn ensemble(hosts: &str) -> Vec<(String, u16)> {
    let list = hosts.split('/').next().unwrap_or_default();
    list.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| match h.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => (
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                port.parse().unwrap_or(DEFAULT_PORT),
            ),
            _ => (h.to_owned(), DEFAULT_PORT),
        })
        .collect()
}

/// Opens (and closes) a TCP connection to one of `hosts`, on a blocking thread (name
/// resolution is the system's): a refused connection or an unknown host is known at
/// once, with its cause, where the client would report only a lost connection.
async fn probe(hosts: &[(String, u16)], started: Instant, timeout: Duration) -> Result<(), Error> {
    let owned = hosts.to_vec();
    tokio::task::spawn_blocking(move || reach::probe_any_tcp("ZooKeeper", &owned, started, timeout))
        .await
        .unwrap_or(Ok(()))
}

/// What the store and its run history share: the ensemble, the session (opened on first
/// use, replaced when it ends) and the change listener.
pub(crate) struct Connection {
    pub(crate) hosts: String,
    pub(crate) layout: Layout,
    pub(crate) session_timeout: Duration,
    pub(crate) connection_timeout: Duration,
    pub(crate) session: tokio::sync::Mutex<Option<Session>>,
    pub(crate) listener: Mutex<Option<ChangeListener>>,
}

/// A live session and the task that relays its watch.
pub(crate) struct Session {
    pub(crate) client: Client,
    pub(crate) watch: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(task) = self.watch.take() {
            task.abort();
        }
    }
}

impl ZooKeeperJobStore {
    /// The live client of the shared session (see [`Connection::client`]).
    pub(crate) async fn client(&self) -> Result<Client, Error> {
        self.conn.client().await
    }
}

impl Connection {
    /// The live client, connecting (and laying out the root path) when there is none
    /// or its session has ended.
    pub(crate) async fn client(&self) -> Result<Client, Error> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref() {
            if !session.client.state().is_terminated() {
                return Ok(session.client.clone());
            }
            log_warn!(
                "ZooKeeper session to {} ended ({:?}); opening a new one",
                self.hosts,
                session.client.state()
            );
        }
        *slot = None;
        let started = Instant::now();
        let timeout = self.connection_timeout;
        let hosts = ensemble(&self.hosts);
        let address = hosts
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        probe(&hosts, started, timeout).await?;
        let connecting = Client::connector()
            .with_session_timeout(self.session_timeout)
            .with_connection_timeout(timeout)
            .with_fail_eagerly()
            .connect(&self.hosts);
        let client = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(ZkError::Timeout)) | Err(_) => {
                return Err(reach::unreachable(
                    "ZooKeeper",
                    &address,
                    &Cause::TimedOut(timeout),
                    started.elapsed(),
                    timeout,
                ))
            }
            Ok(Err(e)) if is_unavailable(&e) => {
                // The hosts took the TCP connection (the probe): a client that gave up
                // on them at its time-out ("no available hosts") got no answer.
                let cause = if started.elapsed() + Duration::from_millis(100) >= timeout {
                    Cause::TimedOut(timeout)
                } else {
                    Cause::Other(format!("no session ({e})"))
                };
                return Err(reach::unreachable(
                    "ZooKeeper",
                    &address,
                    &cause,
                    started.elapsed(),
                    timeout,
                )
                .with_source(e));
            }
            Ok(Err(e)) => return Err(zk("connect", e)),
        };
        self.check_chroot(&client).await?;
        for path in [
            &self.layout.jobs,
            &self.layout.runs,
            &self.layout.run_groups,
        ] {
            client
                .mkdir(path, &PERSISTENT)
                .await
                .map_err(|e| zk("create the root path", e))?;
        }
        for path in [
            &self.layout.changes,
            &self.layout.clock,
            &self.layout.waiters,
        ] {
            match client.create(path, b"", &PERSISTENT).await {
                Ok(_) | Err(ZkError::NodeExists) => {}
                Err(e) => return Err(zk("create the root path", e)),
            }
        }
        let watch = self.start_watch(&client).await?;
        *slot = Some(Session {
            client: client.clone(),
            watch,
        });
        drop(slot);
        // Whatever changed while there was no session raised no event.
        self.notify();
        Ok(client)
    }

    /// Fails with `InvalidInput` naming the chroot of the connect string
    /// (`h1:2181,h2:2181/chroot`) when it does not exist: ZooKeeper would refuse every
    /// write under it with "no node", which the store would otherwise report on each
    /// call as a failed call, never saying why.
    async fn check_chroot(&self, client: &Client) -> Result<(), Error> {
        let Some((_, chroot)) = self.hosts.split_once('/') else {
            return Ok(());
        };
        let chroot = chroot.trim_end_matches('/');
        if chroot.is_empty() {
            return Ok(());
        }
        // The chrooted client sees the chroot itself as `/`.
        match client.check_stat("/").await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(invalid(
                "hosts",
                &self.hosts,
                &format!(
                    "the chroot /{chroot} does not exist on the ZooKeeper ensemble; create it \
                     (zkCli.sh create /{chroot}) or drop it from the connect string"
                ),
            )),
            Err(e) => Err(zk("check the chroot", e)),
        }
    }

    /// Watches `P/changes` for the listener, if one is set and a runtime can run it.
    pub(crate) async fn start_watch(
        &self,
        client: &Client,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, Error> {
        let Some(listener) = self.listener.lock().expect("listener lock").clone() else {
            return Ok(None);
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Ok(None);
        };
        let mut watcher = client
            .watch(&self.layout.changes, AddWatchMode::Persistent)
            .await
            .map_err(|e| zk("watch for changes", e))?;
        let state = client.state_watcher();
        Ok(Some(runtime.spawn(async move {
            loop {
                // `changed` panics once the session has ended: check first.
                if state.peek_state().is_terminated() {
                    listener();
                    return;
                }
                let event = watcher.changed().await;
                match event.event_type {
                    EventType::Session => {
                        if event.session_state.is_terminated() {
                            listener();
                            return;
                        }
                        if event.session_state == SessionState::SyncConnected {
                            // Events while disconnected may be lost: re-plan.
                            listener();
                        }
                    }
                    _ => listener(),
                }
            }
        })))
    }

    /// Whether `client`'s session relays changes to a listener (a watch on `P/changes`
    /// is running): only then can a notification wake this store's scheduler.
    pub(crate) async fn watching(&self, client: &Client) -> bool {
        let slot = self.session.lock().await;
        slot.as_ref().is_some_and(|s| {
            s.client.session_id() == client.session_id()
                && s.watch.as_ref().is_some_and(|w| !w.is_finished())
        })
    }

    /// The client of the current session, if there is one (without connecting).
    pub(crate) async fn current(&self) -> Option<Client> {
        let slot = self.session.lock().await;
        slot.as_ref()
            .filter(|s| !s.client.state().is_terminated())
            .map(|s| s.client.clone())
    }

    pub(crate) fn notify(&self) {
        let listener = self.listener.lock().expect("listener lock").clone();
        if let Some(listener) = listener {
            listener();
        }
    }
}

impl ZooKeeperJobStore {
    /// The ZooKeeper leader's time, UTC microseconds: the modification time it gives a
    /// write to `P/clock`. Leases are timed by it, so that node clocks do not matter;
    /// read before a claim's writes, it is never later than the time those writes are
    /// made, so a lease judged expired by it has expired on the server too.
    pub(crate) async fn server_time(&self, client: &Client) -> Result<i64, Error> {
        let stat = match client.set_data(&self.layout.clock, b"", None).await {
            Err(ZkError::NoNode) => {
                // Removed by hand since the session began: lay it out again.
                match client.create(&self.layout.clock, b"", &PERSISTENT).await {
                    Ok(_) | Err(ZkError::NodeExists) => {}
                    Err(e) => return Err(zk("read the server's time", e)),
                }
                client.set_data(&self.layout.clock, b"", None).await
            }
            other => other,
        }
        .map_err(|e| zk("read the server's time", e))?;
        Ok(stat.mtime.saturating_mul(1000))
    }
}

//! The one connection a store and its run history share: connected lazily, re-used by
//! every call, re-established by the connection manager after a drop. Behind Redis
//! Sentinel the connection goes to the current primary: it is dropped on every error
//! that may mean the primary moved, and the next call asks the Sentinels again. On a
//! Redis Cluster it is the `redis` crate's cluster connection, which routes each
//! command to the node serving its key's slot and follows failovers itself.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use apscheduler_core::reach::{self, Cause};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, Cmd, ConnectionAddr, FromRedisValue, Pipeline, RedisFuture, RedisResult,
    ScriptInvocation, Value,
};

use crate::cluster::ClusterTarget;
use crate::error::{Context, StoreError};
use crate::sentinel::SentinelTarget;

/// An open connection: to one server, or to a cluster.
#[derive(Clone)]
pub(crate) enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Handle::Single(c) => c.req_packed_command(cmd),
            Handle::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::Single(c) => c.req_packed_commands(cmd, offset, count),
            Handle::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::Single(c) => c.get_db(),
            Handle::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the store's server is.
pub(crate) enum Target {
    /// One server (or a primary that never moves).
    Direct(Client),
    /// The primary the Sentinels name, looked up at each (re)connection.
    Sentinel(SentinelTarget),
    /// The nodes of a Redis Cluster.
    Cluster(ClusterTarget),
}

/// A Redis server and the (lazily opened) connection to it.
pub(crate) struct Connection {
    target: Target,
    config: ConnectionManagerConfig,
    /// Bounds the first connection (the connection manager's retries included).
    connect_timeout: Duration,
    conn: Mutex<Option<Handle>>,
    /// Serializes connection attempts.
    connecting: tokio::sync::Mutex<()>,
}

impl Connection {
    /// Nothing connects yet.
    pub(crate) fn new(
        target: Target,
        config: ConnectionManagerConfig,
        connect_timeout: Duration,
    ) -> Self {
        Connection {
            target,
            config,
            connect_timeout,
            conn: std::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// A client for the server (the current primary, behind Sentinel; one of the
    /// named nodes, a different one each time, on a cluster), for connections of
    /// their own (the change subscription).
    pub(crate) async fn client(&self) -> Result<Client, StoreError> {
        match &self.target {
            Target::Direct(client) => Ok(client.clone()),
            Target::Sentinel(sentinel) => sentinel.primary(self.connect_timeout).await,
            Target::Cluster(cluster) => cluster.any_node(),
        }
    }

    /// Whether the store is on a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// On a cluster, the address of the primary serving `key`'s slot (asked of the
    /// named nodes, within the connect time-out), for messages; `None` elsewhere or
    /// when no node answers.
    pub(crate) async fn node_serving(&self, key: &str) -> Option<String> {
        match &self.target {
            Target::Cluster(cluster) => cluster.node_serving(key, self.connect_timeout).await,
            _ => None,
        }
    }

    /// Whether the server is the primary the Sentinels name (which can move).
    pub(crate) fn follows_sentinel(&self) -> bool {
        matches!(self.target, Target::Sentinel(_))
    }

    /// The server's address, or the Sentinels' (for `Debug`).
    pub(crate) fn describe(&self) -> String {
        match &self.target {
            Target::Direct(_) => self.address(),
            Target::Sentinel(sentinel) => sentinel.describe(),
            Target::Cluster(cluster) => cluster.describe(),
        }
    }

    fn addr(client: &Client) -> &ConnectionAddr {
        client.get_connection_info().addr()
    }

    /// The server's host name (or socket path), for messages.
    fn host(&self, client: &Client) -> String {
        match Self::addr(client) {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
            ConnectionAddr::Unix(path) => path.display().to_string(),
            other => other.to_string(),
        }
    }

    /// The server's address (`host:port`, or the socket path), for messages.
    fn address(&self) -> String {
        match &self.target {
            Target::Direct(client) => Self::address_of(client),
            Target::Sentinel(sentinel) => sentinel.describe(),
            Target::Cluster(cluster) => cluster.describe(),
        }
    }

    fn address_of(client: &Client) -> String {
        match Self::addr(client) {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                format!("{host}:{port}")
            }
            ConnectionAddr::Unix(path) => path.display().to_string(),
            other => other.to_string(),
        }
    }

    /// Whether a connection is open.
    pub(crate) fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// Drops the connection; the next call reconnects.
    pub(crate) fn disconnect(&self) {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn current(&self) -> Option<Handle> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The connection, connecting first when there is none.
    async fn get(&self) -> Result<Handle, StoreError> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        if let Target::Cluster(cluster) = &self.target {
            let conn = Handle::Cluster(cluster.connect(self.connect_timeout).await?);
            *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
            return Ok(conn);
        }
        let started = Instant::now();
        let client = self.client().await?;
        let timeout = self.connect_timeout.saturating_sub(started.elapsed());
        let connecting = ConnectionManager::new_with_config(client.clone(), self.config.clone());
        let conn = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() => {
                let cause = if e.is_timeout() {
                    Cause::TimedOut(self.connect_timeout)
                } else {
                    Cause::of_error(&e, &self.host(&client))
                };
                return Err(StoreError::Unreachable(
                    reach::unreachable(
                        "Redis",
                        &Self::address_of(&client),
                        &cause,
                        started.elapsed(),
                        self.connect_timeout,
                    )
                    .with_source(e),
                ));
            }
            Ok(Err(e)) => return Err(StoreError::redis("connect", e)),
            Err(_) => {
                return Err(StoreError::Unreachable(reach::unreachable(
                    "Redis",
                    &Self::address_of(&client),
                    &Cause::TimedOut(self.connect_timeout),
                    started.elapsed(),
                    self.connect_timeout,
                )))
            }
        };
        let conn = Handle::Single(conn);
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `op` on the connection. When it fails because the connection could not be
    /// re-established (refused: nothing was sent, so nothing ran), it tries once more:
    /// the failure has made the connection manager reconnect, and after an outage the
    /// server may be back.
    async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: Fn(Handle) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.get().await?;
        let result = match op(conn.clone()).await {
            Err(e) if e.is_connection_refusal() => match &self.target {
                Target::Direct(_) => op(conn).await,
                // The cluster connection has retried on other nodes already.
                Target::Cluster(_) => Err(e),
                // The primary may have moved: ask the Sentinels again.
                Target::Sentinel(_) => {
                    self.disconnect();
                    op(self.get().await?).await
                }
            },
            result => result,
        };
        let result = result.context(what);
        if matches!(self.target, Target::Sentinel(_))
            && matches!(result, Err(StoreError::Unavailable { .. }))
        {
            // A dropped or refused connection, a time-out, `READONLY` (the old primary,
            // back as a replica): the next call asks the Sentinels where the primary is.
            self.disconnect();
        }
        result
    }

    /// One command.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &Cmd,
    ) -> Result<T, StoreError> {
        self.run(
            what,
            |mut conn| async move { cmd.query_async(&mut conn).await },
        )
        .await
    }

    /// A pipeline (one round trip).
    pub(crate) async fn pipeline<T: FromRedisValue>(
        &self,
        what: &'static str,
        pipe: &Pipeline,
    ) -> Result<T, StoreError> {
        self.run(
            what,
            |mut conn| async move { pipe.query_async(&mut conn).await },
        )
        .await
    }

    /// A script call (loaded on first use).
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        what: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.run(what, |mut conn| async move {
            invocation.invoke_async(&mut conn).await
        })
        .await
    }
}

//! Building a store: the builder's settings, URL parsing (plain or Sentinel, with the
//! URL's options) and the connection they make.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::codec::StateFormat;
use apscheduler_core::Error;
use redis::aio::ConnectionManagerConfig;
use redis::Client;

use crate::conn::{self, Connection};
use crate::error::StoreError;
use crate::keys::{validate_prefix, Partitions};
use crate::{cluster, durability, sentinel, RedisJobStore, RedisRunHistory};
use crate::{DEFAULT_MAX_STATE_BYTES, DEFAULT_PREFIX};

/// Configures a [`RedisJobStore`]; from [`RedisJobStore::builder`].
///
/// # URLs, Sentinel and replicas
/// - `redis://[[user]:password@]host[:port][/db][?options]` (and `rediss://`,
///   `redis+unix://`): one server.
/// - `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master_name[/db][?options]`:
///   the primary that Redis Sentinels (port 26379 by default) monitor under
///   `master_name`; user and password are the primary's. The store asks the Sentinels
///   for the primary at its first call and again after every error that may mean the
///   primary moved (a dropped or refused connection, a time-out, `READONLY`); the
///   change subscription asks again each time it re-subscribes. A master name that no
///   answering Sentinel monitors is `InvalidInput`; no Sentinel answering, or none
///   naming a primary that answers as one, is `Unavailable` within
///   [`connect_timeout`](crate::RedisJobStoreBuilder::connect_timeout).
/// - `redis+cluster://[[user]:password@]host[:port][,host[:port]...][/][?options]`:
///   a Redis Cluster, through any of the named nodes (port 6379 by default; naming
///   more than one lets the store start while one is down). The jobs are spread over
///   [`partitions`](crate::RedisJobStoreBuilder::partitions) (URL option
///   `partitions=N`, default 16), each under one hash tag (see
///   [`KeyLayout`](crate::KeyLayout)); the run history's keys share the hash tag
///   `{<prefix>h}`. The `redis` crate's cluster client routes every command to the
///   node serving its slot and follows failovers and resharding. At the first
///   connection every named node is asked `CLUSTER NODES`: a node not in cluster
///   mode, or two nodes of different clusters, is `InvalidInput` naming them; no
///   named node answering is `Unavailable` with the cause, within
///   [`connect_timeout`](crate::RedisJobStoreBuilder::connect_timeout). The prefix
///   may not contain `{` or `}` there.
/// - Options in any of these URLs: `prefix`
///   ([`RedisJobStoreBuilder::prefix`](crate::RedisJobStoreBuilder::prefix)),
///   `wait_replicas` and `wait_timeout_ms`
///   ([`RedisJobStoreBuilder::wait_replicas`](crate::RedisJobStoreBuilder::wait_replicas));
///   in a Sentinel URL also `sentinel_username` and `sentinel_password`, the Sentinels'
///   own credentials; in a cluster URL also `partitions` (other options are refused
///   in both; a `redis://` URL's other options go to the `redis` crate).
///
/// Redis replicates asynchronously: a failover loses the writes the old primary had
/// not yet sent to the promoted replica (on a cluster: each shard's primary, to its
/// replica). A lost claim starts nothing (its release
/// finds no lease); a lost release could let its fire time run again after the lease,
/// unless [`wait_replicas`](crate::RedisJobStoreBuilder::wait_replicas) makes every release
/// wait for a replica.
#[derive(Debug, Clone)]
pub struct RedisJobStoreBuilder {
    url: String,
    /// `None`: the URL's `prefix=`, else [`DEFAULT_PREFIX`].
    prefix: Option<String>,
    max_state_bytes: usize,
    state_format: StateFormat,
    connection_timeout: Duration,
    response_timeout: Duration,
    reconnect_retries: usize,
    /// `None`: the URL's `wait_replicas=`, else no waiting.
    wait: Option<durability::WaitFor>,
    /// `None`: the URL's `partitions=`, else [`cluster::DEFAULT_PARTITIONS`].
    partitions: Option<usize>,
}

impl RedisJobStoreBuilder {
    /// The prefix of every key (default: the URL's `prefix=` option, else
    /// [`DEFAULT_PREFIX`], `apscheduler.`); see [`validate_prefix`] for what is allowed.
    /// A URL's `prefix=` that differs from this one fails [`build`](Self::build).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The largest encoded job state, in bytes, the store writes or reads (default
    /// [`DEFAULT_MAX_STATE_BYTES`], 1 MiB). Larger jobs are refused with
    /// `Serialization`; larger stored states are treated as corrupt.
    pub fn max_state_bytes(mut self, bytes: usize) -> Self {
        self.max_state_bytes = bytes;
        self
    }

    /// The format new job states are written in (default JSON; see
    /// [`apscheduler_core::codec`]). States in either format are read, so switching is
    /// not a migration.
    pub fn state_format(mut self, format: StateFormat) -> Self {
        self.state_format = format;
        self
    }

    /// How long connecting may take (default 3 s): the first connection, retries
    /// included, fails after this long with `Unavailable` naming the address and the
    /// cause ("cannot reach the Redis store at 127.0.0.1:6379: connection refused
    /// ..."); each later reconnection attempt is bounded by it too. The same setting
    /// as [`connection_timeout`](Self::connection_timeout), under the name every
    /// store uses.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// [`connect_timeout`](Self::connect_timeout), under its earlier name.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long to wait for the answer to one command or script (default 10 s); a
    /// command that times out is `Unavailable`.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How many times one (re)connection retries, with exponential backoff from 100 ms,
    /// before the calls waiting for it fail as `Unavailable` (default 1). The scheduler
    /// engine retries a failing store itself, so this stays small.
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// After each write that changes jobs (adds, updates, removals, releases), waits
    /// until `replicas` replicas have it (`WAIT`), at most `timeout`; fewer in time
    /// fail the call with `Unavailable` ("applied on the primary but confirmed by 0 of
    /// 1 replicas ..."): the write stands on the primary but a failover could undo it.
    /// The scheduler starts a fire time only after its release is confirmed, so with
    /// a replica this keeps a failover from starting a fire time twice. Claims are not
    /// waited for (a lost claim starts nothing). 0 turns it off (the default; URL
    /// options `wait_replicas=N&wait_timeout_ms=M`, default time-out 100 ms).
    pub fn wait_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait = Some(durability::WaitFor { replicas, timeout });
        self
    }

    /// On a Redis Cluster (`redis+cluster://`), how many partitions the jobs are
    /// spread over, 1 to 1024 (default: the URL's `partitions=` option, else 16). Each
    /// partition is one hash slot, so this bounds how many nodes share the jobs'
    /// load; a claim visits partitions until it has its batch, so more partitions
    /// cost more calls when few jobs are due. Every store on the prefix must use the
    /// same number (a job's partition is a hash of its id modulo the number). A
    /// number that differs from the URL's fails [`build`](Self::build); outside a
    /// cluster it is refused.
    pub fn partitions(mut self, partitions: usize) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Builds the store. Nothing connects yet.
    ///
    /// # Errors
    /// `InvalidInput` for a URL that cannot be parsed, an invalid prefix, or a URL
    /// `prefix=` (or `partitions=`) that differs from [`prefix`](Self::prefix) (or
    /// [`partitions`](Self::partitions)).
    pub fn build(self) -> Result<RedisJobStore, Error> {
        let mut partitions = None;
        let (target, options) = if self.url.starts_with(cluster::SCHEME) {
            let (url, options) = cluster::ClusterUrl::parse(&self.url)?;
            partitions = Some(match (self.partitions, url.partitions) {
                (Some(set), Some(in_url)) if set != in_url => {
                    return Err(StoreError::InvalidInput(format!(
                        "invalid value for field 'partitions': {set} differs from the URL's \
                         partitions={in_url} (give the number once)"
                    ))
                    .into())
                }
                (Some(n), _) | (None, Some(n)) => cluster::check_partitions(n).map_err(|why| {
                    StoreError::InvalidInput(format!("invalid value for field 'partitions': {why}"))
                })?,
                (None, None) => cluster::DEFAULT_PARTITIONS,
            });
            let target = cluster::ClusterTarget::new(
                url,
                self.connection_timeout,
                self.response_timeout,
                self.reconnect_retries,
            )?;
            (conn::Target::Cluster(target), options)
        } else if self.url.starts_with(sentinel::SCHEME) {
            let (url, options) = sentinel::SentinelUrl::parse(&self.url)?;
            (
                conn::Target::Sentinel(sentinel::SentinelTarget::new(url)?),
                options,
            )
        } else {
            let (url, options) = durability::take_options(&self.url)?;
            let client =
                Client::open(url.as_str()).map_err(|source| StoreError::InvalidUrl { source })?;
            (conn::Target::Direct(client), options)
        };
        let wait = match self.wait {
            Some(wait) => Some(wait),
            None => options.wait().map_err(|why| {
                StoreError::InvalidInput(format!("invalid value for field 'url': {why}"))
            })?,
        }
        .filter(|w| w.replicas > 0);
        let prefix = match (self.prefix, options.prefix) {
            (Some(set), Some(in_url)) if set != in_url => {
                return Err(StoreError::InvalidInput(format!(
                    "invalid value for field 'prefix': {set:?} differs from the URL's \
                     prefix={in_url:?} (give the prefix once)"
                ))
                .into())
            }
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => DEFAULT_PREFIX.to_owned(),
        };
        validate_prefix(&prefix)?;
        if let Some(n) = self.partitions.filter(|_| partitions.is_none()) {
            return Err(StoreError::InvalidInput(format!(
                "invalid value for field 'partitions': {n}: partitions are for a Redis \
                 Cluster (a redis+cluster:// URL); one server keeps every job under one \
                 set of keys"
            ))
            .into());
        }
        if partitions.is_some() {
            if let Some(c) = prefix.chars().find(|c| *c == '{' || *c == '}') {
                return Err(StoreError::InvalidInput(format!(
                    "invalid value for field 'prefix': {prefix:?}: it contains the character \
                     {c:?}, which a Redis Cluster hash tag cannot hold (the store puts the \
                     prefix inside one: {{<prefix>p0}})"
                ))
                .into());
            }
        }
        let (parts, history_prefix) = match partitions {
            Some(n) => (Partitions::cluster(&prefix, n), format!("{{{prefix}h}}")),
            None => (Partitions::single(&prefix), prefix.clone()),
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(self.reconnect_retries);
        let conn = Arc::new(Connection::new(target, config, self.connection_timeout));
        Ok(RedisJobStore {
            history: Arc::new(RedisRunHistory::new(conn.clone(), &history_prefix)),
            conn,
            health: Arc::new(crate::shards::Health::new(parts.all().len())),
            parts,
            prefix,
            max_state_bytes: self.max_state_bytes,
            state_format: self.state_format,
            wait,
            changes: apscheduler_core::ChangeChannel::new(uuid::Uuid::new_v4().to_string()),
            waiting_until: std::sync::atomic::AtomicI64::new(0),
        })
    }
}

impl RedisJobStore {
    /// A store at `url` (`redis://[:password@]host[:port][/db]`, `redis+unix://`,
    /// `redis+sentinel://`, `redis+cluster://`; see [`RedisJobStoreBuilder`])
    /// with the default prefix and settings. Nothing connects yet.
    ///
    /// # Errors
    /// `InvalidInput` for a URL that cannot be parsed.
    pub fn new(url: &str) -> Result<Self, Error> {
        Self::builder(url).build()
    }

    /// Configures a store at `url`.
    pub fn builder(url: impl Into<String>) -> RedisJobStoreBuilder {
        RedisJobStoreBuilder {
            url: url.into(),
            prefix: None,
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
            state_format: StateFormat::Json,
            connection_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(10),
            reconnect_retries: 1,
            wait: None,
            partitions: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_given_twice_must_agree() {
        let err = RedisJobStore::builder("redis://127.0.0.1:6379/?prefix=a.")
            .prefix("b.")
            .build()
            .expect_err("two prefixes");
        assert_eq!(err.kind(), apscheduler_core::ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains(
                "invalid value for field 'prefix': \"b.\" differs from the URL's \
                 prefix=\"a.\" (give the prefix once)"
            ),
            "{err}"
        );
        let same = RedisJobStore::builder("redis://127.0.0.1:6379/?prefix=a.")
            .prefix("a.")
            .build()
            .expect("the same prefix twice");
        assert_eq!(same.prefix(), "a.");
        let from_url = RedisJobStore::new("redis://127.0.0.1:6379/?prefix=a.").unwrap();
        assert_eq!(from_url.prefix(), "a.");
        assert_eq!(from_url.keys().jobs, "a.jobs");
    }
}

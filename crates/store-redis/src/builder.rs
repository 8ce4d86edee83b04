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
use crate::keys::{validate_prefix, KeyLayout};
use crate::{durability, sentinel, RedisJobStore, RedisRunHistory};
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
/// - Options in either URL: `prefix`
///   ([`RedisJobStoreBuilder::prefix`](crate::RedisJobStoreBuilder::prefix)),
///   `wait_replicas` and `wait_timeout_ms`
///   ([`RedisJobStoreBuilder::wait_replicas`](crate::RedisJobStoreBuilder::wait_replicas));
///   in a Sentinel URL also `sentinel_username` and `sentinel_password`, the Sentinels'
///   own credentials (other options are refused there; a `redis://` URL's other options
///   go to the `redis` crate).
///
/// Redis replicates asynchronously: a failover loses the writes the old primary had
/// not yet sent to the promoted replica. A lost claim starts nothing (its release
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

    /// Builds the store. Nothing connects yet.
    ///
    /// # Errors
    /// `InvalidInput` for a URL that cannot be parsed, an invalid prefix, or a URL
    /// `prefix=` that differs from [`prefix`](Self::prefix).
    pub fn build(self) -> Result<RedisJobStore, Error> {
        let (target, options) = if self.url.starts_with(sentinel::SCHEME) {
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
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(self.reconnect_retries);
        let conn = Arc::new(Connection::new(target, config, self.connection_timeout));
        Ok(RedisJobStore {
            history: Arc::new(RedisRunHistory::new(conn.clone(), &prefix)),
            conn,
            keys: KeyLayout::new(&prefix),
            prefix,
            max_state_bytes: self.max_state_bytes,
            state_format: self.state_format,
            wait,
            changes: apscheduler_core::ChangeChannel::new(uuid::Uuid::new_v4().to_string()),
        })
    }
}

impl RedisJobStore {
    /// A store at `url` (`redis://[:password@]host[:port][/db]`, or `redis+unix://`)
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

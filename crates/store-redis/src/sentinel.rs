//! Redis Sentinel: the `redis+sentinel://` URL and finding the current primary.
//!
//! The store asks the Sentinels for the primary (through the `redis` crate's
//! [`Sentinel`](redis::sentinel::Sentinel), which also checks that the node it names
//! answers `ROLE` as a primary) whenever it has no connection, and drops its connection
//! on every error that may mean the primary moved, so the next call asks again.

use std::time::{Duration, Instant};

use apscheduler_core::reach::{self, Cause};
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{Client, RedisConnectionInfo, RedisError};

use crate::durability::UrlOptions;
use crate::error::StoreError;

/// The scheme of a Sentinel URL.
pub(crate) const SCHEME: &str = "redis+sentinel://";

/// The port of a Sentinel named without one.
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// A parsed `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db][?options]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// The Sentinels, `(host, port)`, in the order given.
    pub(crate) sentinels: Vec<(String, u16)>,
    /// The name the Sentinels monitor the primary under.
    pub(crate) master: String,
    /// The database number on the primary.
    pub(crate) db: i64,
    /// The primary's (and replicas') user and password, from the URL's user info.
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// The Sentinels' own user and password (`sentinel_username`, `sentinel_password`).
    pub(crate) sentinel_username: Option<String>,
    pub(crate) sentinel_password: Option<String>,
}

fn invalid(url: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidInput(format!(
        "invalid value for field 'url': {:?}: {why} (expected \
         redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master_name[/db][?prefix=...])",
        redact(url)
    ))
}

/// The URL with its passwords replaced by `***`, for messages.
fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(rest) = url.strip_prefix(SCHEME) {
        if let Some(at) = rest.find('@') {
            if let Some(colon) = rest[..at].find(':') {
                out = format!("{SCHEME}{}:***{}", &rest[..colon], &rest[at..]);
            }
        }
    }
    if let Some(i) = out.find("sentinel_password=") {
        let start = i + "sentinel_password=".len();
        let end = out[start..].find('&').map_or(out.len(), |e| start + e);
        out.replace_range(start..end, "***");
    }
    out
}

fn decode(url: &str, what: &str, text: &str) -> Result<String, StoreError> {
    crate::hosts::decode(text, what, &|why| invalid(url, why))
}

impl SentinelUrl {
    /// Parses a Sentinel URL; the store's options come back separately. Unknown
    /// options are refused.
    pub(crate) fn parse(url: &str) -> Result<(SentinelUrl, UrlOptions), StoreError> {
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid(url, "it does not start with redis+sentinel://"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid(url, "it names no master (…/master_name)"))?;
        let crate::hosts::Authority {
            username,
            password,
            hosts: sentinels,
        } = crate::hosts::parse_authority(
            authority,
            DEFAULT_SENTINEL_PORT,
            "a Sentinel's",
            &|why| invalid(url, why),
        )?;
        let mut segments = path.split('/');
        let master = decode(url, "master name", segments.next().unwrap_or(""))?;
        if master.is_empty() {
            return Err(invalid(url, "the master name is empty"));
        }
        let db = match segments.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| invalid(url, format!("the database {db:?} is not a number")))?,
        };
        if let Some(extra) = segments.find(|s| !s.is_empty()) {
            return Err(invalid(url, format!("unexpected path segment {extra:?}")));
        }
        let mut parsed = SentinelUrl {
            sentinels,
            master,
            db,
            username,
            password,
            sentinel_username: None,
            sentinel_password: None,
        };
        let mut options = UrlOptions::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if options.take(key, value).map_err(|why| invalid(url, why))? {
                continue;
            }
            let value = decode(url, key, value)?;
            match key {
                "sentinel_username" => parsed.sentinel_username = Some(value),
                "sentinel_password" => parsed.sentinel_password = Some(value),
                other => {
                    return Err(invalid(
                        url,
                        format!(
                            "unknown option {other:?} (known: prefix, wait_replicas, \
                             wait_timeout_ms, sentinel_username, sentinel_password)"
                        ),
                    ))
                }
            }
        }
        Ok((parsed, options))
    }

    /// `host:port,host:port`, for messages.
    pub(crate) fn hosts(&self) -> String {
        self.sentinels
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Finds the primary through the Sentinels. One per store, behind a lock: the crate's
/// [`Sentinel`] keeps a connection to each Sentinel between look-ups.
pub(crate) struct SentinelTarget {
    url: SentinelUrl,
    sentinel: tokio::sync::Mutex<Sentinel>,
    node: SentinelNodeConnectionInfo,
}

impl SentinelTarget {
    /// Nothing connects yet.
    pub(crate) fn new(url: SentinelUrl) -> Result<Self, StoreError> {
        let infos = url
            .sentinels
            .iter()
            .map(|(host, port)| {
                let mut settings = RedisConnectionInfo::default();
                if let Some(user) = &url.sentinel_username {
                    settings = settings.set_username(user);
                }
                if let Some(pass) = &url.sentinel_password {
                    settings = settings.set_password(pass);
                }
                redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
                    host.clone(),
                    *port,
                ))
                .map(|info| info.set_redis_settings(settings))
            })
            .collect::<Result<Vec<_>, RedisError>>()
            .map_err(|source| StoreError::InvalidUrl { source })?;
        let sentinel =
            Sentinel::build(infos).map_err(|source| StoreError::InvalidUrl { source })?;
        let mut settings = RedisConnectionInfo::default().set_db(url.db);
        if let Some(user) = &url.username {
            settings = settings.set_username(user);
        }
        if let Some(pass) = &url.password {
            settings = settings.set_password(pass);
        }
        Ok(SentinelTarget {
            node: SentinelNodeConnectionInfo::default().set_redis_connection_info(settings),
            url,
            sentinel: tokio::sync::Mutex::new(sentinel),
        })
    }

    /// What the store is connected to, for `Debug` and messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "primary '{}' of the Redis Sentinels at {}",
            self.url.master,
            self.url.hosts()
        )
    }

    /// A client for the current primary, asking the Sentinels within `timeout`.
    ///
    /// # Errors
    /// `Unreachable` when no Sentinel answers or none names a primary that answers as
    /// one (mid-failover, this passes once the Sentinels have promoted a replica);
    /// `InvalidInput` when a Sentinel answers and monitors no master by that name.
    pub(crate) async fn primary(&self, timeout: Duration) -> Result<Client, StoreError> {
        let started = Instant::now();
        let found = tokio::time::timeout(timeout, async {
            let mut sentinel = self.sentinel.lock().await;
            sentinel
                .async_master_for(&self.url.master, Some(&self.node))
                .await
        })
        .await;
        let error = match found {
            Ok(Ok(client)) => return Ok(client),
            Ok(Err(e)) => e,
            Err(_) => {
                return Err(self.unreachable(&Cause::TimedOut(timeout), started, timeout, None))
            }
        };
        if error.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel {
            let remaining = timeout.saturating_sub(started.elapsed());
            if let Ok(Ok(false)) = tokio::time::timeout(remaining, self.monitors_master()).await {
                return Err(StoreError::InvalidInput(format!(
                    "invalid value for field 'url': the Redis Sentinels at {} monitor no \
                     master named '{}' (SENTINEL MASTERS lists the names they know)",
                    self.url.hosts(),
                    self.url.master
                )));
            }
            let cause = Cause::Other(format!(
                "no Sentinel names a reachable primary for '{}' (a failover in progress?)",
                self.url.master
            ));
            return Err(self.unreachable(&cause, started, timeout, Some(error)));
        }
        let host = self.url.sentinels[0].0.clone();
        let cause = if error.is_timeout() {
            Cause::TimedOut(timeout)
        } else {
            Cause::of_error(&error, &host)
        };
        Err(self.unreachable(&cause, started, timeout, Some(error)))
    }

    fn unreachable(
        &self,
        cause: &Cause,
        started: Instant,
        timeout: Duration,
        source: Option<RedisError>,
    ) -> StoreError {
        let error = reach::unreachable(
            "Redis",
            &format!(
                "primary '{}' via the Sentinels at {}",
                self.url.master,
                self.url.hosts()
            ),
            cause,
            started.elapsed(),
            timeout,
        );
        StoreError::Unreachable(match source {
            Some(source) => error.with_source(source),
            None => error,
        })
    }

    /// Whether the first Sentinel that answers monitors the master name at all
    /// (`SENTINEL GET-MASTER-ADDR-BY-NAME` is nil for an unknown name): tells a wrong
    /// name from a primary that is down.
    async fn monitors_master(&self) -> Result<bool, RedisError> {
        let mut last = None;
        for (host, port) in &self.url.sentinels {
            let mut settings = RedisConnectionInfo::default();
            if let Some(user) = &self.url.sentinel_username {
                settings = settings.set_username(user);
            }
            if let Some(pass) = &self.url.sentinel_password {
                settings = settings.set_password(pass);
            }
            let info = redis::IntoConnectionInfo::into_connection_info(
                redis::ConnectionAddr::Tcp(host.clone(), *port),
            )?
            .set_redis_settings(settings);
            let answer = async {
                let mut conn = Client::open(info)?
                    .get_multiplexed_async_connection()
                    .await?;
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&self.url.master)
                    .query_async::<Option<(String, u16)>>(&mut conn)
                    .await
            };
            match answer.await {
                Ok(addr) => return Ok(addr.is_some()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one Sentinel"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_part() {
        let (url, options) = SentinelUrl::parse(
            "redis+sentinel://app:s%40cret@h1:26380,h2/mymaster/2?prefix=my.&sentinel_password=x",
        )
        .unwrap();
        assert_eq!(
            url.sentinels,
            vec![("h1".to_owned(), 26380), ("h2".to_owned(), 26379)]
        );
        assert_eq!(url.master, "mymaster");
        assert_eq!(url.db, 2);
        assert_eq!(url.username.as_deref(), Some("app"));
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!(url.sentinel_password.as_deref(), Some("x"));
        assert_eq!(options.prefix.as_deref(), Some("my."));
        let (url, options) = SentinelUrl::parse("redis+sentinel://h1/m").unwrap();
        assert_eq!(
            (url.db, url.username, options),
            (0, None, UrlOptions::default())
        );
    }

    #[test]
    fn refuses_bad_urls_naming_the_problem() {
        for (url, needle) in [
            ("redis+sentinel://h1:26379", "names no master"),
            ("redis+sentinel://h1:26379/", "master name is empty"),
            ("redis+sentinel://h1:0/m", "not 1-65535"),
            ("redis+sentinel://h1:x/m", "not 1-65535"),
            ("redis+sentinel://,h1/m", "host is empty"),
            ("redis+sentinel://h1/m/x", "database \"x\""),
            ("redis+sentinel://h1/m/1/2", "unexpected path segment"),
            ("redis+sentinel://h1/m?db=1", "unknown option \"db\""),
        ] {
            let err = SentinelUrl::parse(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(err.contains("field 'url'"), "{err}");
        }
        let err = SentinelUrl::parse("redis+sentinel://u:pw@h1/m/x?sentinel_password=pw2")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw"), "passwords are not shown: {err}");
    }
}

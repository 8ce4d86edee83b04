//! Redis Cluster: the `redis+cluster://` URL, the checks made at the first connection
//! (every named node answers in cluster mode, all of one cluster), and the `redis`
//! crate's cluster client, which routes each command by its key's slot and follows
//! the cluster through failovers and resharding.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apscheduler_core::reach::{self, Cause};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use crate::durability::UrlOptions;
use crate::error::StoreError;

/// The scheme of a cluster URL.
pub(crate) const SCHEME: &str = "redis+cluster://";

/// The port of a node named without one.
const DEFAULT_PORT: u16 = 6379;

/// How many partitions the jobs are spread over when the URL and the builder say none.
pub(crate) const DEFAULT_PARTITIONS: usize = 16;

/// The most partitions a store may have (a claim may visit each).
pub(crate) const MAX_PARTITIONS: usize = 1024;

/// A parsed `redis+cluster://[[user]:password@]host[:port][,host[:port]...][/][?options]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterUrl {
    /// The nodes named, `(host, port)`, in the order given.
    pub(crate) nodes: Vec<(String, u16)>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// The URL's `partitions=`.
    pub(crate) partitions: Option<usize>,
}

fn invalid(url: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidInput(format!(
        "invalid value for field 'url': {:?}: {why} (expected \
         redis+cluster://[[user]:password@]host[:port][,host[:port]...]/[?prefix=...&partitions=N])",
        redact(url)
    ))
}

/// The URL with its password replaced by `***`, for messages.
fn redact(url: &str) -> String {
    if let Some(rest) = url.strip_prefix(SCHEME) {
        if let Some(at) = rest.find('@') {
            if let Some(colon) = rest[..at].find(':') {
                return format!("{SCHEME}{}:***{}", &rest[..colon], &rest[at..]);
            }
        }
    }
    url.to_owned()
}

/// Checks a partition count: 1 to [`MAX_PARTITIONS`].
pub(crate) fn check_partitions(n: usize) -> Result<usize, String> {
    if (1..=MAX_PARTITIONS).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "partitions = {n} is out of range (1 to {MAX_PARTITIONS})"
        ))
    }
}

impl ClusterUrl {
    /// Parses a cluster URL; the store's options come back separately. Unknown
    /// options are refused.
    pub(crate) fn parse(url: &str) -> Result<(ClusterUrl, UrlOptions), StoreError> {
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid(url, "it does not start with redis+cluster://"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !path.is_empty() && path != "0" {
            return Err(invalid(
                url,
                format!("unexpected path {path:?} (a Redis Cluster has only database 0)"),
            ));
        }
        let crate::hosts::Authority {
            username,
            password,
            hosts: nodes,
        } = crate::hosts::parse_authority(authority, DEFAULT_PORT, "a node's", &|why| {
            invalid(url, why)
        })?;
        let mut parsed = ClusterUrl {
            nodes,
            username,
            password,
            partitions: None,
        };
        let mut options = UrlOptions::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if options.take(key, value).map_err(|why| invalid(url, why))? {
                continue;
            }
            match key {
                "partitions" => {
                    let n = value.parse::<usize>().map_err(|_| {
                        invalid(url, format!("partitions={value:?} is not a whole number"))
                    })?;
                    parsed.partitions = Some(check_partitions(n).map_err(|e| invalid(url, e))?);
                }
                other => {
                    return Err(invalid(
                        url,
                        format!(
                            "unknown option {other:?} (known: prefix, partitions, \
                             wait_replicas, wait_timeout_ms)"
                        ),
                    ))
                }
            }
        }
        Ok((parsed, options))
    }

    /// `host:port,host:port`, for messages.
    pub(crate) fn hosts(&self) -> String {
        self.nodes
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn info(&self, host: &str, port: u16) -> Result<ConnectionInfo, StoreError> {
        let mut settings = RedisConnectionInfo::default();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(pass) = &self.password {
            settings = settings.set_password(pass);
        }
        ConnectionAddr::Tcp(host.to_owned(), port)
            .into_connection_info()
            .map(|info| info.set_redis_settings(settings))
            .map_err(|source| StoreError::InvalidUrl { source })
    }
}

/// What one named node said about itself at the first connection.
enum Seen {
    /// Its node id and the ids of every node of its cluster (itself included).
    Member { id: String, known: HashSet<String> },
    /// It answered, but not in cluster mode (the error's words).
    NotCluster(String),
    /// It did not answer.
    Unreachable(Cause, redis::RedisError),
    /// It answered with an error (authentication, ACL).
    Failed(redis::RedisError),
}

/// The nodes of a cluster URL and the client over them.
pub(crate) struct ClusterTarget {
    url: ClusterUrl,
    seeds: Vec<ConnectionInfo>,
    client: ClusterClient,
    /// The next node the change subscription tries.
    next_seed: AtomicUsize,
}

impl ClusterTarget {
    /// Nothing connects yet.
    pub(crate) fn new(
        url: ClusterUrl,
        connect_timeout: Duration,
        response_timeout: Duration,
        retries: usize,
    ) -> Result<Self, StoreError> {
        let seeds = url
            .nodes
            .iter()
            .map(|(h, p)| url.info(h, *p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut builder = ClusterClientBuilder::new(seeds.clone())
            .connection_timeout(connect_timeout)
            .response_timeout(response_timeout)
            // A call that meets a failover (a node down, MOVED, TRYAGAIN) is retried a
            // few times, soon; the whole call, retries included, is bounded by the
            // response time-out, and the engine retries a failing store itself.
            .retries(u32::try_from(retries).unwrap_or(u32::MAX).saturating_add(2))
            .min_retry_wait(50)
            .max_retry_wait(500)
            .overall_response_timeout(Some(response_timeout));
        if let Some(user) = &url.username {
            builder = builder.username(user);
        }
        if let Some(pass) = &url.password {
            builder = builder.password(pass);
        }
        let client = builder
            .build()
            .map_err(|source| StoreError::InvalidUrl { source })?;
        Ok(ClusterTarget {
            url,
            seeds,
            client,
            next_seed: AtomicUsize::new(0),
        })
    }

    /// What the store is connected to, for `Debug` and messages.
    pub(crate) fn describe(&self) -> String {
        format!("the Redis Cluster at {}", self.url.hosts())
    }

    /// Checks the named nodes, then opens the cluster connection, all within
    /// `timeout`.
    ///
    /// # Errors
    /// `InvalidInput` when a named node is not in cluster mode, or two named nodes
    /// belong to different clusters; `Unreachable` with the cause when no named node
    /// answers.
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<ClusterConnection, StoreError> {
        let started = Instant::now();
        self.check(timeout).await?;
        let remaining = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(remaining, self.client.get_async_connection()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => {
                let cause = if e.is_timeout() {
                    Cause::TimedOut(timeout)
                } else {
                    Cause::of_error(&e, &self.url.nodes[0].0)
                };
                Err(self.unreachable(&cause, started, timeout, Some(e)))
            }
            Err(_) => Err(self.unreachable(&Cause::TimedOut(timeout), started, timeout, None)),
        }
    }

    fn unreachable(
        &self,
        cause: &Cause,
        started: Instant,
        timeout: Duration,
        source: Option<redis::RedisError>,
    ) -> StoreError {
        let error =
            reach::unreachable("Redis", &self.describe(), cause, started.elapsed(), timeout);
        StoreError::Unreachable(match source {
            Some(source) => error.with_source(source),
            None => error,
        })
    }

    /// Asks every named node, at once, who it is and which nodes its cluster has.
    async fn check(&self, timeout: Duration) -> Result<(), StoreError> {
        let started = Instant::now();
        let asks = self
            .seeds
            .iter()
            .zip(&self.url.nodes)
            .map(|(info, (host, _))| ask_node(info.clone(), host, timeout));
        let seen = futures_util::future::join_all(asks).await;
        let named: Vec<String> = self
            .url
            .nodes
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect();
        for (name, seen) in named.iter().zip(&seen) {
            if let Seen::Failed(e) = seen {
                return Err(StoreError::Backend {
                    what: "connect",
                    source: redis::RedisError::from((
                        e.kind(),
                        "a node named in the URL refused CLUSTER NODES",
                        format!("{name}: {e}"),
                    )),
                });
            }
            if let Seen::NotCluster(words) = seen {
                return Err(StoreError::InvalidInput(format!(
                    "invalid value for field 'url': the Redis server at {name} is not in \
                     cluster mode ({words}); a redis+cluster:// URL names nodes of one Redis \
                     Cluster (use redis:// for a single server)"
                )));
            }
        }
        let members: Vec<(&String, &String, &HashSet<String>)> = named
            .iter()
            .zip(&seen)
            .filter_map(|(name, seen)| match seen {
                Seen::Member { id, known } => Some((name, id, known)),
                _ => None,
            })
            .collect();
        if let Some((first, first_id, first_known)) = members.first() {
            for (name, id, known) in &members[1..] {
                if !first_known.contains(*id) || !known.contains(*first_id) {
                    return Err(StoreError::InvalidInput(format!(
                        "invalid value for field 'url': the nodes {first} (id {first_id}) and \
                         {name} (id {id}) named in the URL belong to different Redis Clusters \
                         (neither lists the other in CLUSTER NODES); name nodes of one cluster"
                    )));
                }
            }
            for (name, seen) in named.iter().zip(&seen) {
                if let Seen::Unreachable(cause, _) = seen {
                    tracing::warn!(target: "apscheduler", node = %name, "Redis Cluster: a node named in the URL does not answer ({cause}); using the others");
                }
            }
            return Ok(());
        }
        let (cause, source) = seen
            .into_iter()
            .find_map(|s| match s {
                Seen::Unreachable(cause, e) => Some((cause, e)),
                _ => None,
            })
            .expect("at least one node, and none answered");
        Err(self.unreachable(&cause, started, timeout, Some(source)))
    }

    /// A client for one of the named nodes, a different one at each call, for a
    /// connection of its own (the change subscription: `PUBLISH` reaches every node
    /// of a cluster, so subscribing on any one hears every change).
    pub(crate) fn any_node(&self) -> Result<Client, StoreError> {
        let i = self.next_seed.fetch_add(1, Ordering::Relaxed) % self.seeds.len();
        Client::open(self.seeds[i].clone()).map_err(|source| StoreError::InvalidUrl { source })
    }
}

impl ClusterTarget {
    /// The address of the primary that serves `key`'s slot, as the first named node to
    /// answer says (`CLUSTER KEYSLOT`, `CLUSTER SLOTS`, each node over a connection of
    /// its own), within `timeout`; `None` when none answers in time. For messages.
    pub(crate) async fn node_serving(&self, key: &str, timeout: Duration) -> Option<String> {
        let asks = self.seeds.iter().map(|info| {
            let info = info.clone();
            Box::pin(async move {
                let mut conn = Client::open(info)?
                    .get_multiplexed_async_connection()
                    .await?;
                let (slot, slots): (u16, Vec<Vec<redis::Value>>) = redis::pipe()
                    .cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut conn)
                    .await?;
                slot_owner(slot, slots).ok_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Client, "no node serves the slot"))
                })
            })
        });
        match tokio::time::timeout(timeout, futures_util::future::select_ok(asks)).await {
            Ok(Ok((node, _))) => Some(node),
            _ => None,
        }
    }
}

/// `host:port` of the primary serving `slot` in a `CLUSTER SLOTS` reply (each entry:
/// first slot, last slot, the primary as `[host, port, id, ...]`, then the replicas).
fn slot_owner(slot: u16, slots: Vec<Vec<redis::Value>>) -> Option<String> {
    slots.into_iter().find_map(|mut range| {
        if range.len() < 3 {
            return None;
        }
        let first: u16 = redis::from_redis_value_ref(&range[0]).ok()?;
        let last: u16 = redis::from_redis_value_ref(&range[1]).ok()?;
        if !(first..=last).contains(&slot) {
            return None;
        }
        let node: Vec<redis::Value> = redis::from_redis_value(range.swap_remove(2)).ok()?;
        let host: String = redis::from_redis_value_ref(node.first()?).ok()?;
        let port: u16 = redis::from_redis_value_ref(node.get(1)?).ok()?;
        Some(format!("{host}:{port}"))
    })
}

/// `CLUSTER NODES` on one node over a connection of its own, within `timeout`.
async fn ask_node(info: ConnectionInfo, host: &str, timeout: Duration) -> Seen {
    let answer = tokio::time::timeout(timeout, async {
        let mut conn = Client::open(info)?
            .get_multiplexed_async_connection()
            .await?;
        redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async::<String>(&mut conn)
            .await
    })
    .await;
    match answer {
        Ok(Ok(text)) => {
            let mut id = String::new();
            let mut known = HashSet::new();
            for line in text.lines() {
                let mut words = line.split_whitespace();
                let (Some(node), _, Some(flags)) = (words.next(), words.next(), words.next())
                else {
                    continue;
                };
                if flags.split(',').any(|f| f == "myself") {
                    node.clone_into(&mut id);
                }
                known.insert(node.to_owned());
            }
            Seen::Member { id, known }
        }
        Ok(Err(e)) if e.to_string().contains("cluster support disabled") => {
            Seen::NotCluster(e.to_string())
        }
        Ok(Err(e))
            if e.is_io_error()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.is_connection_dropped() =>
        {
            let cause = if e.is_timeout() {
                Cause::TimedOut(timeout)
            } else {
                Cause::of_error(&e, host)
            };
            Seen::Unreachable(cause, e)
        }
        // Answered, but refused (a wrong password, an ACL): not a reachability problem.
        Ok(Err(e)) => Seen::Failed(e),
        Err(_) => Seen::Unreachable(
            Cause::TimedOut(timeout),
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer to CLUSTER NODES",
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_part() {
        let (url, options) = ClusterUrl::parse(
            "redis+cluster://u:p%40ss@h1:7000,h2/?prefix=app.&partitions=32&wait_replicas=1",
        )
        .unwrap();
        assert_eq!(
            url.nodes,
            vec![("h1".to_owned(), 7000), ("h2".to_owned(), DEFAULT_PORT)]
        );
        assert_eq!(url.username.as_deref(), Some("u"));
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        assert_eq!(url.partitions, Some(32));
        assert_eq!(options.prefix.as_deref(), Some("app."));
        assert_eq!(options.wait_replicas, Some(1));
        let (url, _) = ClusterUrl::parse("redis+cluster://127.0.0.1:7000").unwrap();
        assert_eq!(url.partitions, None);
        assert_eq!(url.hosts(), "127.0.0.1:7000");
    }

    #[test]
    fn finds_the_primary_of_a_slot_in_cluster_slots() {
        use redis::Value;
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let range = |first: i64, last: i64, port: i64| {
            vec![
                Value::Int(first),
                Value::Int(last),
                Value::Array(vec![bulk("10.0.0.1"), Value::Int(port), bulk("id")]),
                Value::Array(vec![
                    bulk("10.0.0.2"),
                    Value::Int(port + 1),
                    bulk("replica"),
                ]),
            ]
        };
        let slots = || vec![range(0, 5460, 7000), range(5461, 16383, 7002)];
        assert_eq!(slot_owner(0, slots()).as_deref(), Some("10.0.0.1:7000"));
        assert_eq!(slot_owner(5461, slots()).as_deref(), Some("10.0.0.1:7002"));
        assert_eq!(slot_owner(100, vec![range(200, 300, 7000)]), None);
        assert_eq!(slot_owner(1, vec![vec![Value::Int(0)]]), None);
    }

    #[test]
    fn refuses_bad_urls_naming_the_problem() {
        for (url, needle) in [
            ("redis+cluster://h:0/", "not 1-65535"),
            ("redis+cluster://,h:1/", "host is empty"),
            ("redis+cluster://h:1/3", "only database 0"),
            ("redis+cluster://h:1/?partitions=0", "out of range"),
            ("redis+cluster://h:1/?partitions=many", "not a whole number"),
            ("redis+cluster://h:1/?db=1", "unknown option \"db\""),
            ("redis+cluster://u:secret@h:1/?x=1", "u:***@h:1"),
        ] {
            let err = ClusterUrl::parse(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}

//! `WAIT`-based durability: a write counts as done only once enough replicas have it,
//! so a failover cannot undo it. And the store options a URL's query may carry.

use std::time::Duration;

use percent_encoding::percent_decode_str;

use crate::conn::Connection;
use crate::error::StoreError;

/// How long `WAIT` waits when only `wait_replicas` is given.
pub(crate) const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_millis(100);

/// Wait for this many replicas, at most this long, after each write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitFor {
    pub(crate) replicas: u32,
    pub(crate) timeout: Duration,
}

impl WaitFor {
    /// `WAIT replicas timeout` on the connection that made the write: an error when
    /// fewer replicas confirmed it in time.
    pub(crate) async fn confirm(
        &self,
        conn: &Connection,
        what: &'static str,
    ) -> Result<(), StoreError> {
        let millis = self.millis();
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.replicas).arg(millis);
        let confirmed: u32 = conn.query(what, &cmd).await?;
        self.check(what, confirmed, millis)
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn check(&self, what: &'static str, confirmed: u32, millis: u64) -> Result<(), StoreError> {
        if confirmed >= self.replicas {
            return Ok(());
        }
        Err(StoreError::NotReplicated {
            what,
            confirmed,
            wanted: self.replicas,
            millis,
        })
    }

    /// On a cluster: `WAIT` on the primary that serves `key`'s slot, over the
    /// connection the cluster client writes to it on. `WAIT` has no key, so it is
    /// sent in a pipeline behind `EXISTS key`, which routes the pipeline to that
    /// primary.
    pub(crate) async fn confirm_on(
        &self,
        conn: &Connection,
        key: &str,
        what: &'static str,
    ) -> Result<(), StoreError> {
        let millis = self.millis();
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS")
            .arg(key)
            .ignore()
            .cmd("WAIT")
            .arg(self.replicas)
            .arg(millis);
        let (confirmed,): (u32,) = conn.pipeline(what, &pipe).await?;
        self.check(what, confirmed, millis)
    }
}

/// The store options a Redis URL's query may carry (`prefix`, `wait_replicas`,
/// `wait_timeout_ms`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UrlOptions {
    pub(crate) prefix: Option<String>,
    pub(crate) wait_replicas: Option<u32>,
    pub(crate) wait_timeout_ms: Option<u64>,
}

impl UrlOptions {
    /// Takes `key=value` when it is one of the store's options (`Ok(false)`: not one).
    pub(crate) fn take(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let decoded = || {
            percent_decode_str(value)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| format!("the option {key} is not UTF-8 once percent-decoded"))
        };
        let number = |what: &str| {
            value
                .parse::<u64>()
                .map_err(|_| format!("the option {what}={value:?} is not a whole number"))
        };
        match key {
            "prefix" => self.prefix = Some(decoded()?),
            "wait_replicas" => {
                self.wait_replicas = Some(
                    u32::try_from(number(key)?)
                        .map_err(|_| format!("the option {key}={value:?} is too large"))?,
                );
            }
            "wait_timeout_ms" => {
                let ms = number(key)?;
                if ms == 0 {
                    return Err(format!(
                        "the option {key}=0 would wait forever (give 1 or more)"
                    ));
                }
                self.wait_timeout_ms = Some(ms);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The `WAIT` these options ask for (`None`: no waiting).
    pub(crate) fn wait(&self) -> Result<Option<WaitFor>, String> {
        match (self.wait_replicas, self.wait_timeout_ms) {
            (None | Some(0), None) => Ok(None),
            (None | Some(0), Some(_)) => {
                Err("wait_timeout_ms is set without wait_replicas (1 or more)".to_owned())
            }
            (Some(replicas), ms) => Ok(Some(WaitFor {
                replicas,
                timeout: ms.map_or(DEFAULT_WAIT_TIMEOUT, Duration::from_millis),
            })),
        }
    }
}

/// Splits the store's options off a `redis://` (or `rediss://`, `redis+unix://`) URL's
/// query: the URL the `redis` crate gets, and the options.
pub(crate) fn take_options(url: &str) -> Result<(String, UrlOptions), StoreError> {
    let mut options = UrlOptions::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), options));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let taken = options.take(key, value).map_err(|why| {
            StoreError::InvalidInput(format!("invalid value for field 'url': {why}"))
        })?;
        if !taken {
            kept.push(pair);
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_off_a_plain_url() {
        let (url, options) =
            take_options("redis://h:1/0?prefix=a%2Eb&protocol=resp3&wait_replicas=1").unwrap();
        assert_eq!(url, "redis://h:1/0?protocol=resp3");
        assert_eq!(options.prefix.as_deref(), Some("a.b"));
        assert_eq!(
            options.wait().unwrap(),
            Some(WaitFor {
                replicas: 1,
                timeout: DEFAULT_WAIT_TIMEOUT
            })
        );
        let (url, options) = take_options("redis://h:1/").unwrap();
        assert_eq!(
            (url.as_str(), options),
            ("redis://h:1/", UrlOptions::default())
        );
    }

    #[test]
    fn bad_wait_options_are_refused() {
        for (url, needle) in [
            ("redis://h/?wait_replicas=x", "not a whole number"),
            (
                "redis://h/?wait_replicas=1&wait_timeout_ms=0",
                "wait forever",
            ),
        ] {
            let err = take_options(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
        let (_, options) = take_options("redis://h/?wait_timeout_ms=5").unwrap();
        assert!(options
            .wait()
            .unwrap_err()
            .contains("without wait_replicas"));
    }
}

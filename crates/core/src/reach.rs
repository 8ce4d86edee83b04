//! Reaching a store's server for the first time: the connect time-out every store
//! takes, a plain TCP probe that tells why a server cannot be reached, and the message
//! that says so (`cannot reach the PostgreSQL store at 127.0.0.1:1: connection refused
//! (gave up after 0.0 s; connect_timeout = 5s)`).
//!
//! A store connecting at start fails within its connect time-out with the real cause
//! (refused, unknown host, no answer) instead of a driver's generic pool or
//! server-selection time-out.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::{Error, ErrorKind};

/// The connect time-out of every store unless configured: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a server could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// Nothing listens at the address (TCP reset).
    Refused,
    /// The host name does not resolve.
    UnknownHost {
        /// The name.
        host: String,
        /// The resolver's words.
        detail: String,
    },
    /// No answer within the connect time-out (a black-holed address, or a server
    /// that accepts connections and never answers).
    TimedOut(Duration),
    /// Anything else, as the driver or the system said it.
    Other(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Refused => f.write_str("connection refused"),
            Cause::UnknownHost { host, detail } => {
                write!(
                    f,
                    "unknown host '{host}' (name resolution failed: {detail})"
                )
            }
            Cause::TimedOut(after) => write!(f, "timed out after {} s", seconds(*after)),
            Cause::Other(text) => f.write_str(text),
        }
    }
}

impl Cause {
    /// The cause an I/O error tells, for a connection to `host`.
    pub fn of_io(err: &io::Error, host: &str) -> Cause {
        let text = err.to_string();
        match err.kind() {
            io::ErrorKind::ConnectionRefused => Cause::Refused,
            io::ErrorKind::TimedOut => Cause::Other(format!("timed out ({text})")),
            _ if is_resolution_failure(&text) => Cause::UnknownHost {
                host: host.to_owned(),
                detail: text,
            },
            _ => Cause::Other(text),
        }
    }

    /// The cause in a driver's error: the first I/O error in its chain of sources,
    /// else what its text says (drivers that keep no source still quote the system's
    /// words: "Connection refused (os error 111)").
    pub fn of_error(err: &(dyn StdError + 'static), host: &str) -> Cause {
        let mut current: Option<&(dyn StdError + 'static)> = Some(err);
        while let Some(e) = current {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                return Cause::of_io(io, host);
            }
            current = e.source();
        }
        let text = err.to_string();
        if text.contains("Connection refused") || text.contains("connection refused") {
            Cause::Refused
        } else if is_resolution_failure(&text) {
            Cause::UnknownHost {
                host: host.to_owned(),
                detail: text,
            }
        } else {
            Cause::Other(text)
        }
    }
}

/// Whether a system message is a failed host name lookup (getaddrinfo's words).
fn is_resolution_failure(text: &str) -> bool {
    [
        "failed to lookup address",
        "Name or service not known",
        "No address associated with hostname",
        "nodename nor servname",
        "Temporary failure in name resolution",
    ]
    .iter()
    .any(|s| text.contains(s))
}

/// Seconds with one decimal (`0.0`, `1.0`, `2.5`).
fn seconds(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

/// The store error for a server that cannot be reached: `Unavailable`, naming the
/// store, the address, the cause, how long it took and the time-out.
pub fn unreachable(
    store: &str,
    address: &str,
    cause: &Cause,
    elapsed: Duration,
    timeout: Duration,
) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "cannot reach the {store} store at {address}: {cause} (gave up after {} s; connect_timeout = {})",
            seconds(elapsed),
            humantime::format_duration(timeout)
        ),
    )
}

/// Probes `hosts` in turn with [`probe_tcp`] until one answers: `Ok` as soon as one
/// does (or when there are none), else the [`unreachable()`] error for the first that
/// failed, naming `store`. Blocking: call it from a blocking thread.
///
/// # Errors
/// [`ErrorKind::Unavailable`] naming the first host's address and cause.
pub fn probe_any_tcp(
    store: &str,
    hosts: &[(String, u16)],
    started: Instant,
    timeout: Duration,
) -> Result<(), Error> {
    let mut first = None;
    for (host, port) in hosts {
        match probe_tcp(host, *port, started, timeout) {
            Ok(()) => return Ok(()),
            Err(cause) => {
                first.get_or_insert((format!("{host}:{port}"), cause));
            }
        }
    }
    match first {
        None => Ok(()),
        Some((address, cause)) => Err(unreachable(
            store,
            &address,
            &cause,
            started.elapsed(),
            timeout,
        )),
    }
}

/// Resolves `host` and opens (then closes) a TCP connection to `port` on one of its
/// addresses, trying each in turn until `timeout` has passed since `started`.
/// Blocking (name resolution is the system's): call it from a blocking thread.
///
/// # Errors
/// The [`Cause`]: unknown host, refused (by every address), or timed out.
pub fn probe_tcp(host: &str, port: u16, started: Instant, timeout: Duration) -> Result<(), Cause> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Cause::UnknownHost {
            host: host.to_owned(),
            detail: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Cause::UnknownHost {
            host: host.to_owned(),
            detail: "no address".to_owned(),
        });
    }
    let mut last = Cause::Refused;
    for addr in addrs {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Cause::TimedOut(timeout));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(_) => return Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                last = Cause::TimedOut(timeout);
            }
            Err(e) => last = Cause::of_io(&e, host),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_read_as_the_system_says() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(Cause::of_io(&refused, "h"), Cause::Refused);
        let lookup =
            io::Error::other("failed to lookup address information: Name or service not known");
        assert!(
            matches!(Cause::of_io(&lookup, "x.invalid"), Cause::UnknownHost { host, .. } if host == "x.invalid")
        );
        let wrapped = Error::new(ErrorKind::Unavailable, "pool").with_source(refused);
        assert_eq!(Cause::of_error(&wrapped, "h"), Cause::Refused);
        let text = Error::new(
            ErrorKind::Other,
            "I/O error: Connection refused (os error 111)",
        );
        assert_eq!(Cause::of_error(&text, "h"), Cause::Refused);
    }

    #[test]
    fn messages_name_store_address_cause_and_time_out() {
        let e = unreachable(
            "PostgreSQL",
            "127.0.0.1:1",
            &Cause::Refused,
            Duration::from_millis(3),
            DEFAULT_CONNECT_TIMEOUT,
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(
            e.message(),
            "cannot reach the PostgreSQL store at 127.0.0.1:1: connection refused (gave up after 0.0 s; connect_timeout = 5s)"
        );
        assert_eq!(
            Cause::TimedOut(Duration::from_secs(1)).to_string(),
            "timed out after 1.0 s"
        );
    }

    #[test]
    fn probes_a_closed_port_and_an_unknown_host() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let timeout = Duration::from_secs(5);
        assert_eq!(
            probe_tcp("127.0.0.1", port, Instant::now(), timeout),
            Err(Cause::Refused)
        );
        assert!(matches!(
            probe_tcp("nonexistent.invalid", 80, Instant::now(), timeout),
            Err(Cause::UnknownHost { .. })
        ));
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = open.local_addr().unwrap().port();
        assert_eq!(
            probe_tcp("127.0.0.1", port, Instant::now(), timeout),
            Ok(())
        );
    }
}

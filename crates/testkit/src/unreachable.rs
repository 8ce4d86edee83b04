//! Addresses where no store server answers, for the tests of a store's start-up
//! failures: a closed port, an unknown host, a black hole; and the check that a
//! store's first call fails in time with the cause.
//!
//! All are on the loopback interface (the unknown host is `nonexistent.invalid`: RFC
//! 6761 reserves `.invalid`, whose names never resolve).

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use apscheduler_core::{Error, ErrorKind};

/// A host name that never resolves (RFC 6761).
pub const UNKNOWN_HOST: &str = "nonexistent.invalid";

/// A loopback port nothing listens on: bound, noted and released (the kernel does not
/// hand it out again at once).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}

/// A server that never answers: a listener nothing accepts from. The kernel completes
/// TCP handshakes into its backlog, so a client connects, sends, and waits for ever.
/// Closed when dropped.
#[derive(Debug)]
pub struct BlackHole {
    listener: TcpListener,
}

impl BlackHole {
    /// Listens on a free loopback port.
    pub fn new() -> Self {
        BlackHole {
            listener: TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().expect("its address").port()
    }
}

impl Default for BlackHole {
    fn default() -> Self {
        Self::new()
    }
}

/// Awaits `call` (a store's first call) and checks that it fails with `Unavailable`
/// within `within`, its message containing `needle` and naming
/// `connect_timeout`. Returns the error for further checks.
///
/// # Panics
/// When the call succeeds, fails otherwise, or takes longer.
pub async fn expect_unreachable<T: std::fmt::Debug>(
    what: &str,
    call: impl Future<Output = Result<T, Error>>,
    needle: &str,
    within: Duration,
) -> Error {
    let began = Instant::now();
    let err = call.await.expect_err(what);
    let took = began.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{what}: {err}");
    let text = err.to_string();
    assert!(text.contains(needle), "{what}: no '{needle}' in: {text}");
    assert!(text.contains("connect_timeout = "), "{what}: {text}");
    assert!(
        took < within,
        "{what}: failed after {took:?}, not within {within:?}: {text}"
    );
    err
}

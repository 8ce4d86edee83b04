//! A server that answers "read-only" under the store's pooled connections: after a
//! failover or switchover, connections opened to the old primary (directly, or through
//! a proxy such as PgBouncer, which keeps a client's server connection for the whole
//! session) reach a server that is now a standby, or fenced read-only, and would fail
//! every write for as long as they live. Such an answer is an outage (the call is
//! retried, [`ErrorKind::Unavailable`](apscheduler_core::ErrorKind::Unavailable)), and
//! every PostgreSQL or MySQL connection opened before it is closed when next acquired
//! or released, so the retries connect again: to the new primary once the proxy (or the
//! DNS name) points there.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When a server last answered read-only (process-wide: a store on another server
/// only opens its connections again, once).
static LAST: Mutex<Option<Instant>> = Mutex::new(None);

/// Notes a read-only answer (`message`, the server's) and logs it, at most once a
/// second.
pub(crate) fn seen(message: &str) {
    let now = Instant::now();
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let log = last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
    *last = Some(now);
    drop(last);
    if log {
        apscheduler_core::log_warn!(target: "apscheduler", "the database answered read-only ({message}): it is no longer the primary (a failover or switchover?); closing the store's connections opened before this answer and retrying as during an outage, so the next connections reach the server now in charge");
    }
}

/// Whether a pooled connection `age` old may be used again: not when it was opened
/// before the last read-only answer.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn keep(age: Duration) -> bool {
    let last = *LAST.lock().unwrap_or_else(|e| e.into_inner());
    match (last, Instant::now().checked_sub(age)) {
        (Some(answer), Some(opened)) => opened > answer,
        _ => true,
    }
}

/// How long a pooled connection may sit idle and still be used without a ping first
/// (with `test_before_acquire` on). One used this recently answered then: pinging it
/// again would add a round trip to every statement of a busy scheduler. A server
/// restarted within this time fails the next statement on such a connection once
/// (closed by the pool; the scheduler's pass is retried, a release is retried before
/// its runs start).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) const PING_WHEN_IDLE: Duration = Duration::from_secs(5);

/// Installs [`keep`] on a pool: checked as a connection is taken and given back; with
/// `ping`, a connection idle for [`PING_WHEN_IDLE`] or longer is also pinged before it
/// is used (and replaced if the ping fails).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn fenced<DB: sqlx::Database>(
    options: sqlx::pool::PoolOptions<DB>,
    ping: bool,
) -> sqlx::pool::PoolOptions<DB> {
    use sqlx::Connection as _;
    options
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if !keep(meta.age) {
                    return Ok(false);
                }
                if ping && meta.idle_for >= PING_WHEN_IDLE {
                    return Ok(conn.ping().await.is_ok());
                }
                Ok(true)
            })
        })
        .after_release(|_conn, meta| Box::pin(async move { Ok(keep(meta.age)) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_opened_before_a_read_only_answer_are_dropped() {
        std::thread::sleep(Duration::from_millis(20));
        seen("cannot execute UPDATE in a read-only transaction");
        // Opened 10 ms before the answer: dropped; opened after it: kept.
        assert!(!keep(Duration::from_millis(10)));
        assert!(!keep(Duration::from_secs(3600)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(keep(Duration::from_millis(5)));
    }
}

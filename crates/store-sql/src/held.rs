//! A pooled connection kept for one kind of work (a scheduler's passes, the history
//! writer), instead of taken from the pool and given back for each statement.
//!
//! The pool pings a connection as it comes back (sqlx does, to find connections left
//! mid-statement), so a statement on a pooled connection costs two round trips, and
//! the next statement of a pass, sent before that ping is answered, takes another
//! connection or opens one (several more round trips). A kept connection costs one
//! round trip a statement. It is checked as the pool checks the connections it hands
//! out: dropped when opened before the server last answered read-only (see
//! [`read_only`](crate::read_only)), pinged when it sat idle for
//! [`PING_WHEN_IDLE`](crate::read_only::PING_WHEN_IDLE) (with `test_before_acquire`),
//! and given back to the pool (which closes a broken one) after any error.

use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

/// Pools smaller than this keep no connection: the kept ones (up to three: passes,
/// history reads, history writes) and the change listener's would leave too few for
/// everything else.
#[cfg(any(feature = "postgres", feature = "mysql"))]
const MIN_POOL_TO_KEEP: u32 = 6;

/// A connection kept for one kind of work.
#[derive(Debug)]
pub(crate) struct Held<DB: Database> {
    pool: Pool<DB>,
    slot: tokio::sync::Mutex<Option<Slot<DB>>>,
    /// Whether a connection is kept between uses (a small pool takes one each time).
    keep: bool,
    /// Ping a connection idle this long before using it (`None`: never).
    ping_after: Option<Duration>,
}

#[derive(Debug)]
struct Slot<DB: Database> {
    conn: PoolConnection<DB>,
    /// When it was taken from the pool (which checked it then).
    taken: Instant,
    /// When a statement on it last succeeded.
    used: Instant,
}

/// The kept connection, locked for one operation; see [`Held::lock`].
pub(crate) struct HeldConn<'a, DB: Database> {
    guard: tokio::sync::MutexGuard<'a, Option<Slot<DB>>>,
    keep: bool,
    /// Set by [`HeldConn::done`]: an operation dropped before it (cancelled midway)
    /// may have left the connection mid-statement or mid-transaction, so it is closed
    /// (the server rolls back what the session left open).
    finished: bool,
}

impl<DB: Database> Drop for HeldConn<'_, DB> {
    fn drop(&mut self) {
        if !self.finished {
            if let Some(mut slot) = self.guard.take() {
                slot.conn.close_on_drop();
            }
        }
    }
}

impl<DB: Database> Held<DB> {
    /// A kept connection of `pool` (of at most `max_connections`), pinged after
    /// [`PING_WHEN_IDLE`](crate::read_only::PING_WHEN_IDLE) of idleness when `ping`.
    /// Only the servers keep connections (PostgreSQL, MySQL).
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    pub(crate) fn new(pool: &Pool<DB>, max_connections: u32, ping: bool) -> Self {
        Held {
            pool: pool.clone(),
            slot: tokio::sync::Mutex::new(None),
            keep: max_connections >= MIN_POOL_TO_KEEP,
            ping_after: ping.then_some(crate::read_only::PING_WHEN_IDLE),
        }
    }

    /// The connection, for one operation (others wait): the kept one when it is still
    /// fit, else one taken from the pool.
    ///
    /// # Errors
    /// The pool's, when no connection can be had.
    pub(crate) async fn lock(&self) -> Result<HeldConn<'_, DB>, sqlx::Error> {
        use sqlx::Connection as _;
        let mut guard = self.slot.lock().await;
        if let Some(slot) = guard.as_mut() {
            let fenced = !crate::read_only::keep(slot.taken.elapsed());
            let stale = self.ping_after.is_some_and(|d| slot.used.elapsed() >= d)
                && slot.conn.ping().await.is_err();
            if fenced || stale {
                *guard = None;
            }
        }
        if guard.is_none() {
            let conn = self.pool.acquire().await?;
            let now = Instant::now();
            *guard = Some(Slot {
                conn,
                taken: now,
                used: now,
            });
        }
        Ok(HeldConn {
            guard,
            keep: self.keep,
            finished: false,
        })
    }

    /// Gives the kept connection back to the pool (before the pool closes: a pool
    /// waits for its connections to come back).
    pub(crate) async fn release(&self) {
        self.slot.lock().await.take();
    }
}

impl<DB: Database> HeldConn<'_, DB> {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut DB::Connection {
        let slot = self
            .guard
            .as_mut()
            .expect("a connection is held while locked");
        &mut slot.conn
    }

    /// Ends the operation with its `result`: the connection is kept after a success
    /// (in a large enough pool), and given back to the pool after an error.
    pub(crate) fn done<T>(mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        self.finished = true;
        match (&result, self.keep) {
            (Ok(_), true) => {
                if let Some(slot) = self.guard.as_mut() {
                    slot.used = Instant::now();
                }
            }
            _ => {
                self.guard.take();
            }
        }
        result
    }

    /// [`done`](Self::done), closing the connection after an error instead of giving
    /// it back to the pool: a MySQL script stopped midway may have left its transaction
    /// open, and the server rolls back the transaction of a closed session.
    #[cfg(feature = "mysql")]
    pub(crate) fn done_closing<T>(
        mut self,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        if result.is_err() {
            if let Some(slot) = self.guard.as_mut() {
                slot.conn.close_on_drop();
            }
        }
        self.done(result)
    }
}

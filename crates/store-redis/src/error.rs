//! The store's own failures, mapped into the core [`Error`] with a matchable kind.

use apscheduler_core::{Error, ErrorKind};
use redis::{RedisError, ServerErrorKind};

/// What went wrong, before it becomes a core [`Error`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// Redis cannot be reached (refused, dropped, timed out, loading, read-only ...).
    #[error("Redis is unavailable ({what}): {source}")]
    Unavailable {
        what: &'static str,
        #[source]
        source: RedisError,
    },
    /// The server could not be reached at the first connection (the message names
    /// the address and the cause).
    #[error("{0}")]
    Unreachable(Error),
    /// Redis answered with an error that retrying will not fix.
    #[error("Redis command failed ({what}): {source}")]
    Backend {
        what: &'static str,
        #[source]
        source: RedisError,
    },
    /// Redis answered something the store does not understand.
    #[error("unexpected reply from Redis ({what}): {detail}")]
    Reply { what: &'static str, detail: String },
    /// The id is taken.
    #[error("Job identifier ({0}) conflicts with an existing job")]
    Conflict(String),
    /// No job has this id.
    #[error("No job by the id of {0} was found")]
    NotFound(String),
    /// A stored job cannot be read.
    #[error("stored job '{id}' cannot be read: {reason}")]
    Corrupt { id: String, reason: String },
    /// A stored run record cannot be read.
    #[error("stored run '{id}' cannot be read: {reason}")]
    CorruptRun { id: String, reason: String },
    /// A lease is not held.
    #[error("Scheduler {holder} no longer holds the lease on job(s) {ids}")]
    LeaseLost { holder: String, ids: String },
    /// A write the primary applied that fewer replicas than `wait_replicas` confirmed
    /// in time.
    #[error(
        "Redis write not replicated ({what}): applied on the primary but confirmed by \
         {confirmed} of {wanted} replicas within {millis} ms (wait_replicas); a failover \
         now could undo it"
    )]
    NotReplicated {
        what: &'static str,
        confirmed: u32,
        wanted: u32,
        millis: u64,
    },
    /// Bad configuration.
    #[error("{0}")]
    InvalidInput(String),
    /// Bad URL.
    #[error("invalid Redis URL: {source}")]
    InvalidUrl {
        #[source]
        source: RedisError,
    },
}

impl StoreError {
    /// Wraps a Redis error, classified as `Unavailable` when retrying may help.
    pub(crate) fn redis(what: &'static str, source: RedisError) -> Self {
        if is_unavailable(&source) {
            StoreError::Unavailable { what, source }
        } else {
            StoreError::Backend { what, source }
        }
    }

    /// Whether Redis answered that a script is not loaded (`NOSCRIPT`): the call did
    /// nothing.
    pub(crate) fn is_no_script(&self) -> bool {
        match self {
            StoreError::Backend { source, .. } | StoreError::Unavailable { source, .. } => {
                source.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript)
            }
            _ => false,
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Unavailable { .. }
            | StoreError::Unreachable(_)
            | StoreError::NotReplicated { .. } => ErrorKind::Unavailable,
            StoreError::Backend { .. } | StoreError::Reply { .. } => ErrorKind::Other,
            StoreError::Conflict(_) => ErrorKind::Conflict,
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::Corrupt { .. } | StoreError::CorruptRun { .. } => ErrorKind::Serialization,
            StoreError::LeaseLost { .. } => ErrorKind::LeaseLost,
            StoreError::InvalidInput(_) | StoreError::InvalidUrl { .. } => ErrorKind::InvalidInput,
        }
    }
}

/// Whether a Redis error is about reaching the server (worth retrying later).
fn is_unavailable(e: &RedisError) -> bool {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return true;
    }
    matches!(
        e.kind(),
        redis::ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        ) | redis::ErrorKind::Parse
    )
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        let kind = err.kind();
        let message = err.to_string();
        match err {
            StoreError::Unreachable(e) => e,
            StoreError::Unavailable { source, .. }
            | StoreError::Backend { source, .. }
            | StoreError::InvalidUrl { source } => Error::new(kind, message).with_source(source),
            _ => Error::new(kind, message),
        }
    }
}

/// Shorthand: a Redis result into a store result.
pub(crate) trait Context<T> {
    /// Classifies the error, naming the operation.
    fn context(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, RedisError> {
    fn context(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::redis(what, e))
    }
}

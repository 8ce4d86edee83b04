//! ZooKeeper's failures, mapped into the core [`Error`] with a matchable kind.

use apscheduler_core::{Error, ErrorKind};
use zookeeper_client::Error as ZkError;

/// Wraps a ZooKeeper error (kept as the source): `Unavailable` when the ensemble cannot
/// be reached (the engine retries), `Other` when retrying will not help.
pub(crate) fn zk(what: &'static str, source: ZkError) -> Error {
    let (kind, state) = if is_unavailable(&source) {
        (ErrorKind::Unavailable, "is unavailable")
    } else {
        (ErrorKind::Other, "call failed")
    };
    Error::new(kind, format!("ZooKeeper {state} ({what}): {source}")).with_source(source)
}

/// Whether a ZooKeeper error is about reaching the ensemble (worth retrying later).
pub(crate) fn is_unavailable(e: &ZkError) -> bool {
    matches!(
        e,
        ZkError::ConnectionLoss
            | ZkError::SessionExpired
            | ZkError::SessionMoved
            | ZkError::Timeout
            | ZkError::NoHosts
            | ZkError::ClientClosed
            | ZkError::NotReadOnly
    )
}

/// `InvalidInput` naming a configuration field and its value.
pub(crate) fn invalid(field: &str, value: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("invalid value for field '{field}': {value:?}: {why}"),
    )
}

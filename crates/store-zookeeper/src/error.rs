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

/// Whether a ZooKeeper error is about reaching the ensemble (worth retrying later):
/// the client's connection errors, and a socket error it passes on as it is (a
/// connection reset while a server restarts).
pub(crate) fn is_unavailable(e: &ZkError) -> bool {
    match e {
        ZkError::ConnectionLoss
        | ZkError::SessionExpired
        | ZkError::SessionMoved
        | ZkError::Timeout
        | ZkError::NoHosts
        | ZkError::ClientClosed
        | ZkError::NotReadOnly => true,
        ZkError::Custom(custom) => caused_by_io(custom),
        _ => false,
    }
}

/// Whether an I/O error is among `e`'s causes (the client keeps them behind an `Arc`).
fn caused_by_io(e: &(dyn std::error::Error + 'static)) -> bool {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut next = e.source();
    while let Some(cause) = next {
        let io = cause.is::<std::io::Error>()
            || cause
                .downcast_ref::<Shared>()
                .is_some_and(|shared| shared.is::<std::io::Error>());
        if io {
            return true;
        }
        next = cause.source();
    }
    false
}

/// `InvalidInput` naming a configuration field and its value.
pub(crate) fn invalid(field: &str, value: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("invalid value for field '{field}': {value:?}: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::caused_by_io;

    /// An error holding its cause behind an `Arc`, as the client's own errors do.
    #[derive(Debug)]
    struct Wrapper(Option<Arc<dyn std::error::Error + Send + Sync>>);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapper")
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.0
                .as_ref()
                .map(|s| s as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn a_socket_error_behind_an_arc_is_found() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(caused_by_io(&Wrapper(Some(Arc::new(reset)))));
        let other = std::fmt::Error;
        assert!(!caused_by_io(&Wrapper(Some(Arc::new(other)))));
        assert!(!caused_by_io(&Wrapper(None)));
    }
}

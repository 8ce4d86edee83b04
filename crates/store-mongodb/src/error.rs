//! Backend errors and their mapping to the core [`ErrorKind`]s.

use std::error::Error as StdError;

use apscheduler_core::{Error, ErrorKind};
use mongodb::error::{Error as DriverError, ErrorKind as DriverKind, WriteFailure};

/// MongoDB's duplicate key error code.
pub(crate) const DUPLICATE_KEY: i32 = 11000;

/// Server error codes that mean "not now, retry": network trouble, elections,
/// shutdowns (the retryable error codes of MongoDB's driver specifications).
const RETRYABLE_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// What went wrong talking to MongoDB. Private: callers see a core [`Error`] with this
/// as its source (and the driver's error as the source of this).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The driver reported an error.
    #[error("MongoDB job store ({namespace}): {context}")]
    Driver {
        namespace: String,
        context: String,
        #[source]
        source: DriverError,
    },
    /// A write command reported a write error in its reply.
    #[error("MongoDB job store ({namespace}): {context}: server error {code}: {message}")]
    Write {
        namespace: String,
        context: String,
        code: i32,
        message: String,
    },
}

impl StoreError {
    /// The core kind this error maps to.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Driver { source, .. } => driver_kind(source),
            StoreError::Write { code, .. } => code_kind(*code),
        }
    }

    /// Converts to a core error whose message ends with the cause.
    pub(crate) fn into_error(self) -> Error {
        let mut message = self.to_string();
        if let Some(cause) = self.source() {
            message.push_str(": ");
            message.push_str(&cause.to_string());
        }
        Error::new(self.kind(), message).with_source(self)
    }
}

fn code_kind(code: i32) -> ErrorKind {
    if code == DUPLICATE_KEY {
        ErrorKind::Conflict
    } else if RETRYABLE_CODES.contains(&code) {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    }
}

/// Whether a driver error is a duplicate key error (single or bulk write).
pub(crate) fn is_duplicate_key(error: &DriverError) -> bool {
    match &*error.kind {
        DriverKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        DriverKind::InsertMany(e) => e
            .write_errors
            .iter()
            .flatten()
            .any(|e| e.code == DUPLICATE_KEY),
        DriverKind::Command(e) => e.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// The core kind of a driver error: network trouble and server selection are
/// `Unavailable`, duplicate keys `Conflict`, BSON (de)serialization `Serialization`.
pub(crate) fn driver_kind(error: &DriverError) -> ErrorKind {
    if error.contains_label("RetryableWriteError")
        || error.contains_label("TransientTransactionError")
    {
        return ErrorKind::Unavailable;
    }
    if is_duplicate_key(error) {
        return ErrorKind::Conflict;
    }
    match &*error.kind {
        DriverKind::ServerSelection { .. }
        | DriverKind::Io(_)
        | DriverKind::ConnectionPoolCleared { .. }
        | DriverKind::DnsResolve { .. }
        | DriverKind::Shutdown => ErrorKind::Unavailable,
        DriverKind::BsonDeserialization(_) | DriverKind::BsonSerialization(_) => {
            ErrorKind::Serialization
        }
        DriverKind::InvalidArgument { .. } => ErrorKind::InvalidInput,
        DriverKind::Command(e) => code_kind(e.code),
        DriverKind::Write(WriteFailure::WriteError(e)) => code_kind(e.code),
        DriverKind::Write(WriteFailure::WriteConcernError(e)) => code_kind(e.code),
        DriverKind::InsertMany(e) => e
            .write_errors
            .iter()
            .flatten()
            .map(|e| code_kind(e.code))
            .chain(e.write_concern_error.iter().map(|e| code_kind(e.code)))
            .next()
            .unwrap_or(ErrorKind::Other),
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let e = StoreError::Write {
            namespace: "apscheduler.jobs".into(),
            context: "add_job 'a'".into(),
            code: DUPLICATE_KEY,
            message: "E11000 duplicate key".into(),
        }
        .into_error();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(
            e.message(),
            "MongoDB job store (apscheduler.jobs): add_job 'a': server error 11000: E11000 duplicate key"
        );
        assert_eq!(code_kind(10107), ErrorKind::Unavailable);
        assert_eq!(code_kind(2), ErrorKind::Other);
    }
}

//! Typed errors shared by every crate of the workspace.

use std::error::Error as StdError;
use std::fmt;

/// A trigger could not be built from the given input.
///
/// Every variant names the offending field and the value that was given, so a
/// message can be shown to a user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// A cron field (or another trigger option) holds a value that is out of
    /// range or cannot be parsed.
    #[error("invalid value for field '{field}': '{value}': {reason}")]
    InvalidField {
        /// The field name, such as `minute` or `day_of_week`.
        field: String,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The timezone is not an IANA name known to the time zone database.
    #[error("unknown timezone for field '{field}': '{value}'")]
    UnknownTimezone {
        /// The field name (usually `timezone`).
        field: String,
        /// The name as given.
        value: String,
    },
    /// A date or datetime input could not be read.
    #[error("invalid date for field '{field}': '{value}': {reason}")]
    InvalidDate {
        /// The field name, such as `start_date` or `run_date`.
        field: String,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// An interval of zero or negative length.
    #[error("invalid value for field '{field}': '{value}': interval must be longer than zero")]
    EmptyInterval {
        /// The field name (`interval`, or the calendar interval's unit fields).
        field: String,
        /// The interval as given.
        value: String,
    },
    /// `end_date` lies before `start_date`.
    #[error(
        "invalid value for field 'end_date': '{end}': end_date is before start_date ('{start}')"
    )]
    EndBeforeStart {
        /// The start date as given.
        start: String,
        /// The end date as given.
        end: String,
    },
    /// A crontab expression without exactly five fields.
    #[error("invalid value for field 'crontab': '{expr}': wrong number of fields; got {got}, expected 5")]
    CrontabFieldCount {
        /// The expression as given.
        expr: String,
        /// How many whitespace-separated fields it had.
        got: usize,
    },
    /// An argument the trigger kind does not know, or a trigger kind that does not exist.
    #[error("invalid value for field '{field}': '{value}': {reason}")]
    UnknownArgument {
        /// The argument or field name.
        field: String,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

impl TriggerError {
    /// The name of the field this error is about.
    pub fn field(&self) -> &str {
        match self {
            TriggerError::InvalidField { field, .. }
            | TriggerError::UnknownTimezone { field, .. }
            | TriggerError::InvalidDate { field, .. }
            | TriggerError::EmptyInterval { field, .. }
            | TriggerError::UnknownArgument { field, .. } => field,
            TriggerError::EndBeforeStart { .. } => "end_date",
            TriggerError::CrontabFieldCount { .. } => "crontab",
        }
    }

    /// Shorthand for [`TriggerError::InvalidField`].
    pub fn invalid_field(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        TriggerError::InvalidField {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// What kind of failure an [`Error`] is; callers match on this, never on backend types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Input given by the caller was refused (bad trigger, bad option, bad configuration).
    InvalidInput,
    /// A job, job store or executor with that name does not exist.
    NotFound,
    /// A job, job store or executor with that name already exists.
    Conflict,
    /// A lease on a job was lost to another scheduler (or expired).
    LeaseLost,
    /// A job could not be serialized or deserialized.
    Serialization,
    /// A backend could not be reached; the operation may succeed if retried.
    Unavailable,
    /// The operation is not allowed in the scheduler's current state.
    InvalidState,
    /// A job's task failed or panicked.
    Task,
    /// Anything else.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::LeaseLost => "lease lost",
            ErrorKind::Serialization => "serialization",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::InvalidState => "invalid state",
            ErrorKind::Task => "task",
            ErrorKind::Other => "other",
        };
        f.write_str(name)
    }
}

/// The one error type of the scheduler API: a [`ErrorKind`], a message, and the
/// underlying error (a backend's own error type, a [`TriggerError`], ...) as source.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the source.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The store contract's duplicate-id error (APScheduler's `ConflictingIdError`).
    pub fn conflict(id: &str) -> Self {
        Error::new(
            ErrorKind::Conflict,
            format!("Job identifier ({id}) conflicts with an existing job"),
        )
    }

    /// The store contract's unknown-id error (APScheduler's `JobLookupError`).
    pub fn job_not_found(id: &str) -> Self {
        Error::new(
            ErrorKind::NotFound,
            format!("No job by the id of {id} was found"),
        )
    }

    /// The store contract's error for leases `scheduler_id` no longer holds.
    pub fn lease_lost(scheduler_id: &str, ids: &[&str]) -> Self {
        Error::new(
            ErrorKind::LeaseLost,
            format!(
                "Scheduler {scheduler_id} no longer holds the lease on job(s) {}",
                ids.join(", ")
            ),
        )
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::LeaseLost)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<TriggerError> for Error {
    fn from(err: TriggerError) -> Self {
        Error::new(ErrorKind::InvalidInput, err.to_string()).with_source(err)
    }
}

/// Result alias with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

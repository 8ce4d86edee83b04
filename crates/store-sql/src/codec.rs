//! Jobs to rows and back: the `state` JSON, the indexed columns, and the guards that
//! keep a hostile or damaged row from doing harm when it is read.

use apscheduler_core::codec::{StateCodec, StateFormat};
use apscheduler_core::{Error, ErrorKind, Job, JobState};

/// The longest job id (and scheduler id) the tables hold: `VARCHAR(191)`, the longest
/// `utf8mb4` key MySQL indexes on every InnoDB row format.
pub const MAX_ID_CHARS: usize = 191;

/// How much of an error message is kept in the `corrupt` column.
const MAX_CORRUPT_MESSAGE: usize = 2000;

/// A job as a row: what is written.
#[derive(Debug, Clone)]
pub struct EncodedJob {
    pub(crate) id: String,
    /// Microseconds since the Unix epoch (UTC), rounded up; `None` = paused.
    pub(crate) next_run_time: Option<i64>,
    pub(crate) paused: bool,
    /// The state in the JSON format (the `state` column); empty in the bincode format.
    pub(crate) state: String,
    /// The state in the bincode format (the `state_bin` column); `None` in JSON.
    pub(crate) state_bin: Option<Vec<u8>>,
    pub(crate) format_version: i32,
}

/// A row as read back.
#[derive(Debug, Clone)]
pub(crate) struct FetchedRow {
    pub(crate) id: String,
    pub(crate) next_run_time: Option<i64>,
    /// The state in either format (`state_bin`, else `state`); `None` when it is larger
    /// than the configured bound (it was not fetched).
    pub(crate) state: Option<Vec<u8>>,
    /// The state's size in bytes.
    pub(crate) size: i64,
    pub(crate) format_version: i32,
    /// Why the row was set aside, if it was.
    pub(crate) corrupt: Option<String>,
}

// Instants in microseconds: core's one rounding rule (run times up, now down).
pub(crate) use apscheduler_core::time::micros::{
    expiry, lease_length, now as micros_floor, run_time as micros_ceil, to_instant as from_micros,
};

/// Refuses ids the tables cannot hold: longer than [`MAX_ID_CHARS`] characters, or
/// holding a NUL character (PostgreSQL's text types cannot store it).
pub(crate) fn check_id(field: &str, id: &str) -> Result<(), Error> {
    let reason = if id.chars().count() > MAX_ID_CHARS {
        format!("longer than {MAX_ID_CHARS} characters, the most a SQL job store holds")
    } else if id.contains('\0') {
        "contains a NUL character, which a SQL job store cannot hold".to_owned()
    } else {
        return Ok(());
    };
    let shown: String = id.chars().take(64).collect();
    let ellipsis = if shown.len() < id.len() { "..." } else { "" };
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("invalid value for field '{field}': '{shown}{ellipsis}': {reason}"),
    ))
}

/// Serializes a job into its row with the store's codec.
///
/// # Errors
/// `Serialization` for a closure task, a trigger without a persisted form, or a state
/// over the codec's caps (size, nesting: it could not be read back); `InvalidInput` for
/// an id the table cannot hold.
pub(crate) fn encode(job: &Job, codec: &StateCodec) -> Result<EncodedJob, Error> {
    check_id("id", &job.id)?;
    let bytes = codec.encode(job)?;
    let (state, state_bin) = match codec.format {
        StateFormat::Json => (
            String::from_utf8(bytes).map_err(|e| {
                Error::new(ErrorKind::Serialization, format!("job '{}': {e}", job.id))
            })?,
            None,
        ),
        _ => (String::new(), Some(bytes)),
    };
    Ok(EncodedJob {
        id: job.id.to_string(),
        next_run_time: job.next_run_time.as_ref().map(micros_ceil),
        paused: job.next_run_time.is_none(),
        state,
        state_bin,
        format_version: i32::try_from(JobState::VERSION).unwrap_or(i32::MAX),
    })
}

/// Why a row cannot be read, as stored in the `corrupt` column and reported in
/// [`CorruptJob::error`](apscheduler_core::CorruptJob::error).
pub(crate) fn corrupt_message(id: &str, reason: &str) -> String {
    let mut msg = format!("stored job '{id}' cannot be read: {reason}");
    if msg.len() > MAX_CORRUPT_MESSAGE {
        let mut end = MAX_CORRUPT_MESSAGE;
        while !msg.is_char_boundary(end) {
            end -= 1;
        }
        msg.truncate(end);
        msg.push_str("...");
    }
    msg
}

/// Rebuilds a job from its row.
///
/// The indexed `next_run_time` column wins over the time in the state when they differ
/// (someone edited the column by hand): it is what claims go by. A row already marked
/// corrupt is refused with its stored reason.
///
/// # Errors
/// The reason, as a complete message (see [`corrupt_message`]).
pub(crate) fn decode(row: &FetchedRow, codec: &StateCodec) -> Result<Job, String> {
    let max_bytes = codec.max_bytes;
    if let Some(reason) = &row.corrupt {
        return Err(reason.clone());
    }
    let corrupt = |reason: String| corrupt_message(&row.id, &reason);
    let Some(raw) = &row.state else {
        return Err(corrupt(format!(
            "its state is {} bytes, over this store's limit of {max_bytes} bytes",
            row.size
        )));
    };
    if u32::try_from(row.format_version).ok() != Some(JobState::VERSION) {
        return Err(corrupt(format!(
            "unknown format version {} (this build reads version {})",
            row.format_version,
            JobState::VERSION
        )));
    }
    let mut job = match decode_readable(&row.id, raw, codec) {
        Some(job) => job,
        // The same steps, each with its reason.
        None => {
            let state = codec.decode(raw).map_err(corrupt)?;
            if state.id != row.id {
                return Err(corrupt(format!(
                    "its state belongs to job '{}'",
                    state.id.chars().take(200).collect::<String>()
                )));
            }
            state
                .into_job(apscheduler_triggers::decode_trigger)
                .map_err(|e| e.message().to_owned())?
        }
    };
    job.next_run_time = match (row.next_run_time, job.next_run_time) {
        (None, _) => None,
        (Some(us), Some(t)) if micros_ceil(&t) == us => Some(t),
        (Some(us), t) => {
            let tz = t.map_or_else(|| job.trigger.timezone(), |t| t.timezone());
            Some(from_micros(us).with_timezone(&tz))
        }
    };
    Ok(job)
}

/// The job in a readable JSON state, its trigger read from its text (see
/// [`StateCodec::decode_lazy_trigger`]); `None` for anything else, which [`decode`]
/// then reads step by step for the reason.
fn decode_readable(id: &str, raw: &[u8], codec: &StateCodec) -> Option<Job> {
    let (state, trigger) = codec.decode_lazy_trigger(raw)?;
    if state.id != id {
        return None;
    }
    let trigger = apscheduler_triggers::decode_trigger_text(trigger).ok()?;
    state.into_job_with_trigger(trigger).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn rounding() {
        let t = chrono_tz::Tz::UTC.timestamp_opt(10, 500).unwrap();
        assert_eq!(micros_ceil(&t), 10_000_001);
        let t = chrono_tz::Tz::UTC.timestamp_opt(10, 1000).unwrap();
        assert_eq!(micros_ceil(&t), 10_000_001);
        let t = chrono_tz::Tz::UTC.timestamp_opt(-1, 999_999_500).unwrap();
        assert_eq!(micros_ceil(&t), 0);
    }

    #[test]
    fn ids() {
        assert!(check_id("id", &"x".repeat(191)).is_ok());
        assert!(check_id("id", &"é".repeat(191)).is_ok());
        let err = check_id("id", &"x".repeat(192)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("'id'"), "{err}");
        assert!(check_id("id", "a\0b").is_err());
    }

    #[test]
    fn corrupt_messages_are_bounded() {
        let long = "x".repeat(10_000);
        assert!(corrupt_message("a", &long).len() <= MAX_CORRUPT_MESSAGE + 3);
    }
}

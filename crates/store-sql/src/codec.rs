//! Jobs to rows and back: the `state` JSON, the indexed columns, and the guards that
//! keep a hostile or damaged row from doing harm when it is read.

use apscheduler_core::{Error, ErrorKind, Job, JobState};

/// The longest job id (and scheduler id) the tables hold: `VARCHAR(191)`, the longest
/// `utf8mb4` key MySQL indexes on every InnoDB row format.
pub const MAX_ID_CHARS: usize = 191;

/// How deeply arrays and objects may nest in a stored state (the trigger, arguments
/// and keyword arguments included) before the row is refused.
pub(crate) const MAX_NESTING: usize = 64;

/// How much of an error message is kept in the `corrupt` column.
const MAX_CORRUPT_MESSAGE: usize = 2000;

/// A job as a row: what is written.
#[derive(Debug, Clone)]
pub(crate) struct EncodedJob {
    pub(crate) id: String,
    /// Microseconds since the Unix epoch (UTC), rounded up; `None` = paused.
    pub(crate) next_run_time: Option<i64>,
    pub(crate) paused: bool,
    /// The `JobState` JSON.
    pub(crate) state: String,
    pub(crate) format_version: i32,
}

/// A row as read back.
#[derive(Debug, Clone)]
pub(crate) struct FetchedRow {
    pub(crate) id: String,
    pub(crate) next_run_time: Option<i64>,
    /// `None` when the state is larger than the configured bound (it was not fetched).
    pub(crate) state: Option<String>,
    /// The state's size in bytes.
    pub(crate) size: i64,
    pub(crate) format_version: i32,
    /// Why the row was set aside, if it was.
    pub(crate) corrupt: Option<String>,
}

// Instants in microseconds: core's one rounding rule (run times up, now down).
pub(crate) use apscheduler_core::time::micros::{
    expiry, now as micros_floor, run_time as micros_ceil, to_instant as from_micros,
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

/// Serializes a job into its row.
///
/// # Errors
/// `Serialization` for a closure task, a trigger without a persisted form, or a state
/// over `max_bytes` or nested deeper than [`MAX_NESTING`] (it could not be read back);
/// `InvalidInput` for an id the table cannot hold.
pub(crate) fn encode(job: &Job, max_bytes: usize) -> Result<EncodedJob, Error> {
    check_id("id", &job.id)?;
    let state = job.to_state()?;
    let json = serde_json::to_string(&state).map_err(|e| {
        Error::new(
            ErrorKind::Serialization,
            format!("job '{}' cannot be serialized: {e}", job.id),
        )
        .with_source(e)
    })?;
    if json.len() > max_bytes {
        return Err(Error::new(
            ErrorKind::Serialization,
            format!(
                "job '{}' cannot be stored: its state is {} bytes, over this store's limit of {max_bytes} bytes",
                job.id,
                json.len()
            ),
        ));
    }
    if let Err(reason) = check_nesting(&json) {
        return Err(Error::new(
            ErrorKind::Serialization,
            format!("job '{}' cannot be stored: {reason}", job.id),
        ));
    }
    Ok(EncodedJob {
        id: job.id.to_string(),
        next_run_time: job.next_run_time.as_ref().map(micros_ceil),
        paused: job.next_run_time.is_none(),
        state: json,
        format_version: i32::try_from(JobState::VERSION).unwrap_or(i32::MAX),
    })
}

/// Rejects JSON whose arrays and objects nest deeper than [`MAX_NESTING`], in one pass
/// over the bytes and before any parsing, so a hostile row cannot exhaust the stack or
/// the heap.
fn check_nesting(json: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "its state nests arrays and objects deeper than {MAX_NESTING} levels"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
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
pub(crate) fn decode(row: &FetchedRow, max_bytes: usize) -> Result<Job, String> {
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
    if raw.len() > max_bytes {
        return Err(corrupt(format!(
            "its state is {} bytes, over this store's limit of {max_bytes} bytes",
            raw.len()
        )));
    }
    if u32::try_from(row.format_version).ok() != Some(JobState::VERSION) {
        return Err(corrupt(format!(
            "unknown format version {} (this build reads version {})",
            row.format_version,
            JobState::VERSION
        )));
    }
    check_nesting(raw).map_err(corrupt)?;
    let state: JobState =
        serde_json::from_str(raw).map_err(|e| corrupt(format!("invalid state JSON: {e}")))?;
    if state.id != row.id {
        return Err(corrupt(format!(
            "its state belongs to job '{}'",
            state.id.chars().take(200).collect::<String>()
        )));
    }
    let mut job = state
        .into_job(apscheduler_triggers::decode_trigger)
        .map_err(|e| e.message().to_owned())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn nesting() {
        assert!(check_nesting(r#"{"a":[[["x"]]]}"#).is_ok());
        let deep = "[".repeat(MAX_NESTING + 1) + &"]".repeat(MAX_NESTING + 1);
        assert!(check_nesting(&deep).is_err());
        let ok = "[".repeat(MAX_NESTING) + &"]".repeat(MAX_NESTING);
        assert!(check_nesting(&ok).is_ok());
        // Brackets inside strings do not count, escaped quotes do not end strings.
        let quoted = format!("{{\"k\":\"{}\\\"{}\"}}", "[".repeat(500), "{".repeat(500));
        assert!(check_nesting(&quoted).is_ok());
    }

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

//! The stored form of a job: its [`JobState`] JSON, plus the zone of its run time.

use apscheduler_core::chrono_tz::Tz;
use apscheduler_core::{Error, ErrorKind, Job, JobState};
use serde::Serialize;
use serde_json::Value;

/// The field added to the [`JobState`] JSON that names the time zone of the job's next
/// run time (`JobState::next_run_time` keeps only the UTC offset, and `into_job` reads
/// it in the trigger's zone).
pub(crate) const ZONE_FIELD: &str = "next_run_time_zone";

#[derive(Serialize)]
struct Stored<'a> {
    #[serde(flatten)]
    state: &'a JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_run_time_zone: Option<&'a str>,
}

/// A job ready to be written: its JSON and its run time score (`None` = paused).
pub(crate) struct Encoded {
    pub(crate) state: Vec<u8>,
    pub(crate) run: Option<i64>,
}

impl Encoded {
    /// The run time as a script argument: decimal microseconds, or `""` when paused.
    pub(crate) fn run_arg(&self) -> String {
        self.run.map(|us| us.to_string()).unwrap_or_default()
    }
}

// Scores are UTC microseconds: core's one rounding rule (run times up, now down).
pub(crate) use apscheduler_core::time::micros::{
    now as now_micros, run_time as score, to_instant as from_micros,
};

/// Serializes a job, refusing closures, unpersistable triggers (as `to_state` does)
/// and states larger than `max_bytes`.
pub(crate) fn encode(job: &Job, max_bytes: usize) -> Result<Encoded, Error> {
    let state = job.to_state()?;
    let zone = job.next_run_time.as_ref().map(|t| t.timezone().name());
    let json = serde_json::to_vec(&Stored {
        state: &state,
        next_run_time_zone: zone,
    })
    .map_err(|e| {
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
                "job '{}' is {} bytes once serialized, more than the store's limit of {max_bytes} bytes",
                job.id,
                json.len()
            ),
        ));
    }
    Ok(Encoded {
        state: json,
        run: job.next_run_time.as_ref().map(score),
    })
}

/// Reads a stored job back; the error says why it cannot be read (for the `corrupt`
/// hash and [`CorruptJob`](apscheduler_core::CorruptJob)).
pub(crate) fn decode(id: &[u8], raw: &[u8], max_bytes: usize) -> Result<Job, String> {
    if raw.len() > max_bytes {
        return Err(format!(
            "the stored state is {} bytes, more than the limit of {max_bytes} bytes",
            raw.len()
        ));
    }
    let mut value: Value =
        serde_json::from_slice(raw).map_err(|e| format!("the stored state is not JSON: {e}"))?;
    let zone = match value.as_object_mut() {
        Some(map) => map.remove(ZONE_FIELD),
        None => return Err("the stored state is not a JSON object".into()),
    };
    let state: JobState =
        serde_json::from_value(value).map_err(|e| format!("the stored state is not a job: {e}"))?;
    if state.id.as_bytes() != id {
        return Err(format!(
            "the stored state belongs to job '{}', not to '{}'",
            state.id,
            String::from_utf8_lossy(id)
        ));
    }
    let mut job = state
        .into_job(apscheduler_triggers::decode_trigger)
        .map_err(|e| e.message().to_owned())?;
    match zone {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => {
            let tz: Tz = name
                .parse()
                .map_err(|_| format!("unknown time zone '{name}' in {ZONE_FIELD}"))?;
            job.next_run_time = job.next_run_time.map(|t| t.with_timezone(&tz));
        }
        Some(other) => return Err(format!("invalid {ZONE_FIELD}: {other}")),
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_round_up_below_the_microsecond() {
        let t = chrono::DateTime::from_timestamp(10, 0).unwrap();
        assert_eq!(score(&t), 10_000_000);
        let t = chrono::DateTime::from_timestamp(10, 1_000).unwrap();
        assert_eq!(score(&t), 10_000_001);
        let t = chrono::DateTime::from_timestamp(10, 500).unwrap();
        assert_eq!(score(&t), 10_000_001);
        let t = chrono::DateTime::from_timestamp(-1, 999_999_500).unwrap();
        assert_eq!(score(&t), 0);
        assert_eq!(now_micros(&t), -1);
    }

    #[test]
    fn decode_explains_what_is_wrong() {
        let err = decode(b"a", b"{not json", 1024).unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
        let err = decode(b"a", b"[1]", 1024).unwrap_err();
        assert!(err.contains("not a JSON object"), "{err}");
        let err = decode(b"a", b"{}", 1024).unwrap_err();
        assert!(err.contains("not a job"), "{err}");
        let err = decode(b"a", &[b' '; 2000], 1024).unwrap_err();
        assert!(err.contains("2000 bytes"), "{err}");
    }
}

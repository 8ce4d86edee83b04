//! The stored form of a job: its state as core's codec writes it (JSON or bincode,
//! [`apscheduler_core::codec`]), scored by its next run time.

use apscheduler_core::codec::StateCodec;
use apscheduler_core::{Error, Job};

/// A job ready to be written: its JSON and its run time score (`None` = paused).
#[derive(Debug, Clone)]
pub struct Encoded {
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
    lease_length, now as now_micros, run_time as score, to_instant as from_micros,
};

/// Serializes a job, refusing closures, unpersistable triggers (as `to_state` does)
/// and states over the codec's caps.
pub(crate) fn encode(job: &Job, codec: &StateCodec) -> Result<Encoded, Error> {
    Ok(Encoded {
        state: codec.encode(job)?,
        run: job.next_run_time.as_ref().map(score),
    })
}

/// Reads a stored job back (either format); the error says why it cannot be read (for
/// the `corrupt` hash and [`CorruptJob`](apscheduler_core::CorruptJob)).
pub(crate) fn decode(id: &[u8], raw: &[u8], codec: &StateCodec) -> Result<Job, String> {
    let state = codec.decode(raw)?;
    if state.id.as_bytes() != id {
        return Err(format!(
            "the stored state belongs to job '{}', not to '{}'",
            state.id,
            String::from_utf8_lossy(id)
        ));
    }
    state
        .into_job(apscheduler_triggers::decode_trigger)
        .map_err(|e| e.message().to_owned())
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
        use apscheduler_core::codec::StateFormat;
        let codec = StateCodec::new(StateFormat::Json, 1024);
        let err = decode(b"a", b"{not json", &codec).unwrap_err();
        assert!(err.contains("invalid state JSON"), "{err}");
        let err = decode(b"a", b"[1]", &codec).unwrap_err();
        assert!(err.contains("invalid state JSON"), "{err}");
        let err = decode(b"a", &[b' '; 2000], &codec).unwrap_err();
        assert!(err.contains("2000 bytes"), "{err}");
        let err = decode(b"a", b"\0APSb1\x01", &codec).unwrap_err();
        assert!(err.contains("invalid bincode state"), "{err}");
    }
}

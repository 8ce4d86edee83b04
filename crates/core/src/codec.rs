//! The job-state codec every persistent store uses: a [`JobState`] to bytes and back,
//! in one of two formats, with the guards that keep a hostile or damaged record from
//! doing harm when it is read (a size cap, a nesting cap). Instants in store columns
//! follow [`crate::time::micros`].
//!
//! - [`StateFormat::Json`] (the default): the `JobState` JSON, readable in the database.
//! - [`StateFormat::Bincode`]: a compact binary record (bincode 1.x, variable-length
//!   integers) that starts with [`BINCODE_MAGIC`]. Arguments, keyword arguments and the
//!   trigger stay JSON text inside it, since bincode cannot carry arbitrary JSON values.
//!   Options added since (`recover`) follow the record, and only when one of them
//!   differs from its default: an ordinary job's record is unchanged, and records
//!   written before them read as defaults.
//!
//! [`StateCodec::decode`] reads either format whatever the store writes, so switching a
//! store's format is not a migration: old records are read, new ones written in the new
//! format.
//!
//! ```
//! use apscheduler_core::codec::{StateCodec, StateFormat};
//! # use apscheduler_core::JobState;
//! # let state = JobState {
//! #     version: JobState::VERSION, id: "a".into(), name: "a".into(), task: "t".into(),
//! #     args: vec![1.into()], kwargs: Default::default(),
//! #     trigger: apscheduler_core::serde_json::json!({"type": "date"}), executor: "default".into(),
//! #     misfire_grace_time: Some(1.0), coalesce: true, max_instances: 1, recover: false,
//! #     policy: Default::default(), paused_reason: None, declaration: None,
//! #     next_run_time: None, next_run_time_zone: None,
//! # };
//! let codec = StateCodec::new(StateFormat::Bincode, 1 << 20);
//! let bytes = codec.encode_state(&state)?;
//! let back = StateCodec::new(StateFormat::Json, 1 << 20).decode(&bytes).unwrap();
//! assert_eq!(back.args, state.args);
//! # Ok::<(), apscheduler_core::Error>(())
//! ```

use std::fmt;

use bincode::Options;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, ErrorKind, Job, JobState, RunPolicy};

/// How deeply arrays and objects may nest in a stored state (the trigger, arguments
/// and keyword arguments included) before it is refused, written or read.
pub const MAX_NESTING: usize = 64;

/// The first bytes of a bincode record (JSON never starts with a NUL byte).
pub const BINCODE_MAGIC: &[u8] = b"\0APSb1";

/// The format a store writes job states in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StateFormat {
    /// The `JobState` JSON (the default): readable in the database.
    #[default]
    Json,
    /// A compact binary record (see the module documentation).
    Bincode,
}

impl fmt::Display for StateFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateFormat::Json => "json",
            StateFormat::Bincode => "bincode",
        })
    }
}

impl std::str::FromStr for StateFormat {
    type Err = Error;

    /// `json` or `bincode`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "json" => Ok(StateFormat::Json),
            "bincode" => Ok(StateFormat::Bincode),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "invalid value for field 'state_format': '{other}': expected json or bincode"
                ),
            )),
        }
    }
}

/// A store's codec: the format it writes and the largest state it writes or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateCodec {
    /// The format new records are written in.
    pub format: StateFormat,
    /// The largest encoded state, in bytes, written or read.
    pub max_bytes: usize,
}

/// The bincode record: `JobState` with its JSON values as text.
#[derive(Serialize, Deserialize)]
struct BinaryState {
    version: u32,
    id: String,
    name: String,
    task: String,
    args: String,
    kwargs: String,
    trigger: String,
    executor: String,
    misfire_grace_time: Option<f64>,
    coalesce: bool,
    max_instances: u32,
    next_run_time: Option<String>,
    next_run_time_zone: Option<String>,
}

/// The options added after [`BinaryState`] was fixed, written after it only when one
/// differs from its default (see the module documentation).
#[derive(Serialize, Deserialize, Default, PartialEq)]
struct BinaryExtras {
    recover: bool,
}

/// The options added after [`BinaryExtras`], written after it as one JSON text (so that
/// adding one needs no new layout), only when one is set.
#[derive(Serialize, Deserialize, Default, PartialEq)]
struct JsonExtras {
    #[serde(default, skip_serializing_if = "RunPolicy::is_default")]
    policy: RunPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paused_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    declaration: Option<String>,
}

impl BinaryExtras {
    fn of(s: &JobState) -> Self {
        BinaryExtras { recover: s.recover }
    }
}

impl From<&JobState> for BinaryState {
    fn from(s: &JobState) -> Self {
        // JSON values (string keys only) always serialize: `Display` is their JSON text.
        BinaryState {
            version: s.version,
            id: s.id.clone(),
            name: s.name.clone(),
            task: s.task.clone(),
            args: Value::from(s.args.clone()).to_string(),
            kwargs: Value::from(s.kwargs.clone()).to_string(),
            trigger: s.trigger.to_string(),
            executor: s.executor.clone(),
            misfire_grace_time: s.misfire_grace_time,
            coalesce: s.coalesce,
            max_instances: s.max_instances,
            next_run_time: s.next_run_time.clone(),
            next_run_time_zone: s.next_run_time_zone.clone(),
        }
    }
}

impl StateCodec {
    /// A codec writing `format`, refusing states over `max_bytes`.
    pub fn new(format: StateFormat, max_bytes: usize) -> Self {
        StateCodec { format, max_bytes }
    }

    /// Encodes a job's state.
    ///
    /// # Errors
    /// `Serialization` for a closure task, a trigger without a persisted form (as
    /// [`Job::to_state`]), or a state over the size cap or nested deeper than
    /// [`MAX_NESTING`] (it could not be read back); the message names the job.
    pub fn encode(&self, job: &Job) -> Result<Vec<u8>, Error> {
        self.encode_state(&job.to_state()?)
    }

    /// Encodes a state (see [`StateCodec::encode`]).
    ///
    /// # Errors
    /// As [`StateCodec::encode`].
    pub fn encode_state(&self, state: &JobState) -> Result<Vec<u8>, Error> {
        let refuse = |reason: String| {
            Error::new(
                ErrorKind::Serialization,
                format!("job '{}' cannot be stored: {reason}", state.id),
            )
        };
        let bytes = match self.format {
            StateFormat::Json => {
                let bytes = serde_json::to_vec(state).map_err(|e| refuse(e.to_string()))?;
                check_nesting(&bytes).map_err(refuse)?;
                bytes
            }
            StateFormat::Bincode => {
                let record = BinaryState::from(state);
                for text in [&record.args, &record.kwargs, &record.trigger] {
                    check_nesting(text.as_bytes()).map_err(refuse)?;
                }
                let mut bytes = BINCODE_MAGIC.to_vec();
                bincode_options()
                    .serialize_into(&mut bytes, &record)
                    .map_err(|e| refuse(e.to_string()))?;
                let extras = BinaryExtras::of(state);
                let later = JsonExtras {
                    policy: state.policy.clone(),
                    paused_reason: state.paused_reason.clone(),
                    declaration: state.declaration.clone(),
                };
                let policy = (later != JsonExtras::default())
                    .then(|| serde_json::to_string(&later))
                    .transpose()
                    .map_err(|e| refuse(e.to_string()))?;
                if extras != BinaryExtras::default() || policy.is_some() {
                    bincode_options()
                        .serialize_into(&mut bytes, &extras)
                        .map_err(|e| refuse(e.to_string()))?;
                }
                // The later options (JSON text) follow the extras, only when one is set.
                if let Some(policy) = policy {
                    bincode_options()
                        .serialize_into(&mut bytes, &policy)
                        .map_err(|e| refuse(e.to_string()))?;
                }
                bytes
            }
        };
        if bytes.len() > self.max_bytes {
            return Err(refuse(format!(
                "its state is {} bytes, over this store's limit of {} bytes",
                bytes.len(),
                self.max_bytes
            )));
        }
        Ok(bytes)
    }

    /// Decodes a stored state in either format. The error says why it cannot be read
    /// (for the store's corrupt-job report).
    ///
    /// # Errors
    /// The reason: over the size cap, nested too deeply, not a state in either format.
    pub fn decode(&self, raw: &[u8]) -> Result<JobState, String> {
        if raw.len() > self.max_bytes {
            return Err(format!(
                "its state is {} bytes, over this store's limit of {} bytes",
                raw.len(),
                self.max_bytes
            ));
        }
        if let Some(mut record) = raw.strip_prefix(BINCODE_MAGIC) {
            let invalid = |e: bincode::Error| format!("invalid bincode state: {e}");
            // Reading from the slice moves it past the record: what is left are the extras.
            let b: BinaryState = bincode_options()
                .allow_trailing_bytes()
                .deserialize_from(&mut record)
                .map_err(invalid)?;
            let extras: BinaryExtras = if record.is_empty() {
                BinaryExtras::default()
            } else {
                bincode_options()
                    .allow_trailing_bytes()
                    .deserialize_from(&mut record)
                    .map_err(invalid)?
            };
            let later: JsonExtras = if record.is_empty() {
                JsonExtras::default()
            } else {
                let text: String = bincode_options().deserialize(record).map_err(invalid)?;
                serde_json::from_str(&text).map_err(|e| format!("invalid options JSON: {e}"))?
            };
            let json = |what: &str, text: &str| -> Result<Value, String> {
                check_nesting(text.as_bytes())?;
                serde_json::from_str(text).map_err(|e| format!("invalid {what} JSON: {e}"))
            };
            let args = match json("args", &b.args)? {
                Value::Array(a) => a,
                other => return Err(format!("args is not an array: {other}")),
            };
            let kwargs: Map<String, Value> = match json("kwargs", &b.kwargs)? {
                Value::Object(m) => m,
                other => return Err(format!("kwargs is not an object: {other}")),
            };
            Ok(JobState {
                version: b.version,
                id: b.id,
                name: b.name,
                task: b.task,
                args,
                kwargs,
                trigger: json("trigger", &b.trigger)?,
                executor: b.executor,
                misfire_grace_time: b.misfire_grace_time,
                coalesce: b.coalesce,
                max_instances: b.max_instances,
                recover: extras.recover,
                policy: later.policy,
                paused_reason: later.paused_reason,
                declaration: later.declaration,
                next_run_time: b.next_run_time,
                next_run_time_zone: b.next_run_time_zone,
            })
        } else {
            check_nesting(raw)?;
            serde_json::from_slice(raw).map_err(|e| format!("invalid state JSON: {e}"))
        }
    }
}

/// [`JobState`] as its JSON form reads, with the trigger left as its JSON text.
#[derive(Deserialize)]
struct JsonStateLazyTrigger<'a> {
    version: u32,
    id: String,
    name: String,
    task: String,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    kwargs: Map<String, Value>,
    #[serde(borrow)]
    trigger: &'a serde_json::value::RawValue,
    executor: String,
    misfire_grace_time: Option<f64>,
    coalesce: bool,
    max_instances: u32,
    #[serde(default)]
    recover: bool,
    #[serde(default)]
    policy: RunPolicy,
    #[serde(default)]
    paused_reason: Option<String>,
    #[serde(default)]
    declaration: Option<String>,
    next_run_time: Option<String>,
    #[serde(default)]
    next_run_time_zone: Option<String>,
}

impl StateCodec {
    /// A JSON state read with its trigger left as JSON text, for a caller that decodes
    /// the trigger from the text ([`JobState::into_job_with_trigger`]): building the
    /// trigger's JSON value first, only to read it once, was a fifth of reading a cron
    /// job. The state's `trigger` is `Null`.
    ///
    /// `None` for a bincode record or a state [`decode`](StateCodec::decode) would
    /// refuse (or one this form cannot read, such as a trigger text that is not UTF-8):
    /// `decode` then gives the state, or the reason.
    pub fn decode_lazy_trigger<'a>(&self, raw: &'a [u8]) -> Option<(JobState, &'a str)> {
        if raw.len() > self.max_bytes || raw.starts_with(BINCODE_MAGIC) {
            return None;
        }
        check_nesting(raw).ok()?;
        let s: JsonStateLazyTrigger<'a> = serde_json::from_slice(raw).ok()?;
        let state = JobState {
            version: s.version,
            id: s.id,
            name: s.name,
            task: s.task,
            args: s.args,
            kwargs: s.kwargs,
            trigger: Value::Null,
            executor: s.executor,
            misfire_grace_time: s.misfire_grace_time,
            coalesce: s.coalesce,
            max_instances: s.max_instances,
            recover: s.recover,
            policy: s.policy,
            paused_reason: s.paused_reason,
            declaration: s.declaration,
            next_run_time: s.next_run_time,
            next_run_time_zone: s.next_run_time_zone,
        };
        Some((state, s.trigger.get()))
    }
}

/// Variable-length integers, no trailing bytes.
fn bincode_options() -> impl Options {
    bincode::DefaultOptions::new().reject_trailing_bytes()
}

/// Refuses JSON whose arrays and objects nest deeper than [`MAX_NESTING`], in one pass
/// over the bytes and before any parsing, so a hostile record cannot exhaust the stack
/// or the heap. A bincode record's JSON texts are checked one by one.
///
/// # Errors
/// The reason, naming the cap.
pub fn check_nesting(bytes: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> JobState {
        JobState {
            version: JobState::VERSION,
            id: "job-1".into(),
            name: "report".into(),
            task: "tasks:report".into(),
            args: vec![json!(1), json!("two"), json!({"three": [3.5, null]})],
            kwargs: json!({"k": "v", "n": 7}).as_object().unwrap().clone(),
            trigger: json!({"type": "interval", "seconds": 30, "timezone": "Europe/Paris"}),
            executor: "default".into(),
            misfire_grace_time: Some(1.5),
            coalesce: true,
            max_instances: 3,
            recover: false,
            next_run_time: Some("2026-11-22T10:00:00.000001+01:00".into()),
            next_run_time_zone: Some("Europe/Paris".into()),
            policy: Default::default(),
            paused_reason: None,
            declaration: None,
        }
    }

    fn same(a: &JobState, b: &JobState) {
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(b).unwrap()
        );
    }

    #[test]
    fn both_formats_round_trip_and_read_each_other() {
        let json = StateCodec::new(StateFormat::Json, 1 << 20);
        let bin = StateCodec::new(StateFormat::Bincode, 1 << 20);
        let s = state();
        let as_json = json.encode_state(&s).unwrap();
        let as_bin = bin.encode_state(&s).unwrap();
        assert_eq!(as_json[0], b'{');
        assert!(as_bin.starts_with(BINCODE_MAGIC));
        assert!(
            as_bin.len() < as_json.len(),
            "{} {}",
            as_bin.len(),
            as_json.len()
        );
        for codec in [json, bin] {
            same(&codec.decode(&as_json).unwrap(), &s);
            same(&codec.decode(&as_bin).unwrap(), &s);
        }
    }

    #[test]
    fn a_policy_is_kept_by_both_formats_with_or_without_recover() {
        use crate::policy::{Overlap, RetryPolicy, RunPolicy};
        let policy = RunPolicy {
            retry: Some(RetryPolicy::new(3, std::time::Duration::from_secs(5)).backoff(2.0)),
            overlap: Overlap::BufferOne,
            ..RunPolicy::default()
        };
        for recover in [false, true] {
            for reason in [None, Some("3 consecutive failures".to_owned())] {
                let s = JobState {
                    recover,
                    policy: policy.clone(),
                    paused_reason: reason.clone(),
                    ..state()
                };
                for format in [StateFormat::Json, StateFormat::Bincode] {
                    let codec = StateCodec::new(format, 1 << 20);
                    let back = codec.decode(&codec.encode_state(&s).unwrap()).unwrap();
                    assert_eq!(
                        (back.recover, &back.policy, &back.paused_reason),
                        (recover, &policy, &reason),
                        "{format}"
                    );
                }
            }
        }
        let json_text = String::from_utf8(
            StateCodec::new(StateFormat::Json, 1 << 20)
                .encode_state(&state())
                .unwrap(),
        )
        .unwrap();
        assert!(!json_text.contains("policy"), "{json_text}");
    }

    #[test]
    fn a_declaration_is_kept_by_both_formats_and_the_lazy_read() {
        let declared = JobState {
            declaration: Some(r#"{"trigger":"interval","args":{"minutes":5}}"#.to_owned()),
            ..state()
        };
        for format in [StateFormat::Json, StateFormat::Bincode] {
            let codec = StateCodec::new(format, 1 << 20);
            let bytes = codec.encode_state(&declared).unwrap();
            same(&codec.decode(&bytes).unwrap(), &declared);
            if format == StateFormat::Json {
                let (lazy, _) = codec.decode_lazy_trigger(&bytes).unwrap();
                assert_eq!(lazy.declaration, declared.declaration);
            }
            let plain = codec.encode_state(&state()).unwrap();
            assert!(codec.decode(&plain).unwrap().declaration.is_none());
        }
    }

    #[test]
    fn recover_is_kept_by_both_formats_and_costs_ordinary_jobs_nothing() {
        let plain = state();
        let recovering = JobState {
            recover: true,
            ..state()
        };
        let json = StateCodec::new(StateFormat::Json, 1 << 20);
        let bin = StateCodec::new(StateFormat::Bincode, 1 << 20);
        for codec in [json, bin] {
            let plain_bytes = codec.encode_state(&plain).unwrap();
            let recovering_bytes = codec.encode_state(&recovering).unwrap();
            assert!(!codec.decode(&plain_bytes).unwrap().recover);
            assert!(codec.decode(&recovering_bytes).unwrap().recover);
            assert!(recovering_bytes.len() > plain_bytes.len());
        }
        // The records of ordinary jobs are those written before the option existed.
        let json_text = String::from_utf8(json.encode_state(&plain).unwrap()).unwrap();
        assert!(!json_text.contains("recover"), "{json_text}");
        let mut old = BINCODE_MAGIC.to_vec();
        bincode_options()
            .serialize_into(&mut old, &BinaryState::from(&plain))
            .unwrap();
        assert_eq!(bin.encode_state(&plain).unwrap(), old);
        // Anything after the extras is damage, not an option.
        let mut damaged = bin.encode_state(&recovering).unwrap();
        damaged.push(7);
        assert!(bin
            .decode(&damaged)
            .unwrap_err()
            .contains("invalid bincode state"));
    }

    #[test]
    fn caps_apply_to_both_formats() {
        let mut s = state();
        let mut deep = json!(0);
        for _ in 0..=MAX_NESTING {
            deep = json!([deep]);
        }
        s.args = vec![deep];
        for format in [StateFormat::Json, StateFormat::Bincode] {
            let err = StateCodec::new(format, 1 << 20)
                .encode_state(&s)
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Serialization);
            assert!(err.message().contains("deeper than 64"), "{err}");
            let err = StateCodec::new(format, 10)
                .encode_state(&state())
                .unwrap_err();
            assert!(
                err.message()
                    .contains("over this store's limit of 10 bytes"),
                "{err}"
            );
            assert!(err.message().contains("'job-1'"), "{err}");
        }
        let big = StateCodec::new(StateFormat::Bincode, 1 << 20)
            .encode_state(&state())
            .unwrap();
        let reason = StateCodec::new(StateFormat::Json, 10)
            .decode(&big)
            .unwrap_err();
        assert!(reason.contains("over this store's limit"), "{reason}");
    }

    #[test]
    fn damaged_records_are_explained() {
        let codec = StateCodec::new(StateFormat::Bincode, 1 << 20);
        let mut bytes = codec.encode_state(&state()).unwrap();
        bytes.truncate(bytes.len() - 3);
        assert!(codec
            .decode(&bytes)
            .unwrap_err()
            .contains("invalid bincode state"));
        bytes.extend_from_slice(b"xxxxxxxxxx");
        assert!(codec.decode(&bytes).is_err());
        assert!(codec
            .decode(b"{\"id\":")
            .unwrap_err()
            .contains("invalid state JSON"));
        assert!(codec.decode(b"").is_err());
        let deep = "[".repeat(MAX_NESTING + 1);
        assert!(codec
            .decode(deep.as_bytes())
            .unwrap_err()
            .contains("deeper"));
        // A quote in another field does not hide a deep JSON text from the check.
        let mut s = state();
        s.name = "\"[[[".into();
        let mut record = BinaryState::from(&s);
        record.args = deep.clone() + &"]".repeat(MAX_NESTING + 1);
        let mut bytes = BINCODE_MAGIC.to_vec();
        bincode_options()
            .serialize_into(&mut bytes, &record)
            .unwrap();
        assert!(codec.decode(&bytes).unwrap_err().contains("deeper"));
    }

    #[test]
    fn nesting_counts_only_outside_strings() {
        assert!(check_nesting(br#"{"a":[[["x"]]]}"#).is_ok());
        let ok = "[".repeat(MAX_NESTING) + &"]".repeat(MAX_NESTING);
        assert!(check_nesting(ok.as_bytes()).is_ok());
        let quoted = format!("{{\"k\":\"{}\\\"{}\"}}", "[".repeat(500), "{".repeat(500));
        assert!(check_nesting(quoted.as_bytes()).is_ok());
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!(
            "bincode".parse::<StateFormat>().unwrap(),
            StateFormat::Bincode
        );
        let err = "xml".parse::<StateFormat>().unwrap_err();
        assert!(err.message().contains("'state_format': 'xml'"), "{err}");
        assert_eq!(StateFormat::default().to_string(), "json");
    }
}

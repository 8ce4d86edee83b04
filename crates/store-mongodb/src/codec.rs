//! The document form of a job: encoding a [`Job`] for the collection and reading a
//! stored document back.

use std::sync::Arc;

use apscheduler_core::codec::{StateCodec, StateFormat};
use apscheduler_core::{Error, ErrorKind, Job, JobState};

use mongodb::bson::{self, doc, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};

/// Field names of a job document.
pub(crate) mod field {
    /// The job id (a string).
    pub(crate) const ID: &str = "_id";
    /// UTC microseconds since the epoch (`Int64`), or `null` for a paused job.
    pub(crate) const NEXT_RUN_TIME: &str = "next_run_time";
    /// The [`JobState`](apscheduler_core::JobState): a document, or a JSON string.
    pub(crate) const STATE: &str = "state";
    /// The scheduler id holding the lease; absent when not leased.
    pub(crate) const LEASE_HOLDER: &str = "lease_holder";
    /// When the lease expires, UTC microseconds (`Int64`); absent when not leased.
    pub(crate) const LEASE_EXPIRES: &str = "lease_expires";
    /// The claim call holding the lease (a random token); absent when not leased.
    pub(crate) const LEASE_TOKEN: &str = "lease_token";
    /// The release call that last stored the job's state (a random token): how a
    /// release whose write the driver retried tells that its first attempt applied.
    pub(crate) const RELEASE_TOKEN: &str = "release_token";
    /// Why the job could not be read; absent for a readable job.
    pub(crate) const CORRUPT: &str = "corrupt";
}

// Instants in microseconds: core's one rounding rule (run times up, now down).
pub(crate) use apscheduler_core::time::micros::{now as micros, run_time as run_time_micros};

/// A job ready to be written: its state and run time as BSON values.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub(crate) id: Arc<str>,
    pub(crate) next_run_time: Bson,
    pub(crate) state: Bson,
    /// Bytes of the state (BSON document or JSON text), for batching.
    pub(crate) size: usize,
}

impl Encoded {
    /// The full document of a new job (no lease, not corrupt).
    pub(crate) fn document(&self) -> Document {
        doc! {
            field::ID: &*self.id,
            field::NEXT_RUN_TIME: self.next_run_time.clone(),
            field::STATE: self.state.clone(),
        }
    }

    /// The `$set` part of an update that stores this state (and clears a corrupt mark).
    pub(crate) fn set_state(&self) -> Document {
        doc! {
            field::NEXT_RUN_TIME: self.next_run_time.clone(),
            field::STATE: self.state.clone(),
        }
    }
}

/// The fields a read needs to rebuild a job.
pub(crate) fn projection() -> Document {
    doc! {field::STATE: 1}
}

/// Encodes a job with the store's codec ([`apscheduler_core::codec`]).
///
/// In the JSON format the state is stored as a BSON document when that is lossless:
/// every number fits BSON (no integer above `i64::MAX`), every key is one MongoDB
/// stores and queries without surprises (not empty, no `.`, no leading `$`, no NUL) and
/// no string holds a NUL, and the document reads back to the same JSON, byte for byte.
/// Otherwise (rare: unusual argument keys or huge integers) it is stored as the JSON
/// text of the state. In the bincode format it is stored as BSON binary data.
///
/// # Errors
/// `Serialization` for a job that cannot be persisted (closure task, trigger without a
/// persisted form) or whose state is over the codec's caps.
pub(crate) fn encode(job: &Job, codec: &StateCodec) -> Result<Encoded, Error> {
    let state = job.to_state()?;
    let bytes = codec.encode_state(&state)?;
    let (state, size) = match codec.format {
        StateFormat::Json => {
            let json = String::from_utf8(bytes).map_err(|e| {
                Error::new(ErrorKind::Serialization, format!("job '{}': {e}", job.id))
            })?;
            match as_document(&state, &json) {
                Some((document, size)) => (Bson::Document(document), size),
                None => {
                    let size = json.len();
                    (Bson::String(json), size)
                }
            }
        }
        _ => {
            let size = bytes.len();
            let binary = bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes,
            };
            (Bson::Binary(binary), size)
        }
    };
    let max_state_bytes = codec.max_bytes;
    if size > max_state_bytes {
        return Err(Error::new(
            ErrorKind::Serialization,
            format!(
                "job '{}' is too large to store: its state takes {size} bytes, above the \
                 store's limit of {max_state_bytes} bytes (MongoDbJobStoreBuilder::max_state_bytes)",
                job.id
            ),
        ));
    }
    Ok(Encoded {
        id: job.id.clone(),
        next_run_time: job
            .next_run_time
            .as_ref()
            .map_or(Bson::Null, |t| Bson::Int64(run_time_micros(t))),
        state,
        size,
    })
}

/// The state as a BSON document and its size, when that form is lossless.
fn as_document(state: &JobState, json: &str) -> Option<(Document, usize)> {
    let document = bson::to_document(state).ok()?;
    if !plain_document(&document) {
        return None;
    }
    let raw = RawDocumentBuf::from_document(&document).ok()?;
    let back: JobState = bson::from_slice(raw.as_bytes()).ok()?;
    let same = serde_json::to_string(&back).ok()? == json;
    same.then(|| (document, raw.as_bytes().len()))
}

fn plain_key(key: &str) -> bool {
    !key.is_empty() && !key.starts_with('$') && !key.contains(['.', '\0'])
}

fn plain_value(value: &Bson) -> bool {
    match value {
        Bson::Document(d) => plain_document(d),
        Bson::Array(items) => items.iter().all(plain_value),
        Bson::String(s) => !s.contains('\0'),
        _ => true,
    }
}

fn plain_document(document: &Document) -> bool {
    document
        .iter()
        .all(|(key, value)| plain_key(key) && plain_value(value))
}

/// A stored document that cannot be read.
#[derive(Debug, Clone)]
pub(crate) struct Corrupt {
    /// The document's `_id`, to mark it.
    pub(crate) key: Bson,
    /// The `_id` as text, for the report.
    pub(crate) id: String,
    /// Why it cannot be read.
    pub(crate) error: String,
}

impl Corrupt {
    fn new(key: Bson, id: String, what: impl std::fmt::Display) -> Self {
        let error = format!("stored job '{id}' cannot be read: {what}");
        Corrupt { key, id, error }
    }

    /// As a core error (kind `Serialization`).
    pub(crate) fn into_error(self) -> Error {
        Error::new(ErrorKind::Serialization, self.error)
    }
}

/// The `_id` of a stored document, as a filter value and as text.
fn document_id(document: &RawDocument) -> (Bson, String) {
    match document.get(field::ID) {
        Ok(Some(RawBsonRef::String(s))) => (Bson::String(s.to_owned()), s.to_owned()),
        Ok(Some(other)) => match Bson::try_from(other) {
            Ok(key) => {
                let text = key.to_string();
                (key, text)
            }
            Err(_) => (Bson::Null, "<unreadable _id>".to_owned()),
        },
        _ => (Bson::Null, "<no _id>".to_owned()),
    }
}

/// Reads a stored job document (at least `_id` and `state`).
///
/// # Errors
/// A [`Corrupt`] report for a document whose state is missing, not a document or JSON
/// string or binary record, over the codec's caps, unreadable, of an unknown format
/// version, with an unknown trigger, or whose id differs from its `_id`.
pub(crate) fn decode(document: &RawDocument, codec: &StateCodec) -> Result<Job, Box<Corrupt>> {
    let max_state_bytes = codec.max_bytes;
    let (key, id) = document_id(document);
    let corrupt = |what: String| Box::new(Corrupt::new(key.clone(), id.clone(), what));
    if !matches!(key, Bson::String(_)) {
        return Err(corrupt(format!("its _id is not a string ({key})")));
    }
    let state = match document.get(field::STATE) {
        Ok(Some(state)) => state,
        Ok(None) => return Err(corrupt("it has no state".into())),
        Err(e) => return Err(corrupt(format!("unreadable BSON: {e}"))),
    };
    let too_large = |size: usize| {
        corrupt(format!(
            "its state takes {size} bytes, above the store's limit of {max_state_bytes} bytes"
        ))
    };
    let state: JobState = match state {
        RawBsonRef::Document(d) => {
            let size = d.as_bytes().len();
            if size > max_state_bytes {
                return Err(too_large(size));
            }
            bson::from_slice(d.as_bytes()).map_err(|e| corrupt(format!("invalid state: {e}")))?
        }
        // Either of the codec's formats: JSON text, or a bincode record.
        RawBsonRef::String(s) => codec.decode(s.as_bytes()).map_err(corrupt)?,
        RawBsonRef::Binary(b) => codec.decode(b.bytes).map_err(corrupt)?,
        other => {
            return Err(corrupt(format!(
                "its state is a BSON {:?}, not a document, a JSON string or binary data",
                other.element_type()
            )))
        }
    };
    if state.id != id {
        return Err(corrupt(format!(
            "the id in its state ('{}') differs from its _id",
            state.id
        )));
    }
    let job = state
        .into_job(apscheduler_triggers::decode_trigger)
        .map_err(|e| {
            Box::new(Corrupt {
                key: key.clone(),
                id: id.clone(),
                error: e.message().to_owned(),
            })
        })?;
    Ok(job)
}

/// An integer time field (`next_run_time`, `lease_expires`, an aggregation result).
pub(crate) fn micros_field(document: &RawDocument, name: &str) -> Option<i64> {
    match document.get(name).ok()?? {
        RawBsonRef::Int64(v) => Some(v),
        RawBsonRef::Int32(v) => Some(v.into()),
        // Written by hand; read as the microsecond it falls in.
        RawBsonRef::Double(v) if v.is_finite() => Some(v.floor() as i64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apscheduler_testkit::store::{
        at, interval_trigger, sample_args, sample_job, sample_kwargs,
    };
    use chrono_tz::Tz;
    use serde_json::json;

    const CAP: usize = 1 << 20;

    fn codec(max_bytes: usize) -> StateCodec {
        StateCodec::new(StateFormat::Json, max_bytes)
    }

    fn round_trip(job: &Job) -> Job {
        let encoded = encode(job, &codec(CAP)).unwrap();
        let document = encoded.document();
        let raw = RawDocumentBuf::from_document(&document).unwrap();
        decode(&raw, &codec(CAP)).unwrap()
    }

    #[test]
    fn plain_jobs_are_stored_as_documents() {
        let job = sample_job("a", Some(at(5)), interval_trigger(10));
        let encoded = encode(&job, &codec(CAP)).unwrap();
        let Bson::Document(state) = &encoded.state else {
            panic!("expected a document, got {:?}", encoded.state);
        };
        assert_eq!(state.get_str("task").unwrap(), "noop");
        assert_eq!(
            state.get_document("trigger").unwrap().get_str("type").ok(),
            Some("interval")
        );
        assert_eq!(encoded.next_run_time, Bson::Int64(run_time_micros(&at(5))));
        let back = round_trip(&job);
        assert_eq!(back.to_state().unwrap(), job.to_state().unwrap());
    }

    #[test]
    fn the_run_time_keeps_its_zone() {
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let t = (at(5) + chrono::Duration::microseconds(7)).with_timezone(&tokyo);
        let job = sample_job("a", Some(t), interval_trigger(10));
        let encoded = encode(&job, &codec(CAP)).unwrap();
        let Bson::Document(state) = &encoded.state else {
            panic!("expected a document, got {:?}", encoded.state);
        };
        assert_eq!(state.get_str("next_run_time_zone").ok(), Some("Asia/Tokyo"));
        assert_eq!(encoded.next_run_time, Bson::Int64(run_time_micros(&t)));
        let back = round_trip(&job);
        assert_eq!(
            back.next_run_time.map(|t| t.to_rfc3339()),
            Some(t.to_rfc3339())
        );
        assert_eq!(back.next_run_time.unwrap().timezone(), tokyo);
    }

    #[test]
    fn unusual_arguments_fall_back_to_json_text() {
        for (args, kwargs) in [
            (vec![json!(u64::MAX)], serde_json::Map::new()),
            (Vec::new(), json!({"": 1}).as_object().unwrap().clone()),
            (Vec::new(), json!({"a.b": 1}).as_object().unwrap().clone()),
            (
                Vec::new(),
                json!({"$where": 1}).as_object().unwrap().clone(),
            ),
            (vec![json!("nul \u{0} inside")], serde_json::Map::new()),
            (sample_args(), sample_kwargs()),
        ] {
            let job = Job {
                args: Arc::new(args.clone()),
                kwargs: Arc::new(kwargs.clone()),
                ..sample_job("a", None, interval_trigger(10))
            };
            let encoded = encode(&job, &codec(CAP)).unwrap();
            assert!(
                matches!(encoded.state, Bson::String(_)),
                "{args:?} {kwargs:?}"
            );
            let back = round_trip(&job);
            assert_eq!(
                serde_json::to_string(&*back.args).unwrap(),
                serde_json::to_string(&args).unwrap()
            );
            assert_eq!(*back.kwargs, kwargs);
            assert_eq!(back.next_run_time, None);
        }
    }

    #[test]
    fn floats_and_negative_zero_survive_the_document_form() {
        let args = vec![
            json!(-0.0),
            json!(0.1),
            json!(5e-324),
            json!(i64::MIN),
            json!(1),
        ];
        let job = Job {
            args: Arc::new(args.clone()),
            ..sample_job("a", Some(at(1)), interval_trigger(10))
        };
        let encoded = encode(&job, &codec(CAP)).unwrap();
        assert!(matches!(encoded.state, Bson::Document(_)));
        let back = round_trip(&job);
        assert_eq!(
            serde_json::to_string(&*back.args).unwrap(),
            serde_json::to_string(&args).unwrap()
        );
    }

    #[test]
    fn the_size_cap_applies_to_writes_and_reads() {
        let job = Job {
            args: Arc::new(vec![json!("x".repeat(2000))]),
            ..sample_job("big", Some(at(1)), interval_trigger(10))
        };
        let err = encode(&job, &codec(1000)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
        assert!(err.message().contains("1000 bytes"), "{err}");
        let document = encode(&job, &codec(CAP)).unwrap().document();
        let raw = RawDocumentBuf::from_document(&document).unwrap();
        let corrupt = decode(&raw, &codec(1000)).unwrap_err();
        assert_eq!(corrupt.id, "big");
        assert!(
            corrupt.error.contains("above the store's limit"),
            "{}",
            corrupt.error
        );
    }

    #[test]
    fn bincode_states_are_binary_and_read_by_either_codec() {
        let job = sample_job("a", Some(at(1)), interval_trigger(10));
        let bin = StateCodec::new(StateFormat::Bincode, CAP);
        let encoded = encode(&job, &bin).unwrap();
        assert!(
            matches!(encoded.state, Bson::Binary(_)),
            "{:?}",
            encoded.state
        );
        let raw = RawDocumentBuf::from_document(&encoded.document()).unwrap();
        for reader in [bin, codec(CAP)] {
            let back = decode(&raw, &reader).unwrap();
            assert_eq!(back.next_run_time, job.next_run_time);
            assert_eq!(back.args, job.args);
        }
        let json = encode(&job, &codec(CAP)).unwrap();
        assert!(encoded.size < json.size, "{} {}", encoded.size, json.size);
    }

    #[test]
    fn unreadable_documents_are_reported() {
        let good = encode(
            &sample_job("a", Some(at(1)), interval_trigger(10)),
            &codec(CAP),
        )
        .unwrap()
        .state;
        let mut unknown_trigger = good.as_document().unwrap().clone();
        unknown_trigger.insert("trigger", doc! {"type": "lunar", "phase": "full"});
        let mut future_version = good.as_document().unwrap().clone();
        future_version.insert("version", 99_i64);
        let cases: Vec<(Document, &str)> = vec![
            (doc! {"_id": "a"}, "no state"),
            (
                doc! {"_id": "a", "state": 5},
                "not a document, a JSON string or binary data",
            ),
            (
                doc! {"_id": "a", "state": bson::Binary {
                    subtype: bson::spec::BinarySubtype::Generic,
                    bytes: b"\0APSb1\x01".to_vec(),
                }},
                "invalid bincode state",
            ),
            (
                doc! {"_id": "a", "state": "{not json"},
                "invalid state JSON",
            ),
            (doc! {"_id": "a", "state": {"version": 1}}, "invalid state"),
            (doc! {"_id": "a", "state": unknown_trigger}, "lunar"),
            (
                doc! {"_id": "a", "state": future_version},
                "unknown format version 99",
            ),
            (
                doc! {"_id": "b", "state": good.clone()},
                "differs from its _id",
            ),
            (doc! {"_id": 7_i64, "state": good}, "not a string"),
        ];
        for (document, expected) in cases {
            let raw = RawDocumentBuf::from_document(&document).unwrap();
            let corrupt = decode(&raw, &codec(CAP)).unwrap_err();
            assert!(
                corrupt.error.contains(expected),
                "{document}: {}",
                corrupt.error
            );
            assert!(
                corrupt.error.starts_with("stored job '"),
                "{}",
                corrupt.error
            );
            assert_eq!((*corrupt).into_error().kind(), ErrorKind::Serialization);
        }
    }
}

//! What a job's znode holds: one JSON header line (next run time, lease, why it is set
//! aside), a newline, then the job state exactly as core's codec wrote it (JSON or
//! bincode). The header is separate so that a lease or an index key can be read and
//! changed without decoding the job, and so that a job whose state cannot be read
//! still has a header that marks it.

use serde::{Deserialize, Serialize};

/// The header line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// Next run time, UTC microseconds (rounded up); `None` when paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<i64>,
    /// The scheduler holding a claim on the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<String>,
    /// When that claim expires, UTC microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires: Option<i64>,
    /// Why the state cannot be read; such a job has no index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) corrupt: Option<String>,
}

impl Header {
    /// The index key: when a claim can next take the job (its run time, or the end of
    /// a lease on it if later); `None` for paused and corrupt jobs (not indexed).
    pub(crate) fn due_key(&self) -> Option<i64> {
        if self.corrupt.is_some() {
            return None;
        }
        let next = self.next?;
        Some(match (&self.owner, self.expires) {
            (Some(_), Some(expires)) => next.max(expires),
            _ => next,
        })
    }

    /// The end of the lease on the job when it is the index key (the lease ends after
    /// the run time): a release of the job can bring the key forward.
    pub(crate) fn lease_end(&self) -> Option<i64> {
        match (&self.owner, self.expires, self.next, &self.corrupt) {
            (Some(_), Some(expires), Some(next), None) if expires > next => Some(expires),
            _ => None,
        }
    }

    /// Whether `scheduler` holds an unexpired lease at `now` (UTC microseconds).
    pub(crate) fn held_by(&self, scheduler: &str, now: i64) -> bool {
        self.owner.as_deref() == Some(scheduler) && self.expires.is_some_and(|e| e > now)
    }
}

/// A job znode's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub(crate) header: Header,
    pub(crate) state: Vec<u8>,
}

impl Record {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(&self.header).expect("a header always serializes");
        out.push(b'\n');
        out.extend_from_slice(&self.state);
        out
    }

    /// Reads a znode's content; the error says why the header cannot be read.
    pub(crate) fn decode(raw: &[u8]) -> Result<Record, String> {
        let Some(split) = raw.iter().position(|&b| b == b'\n') else {
            return Err("the job znode has no header line".to_owned());
        };
        let header = serde_json::from_slice(&raw[..split])
            .map_err(|e| format!("the job znode's header line is not valid: {e}"))?;
        Ok(Record {
            header,
            state: raw[split + 1..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_binary_state() {
        let r = Record {
            header: Header {
                next: Some(-5),
                owner: Some("s\n1".into()),
                expires: Some(10),
                corrupt: None,
            },
            state: b"\0APSb1\n\xff".to_vec(),
        };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        assert!(Record::decode(b"no header").is_err());
        assert!(Record::decode(b"{oops\n{}").is_err());
    }

    #[test]
    fn due_key_is_the_later_of_run_time_and_lease() {
        let mut h = Header {
            next: Some(100),
            ..Header::default()
        };
        assert_eq!(h.due_key(), Some(100));
        h.owner = Some("s".into());
        h.expires = Some(150);
        assert_eq!(h.due_key(), Some(150));
        assert_eq!(h.lease_end(), Some(150));
        assert!(h.held_by("s", 149) && !h.held_by("s", 150) && !h.held_by("t", 0));
        h.expires = Some(50);
        assert_eq!(h.due_key(), Some(100));
        assert_eq!(h.lease_end(), None);
        h.next = None;
        assert_eq!(h.due_key(), None);
        h.next = Some(1);
        h.corrupt = Some("bad".into());
        assert_eq!(h.due_key(), None);
    }
}

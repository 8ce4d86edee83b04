//! The wire protocol between the pool and its workers.
//!
//! Every message is one frame: a 4-byte little-endian payload length, then the payload,
//! a JSON document. JSON rather than bincode because the payloads (`args`, `kwargs`,
//! return values) are `serde_json::Value`s, which only self-describing formats can
//! decode; a binary envelope would carry JSON text anyway.
//!
//! | direction | message | when |
//! |---|---|---|
//! | worker → pool | [`Hello`] `{"magic", "version", "pid"}` | once, at start |
//! | pool → worker | [`RunRequest`] `{"job_id", "task", "time": {"secs", "nanos", "tz"}, "args", "kwargs"}` | one run time to run |
//! | worker → pool | [`RunReply`] `{"ok": value}` or `{"err": {"kind", "message", "chain"}}` | its outcome |
//!
//! The worker exits with code 0 when its stdin reaches end of file.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use apscheduler_core::JobFailure;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Identifies a worker's first frame.
pub(crate) const MAGIC: &str = "apscheduler-rs-process-worker";
/// Bumped on any incompatible change of the messages.
pub(crate) const VERSION: u32 = 1;
/// Frames larger than this are treated as a protocol error (garbage on the pipe).
const MAX_FRAME: usize = 1 << 30;

/// The worker's greeting.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) magic: String,
    pub(crate) version: u32,
    pub(crate) pid: u32,
}

/// A run time on the wire: the instant and the timezone's IANA name, so the task sees
/// the run time in its own zone.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireTime {
    pub(crate) secs: i64,
    pub(crate) nanos: u32,
    pub(crate) tz: String,
}

impl WireTime {
    pub(crate) fn from_datetime(t: &DateTime<Tz>) -> Self {
        WireTime {
            secs: t.timestamp(),
            nanos: t.timestamp_subsec_nanos(),
            tz: t.timezone().name().to_owned(),
        }
    }

    pub(crate) fn to_datetime(&self) -> Result<DateTime<Tz>, String> {
        let tz: Tz = self
            .tz
            .parse()
            .map_err(|_| format!("unknown timezone {:?}", self.tz))?;
        let utc = Utc
            .timestamp_opt(self.secs, self.nanos)
            .single()
            .ok_or_else(|| format!("run time out of range: {}s", self.secs))?;
        Ok(utc.with_timezone(&tz))
    }
}

/// One run of a task, as the pool encodes it (borrowing the run's data).
#[derive(Debug, Serialize)]
pub(crate) struct RunRequestRef<'a> {
    pub(crate) job_id: &'a str,
    pub(crate) task: &'a str,
    pub(crate) time: WireTime,
    pub(crate) args: &'a [Value],
    pub(crate) kwargs: &'a Map<String, Value>,
    pub(crate) run_id: Option<&'a str>,
    pub(crate) attempt: u32,
    pub(crate) fence: Option<u64>,
}

/// One run of a task, as the worker decodes it.
#[derive(Debug, Deserialize)]
pub(crate) struct RunRequest {
    pub(crate) job_id: String,
    pub(crate) task: String,
    pub(crate) time: WireTime,
    pub(crate) args: Vec<Value>,
    pub(crate) kwargs: Map<String, Value>,
    #[serde(default)]
    pub(crate) run_id: Option<String>,
    /// Absent from a request of an older parent: the first attempt.
    #[serde(default = "first_attempt")]
    pub(crate) attempt: u32,
    /// Absent without leased runs, and from an older parent.
    #[serde(default)]
    pub(crate) fence: Option<u64>,
}

fn first_attempt() -> u32 {
    1
}

/// A failure on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireFailure {
    pub(crate) kind: String,
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) chain: Vec<String>,
    #[serde(default)]
    pub(crate) detail: Option<Box<Value>>,
}

/// The outcome of one run.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RunReply {
    Ok(Value),
    Err(WireFailure),
}

impl RunReply {
    pub(crate) fn from_result(result: Result<Value, JobFailure>) -> Self {
        match result {
            Ok(v) => RunReply::Ok(v),
            Err(f) => RunReply::Err(WireFailure {
                kind: f.kind,
                message: f.message,
                chain: f.chain,
                detail: f.detail,
            }),
        }
    }

    pub(crate) fn into_result(self) -> Result<Value, JobFailure> {
        match self {
            RunReply::Ok(v) => Ok(v),
            RunReply::Err(f) => Err(JobFailure {
                kind: f.kind,
                message: f.message,
                chain: f.chain,
                detail: f.detail,
            }),
        }
    }
}

/// Encodes `message` as one frame into `buf` (cleared first).
pub(crate) fn encode<T: Serialize>(buf: &mut Vec<u8>, message: &T) -> io::Result<()> {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *buf, message)?;
    let len = u32::try_from(buf.len() - 4)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Writes `message` as one frame with a single `write_all`.
pub(crate) fn write_frame<T: Serialize>(
    out: &mut impl Write,
    buf: &mut Vec<u8>,
    message: &T,
) -> io::Result<()> {
    encode(buf, message)?;
    out.write_all(buf)?;
    out.flush()
}

/// Why no frame could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The other end closed the pipe (cleanly between frames, or mid-frame).
    Eof,
    /// The deadline passed first.
    Timeout,
    /// The bytes are not a frame.
    Invalid(String),
    /// Reading failed.
    Io(io::Error),
}

/// Reads frames from a pipe, optionally with a deadline (`poll(2)` before each read).
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: Read + AsFd> FrameReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// Reads one frame and decodes it as `T`.
    pub(crate) fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<T, ReadError> {
        let payload = self.read_frame(deadline)?;
        serde_json::from_slice(payload).map_err(|e| ReadError::Invalid(e.to_string()))
    }

    /// Reads one frame; the payload is valid until the next call.
    fn read_frame(&mut self, deadline: Option<Instant>) -> Result<&[u8], ReadError> {
        self.fill(4, deadline)?;
        let mut len = [0u8; 4];
        len.copy_from_slice(&self.buf[self.start..self.start + 4]);
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(ReadError::Invalid(format!(
                "frame of {len} bytes announced; is something else writing to the worker's stdout?"
            )));
        }
        self.fill(4 + len, deadline)?;
        let from = self.start + 4;
        self.start = from + len;
        Ok(&self.buf[from..from + len])
    }

    /// Makes at least `n` unread bytes available.
    fn fill(&mut self, n: usize, deadline: Option<Instant>) -> Result<(), ReadError> {
        if self.end - self.start >= n {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.end < n {
            if let Some(deadline) = deadline {
                wait_readable(&self.inner, deadline)?;
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(ReadError::Eof),
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
        Ok(())
    }
}

/// Waits until `fd` is readable (or closed), or `deadline` passes.
fn wait_readable(fd: &impl AsFd, deadline: Instant) -> Result<(), ReadError> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::Timeout);
        }
        // Capped, so the conversion cannot overflow; the loop waits again if needed.
        let timeout = Timespec::try_from(left.min(Duration::from_secs(3600)))
            .map_err(|_| ReadError::Timeout)?;
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => {}
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(ReadError::Io(e.into())),
        }
    }
}

//! A run record as a hash: the fields written for one record, and a record read back.

use apscheduler_core::time::micros;
use apscheduler_core::{RunOutcome, RunRecord};
use chrono::{DateTime, Utc};
use redis::ScriptInvocation;

use crate::error::StoreError;

/// A record's hash fields, in the order they are read. The last three are written
/// only when they differ from a first, scheduled, not waiting run (`attempt` 1,
/// `backfill` 0, no `due_at`): a record without them, as every record written before
/// they existed, reads as one.
pub(super) const FIELDS: [&str; 13] = [
    "job_id",
    "scheduled_at",
    "started_at",
    "finished_at",
    "outcome",
    "exit_code",
    "http_status",
    "output",
    "message",
    "node",
    "attempt",
    "backfill",
    "due_at",
];

/// Adds one record to a `record_runs` call: `id, score, job, outcome, node, n`, then
/// the `n` fields of its hash (absent optional fields are not written).
pub(super) fn push_record(invocation: &mut ScriptInvocation<'_>, r: &RunRecord) {
    let score = micros::now(&r.scheduled_at).to_string();
    let time = |t: &Option<DateTime<Utc>>| t.as_ref().map(|t| micros::now(t).to_string());
    let optional = [
        ("started_at", time(&r.started_at)),
        ("finished_at", time(&r.finished_at)),
        ("exit_code", r.exit_code.map(|c| c.to_string())),
        ("http_status", r.http_status.map(|s| s.to_string())),
        ("attempt", (r.attempt != 1).then(|| r.attempt.to_string())),
        ("backfill", r.backfill.then(|| "1".to_owned())),
        ("due_at", time(&r.due_at)),
    ];
    let present = optional.iter().filter(|(_, v)| v.is_some()).count();
    let fields = 5 + present + usize::from(r.message.is_some());
    invocation
        .arg(&r.run_id)
        .arg(&score)
        .arg(&r.job_id)
        .arg(r.outcome.as_str())
        .arg(&r.node)
        .arg(fields)
        .arg("job_id")
        .arg(&r.job_id)
        .arg("scheduled_at")
        .arg(&score)
        .arg("outcome")
        .arg(r.outcome.as_str())
        .arg("node")
        .arg(&r.node)
        .arg("output")
        .arg(&r.output);
    for (name, value) in &optional {
        if let Some(value) = value {
            invocation.arg(*name).arg(value);
        }
    }
    if let Some(message) = &r.message {
        invocation.arg("message").arg(message);
    }
}

/// A record from its hash fields (in [`FIELDS`] order); `None` when there is no record.
pub(super) fn decode_run(
    id: &[u8],
    row: Vec<Option<Vec<u8>>>,
) -> Result<Option<RunRecord>, StoreError> {
    if row.iter().all(Option::is_none) {
        return Ok(None);
    }
    let run_id = String::from_utf8_lossy(id).into_owned();
    let bad = |reason: String| StoreError::CorruptRun {
        id: run_id.clone(),
        reason,
    };
    let mut text = Vec::with_capacity(FIELDS.len());
    for (name, value) in FIELDS.iter().zip(row) {
        text.push(
            value
                .map(String::from_utf8)
                .transpose()
                .map_err(|_| bad(format!("field '{name}' is not UTF-8")))?,
        );
    }
    let mut take = |i: usize| text[i].take();
    let required = |value: Option<String>, i: usize| {
        value.ok_or_else(|| bad(format!("field '{}' is missing", FIELDS[i])))
    };
    fn number<T: std::str::FromStr>(
        value: Option<String>,
        name: &str,
    ) -> Result<Option<T>, String> {
        value
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| format!("field '{name}' is not a valid number: {v:?}"))
            })
            .transpose()
    }
    let time = |value: Option<String>, name: &str| {
        number::<i64>(value, name).map(|us| us.map(micros::to_instant))
    };

    let job_id = required(take(0), 0)?;
    let scheduled_at = time(Some(required(take(1), 1)?), FIELDS[1]).map_err(&bad)?;
    let started_at = time(take(2), FIELDS[2]).map_err(&bad)?;
    let finished_at = time(take(3), FIELDS[3]).map_err(&bad)?;
    let outcome = required(take(4), 4)?;
    let outcome = outcome
        .parse::<RunOutcome>()
        .map_err(|e| bad(e.message().to_owned()))?;
    let exit_code = number::<i32>(take(5), FIELDS[5]).map_err(&bad)?;
    let http_status = number::<u16>(take(6), FIELDS[6]).map_err(&bad)?;
    let output = required(take(7), 7)?;
    let message = take(8);
    let node = required(take(9), 9)?;
    let attempt = number::<u32>(take(10), FIELDS[10]).map_err(&bad)?;
    let backfill = match take(11).as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => return Err(bad(format!("field 'backfill' is not 0 or 1: {other:?}"))),
    };
    let due_at = time(take(12), FIELDS[12]).map_err(&bad)?;
    Ok(Some(RunRecord {
        run_id,
        job_id,
        scheduled_at: scheduled_at.unwrap_or_default(),
        started_at,
        finished_at,
        outcome,
        exit_code,
        http_status,
        output,
        message,
        node,
        attempt: attempt.unwrap_or(1),
        backfill,
        due_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: [Option<&str>; 13]) -> Vec<Option<Vec<u8>>> {
        values
            .iter()
            .map(|v| v.map(|s| s.as_bytes().to_vec()))
            .collect()
    }

    const GOOD: [Option<&str>; 13] = [
        Some("job"),
        Some("1000001"),
        None,
        Some("2000000"),
        Some("success"),
        Some("-2"),
        Some("503"),
        Some(""),
        None,
        Some("node-a"),
        None,
        None,
        None,
    ];

    #[test]
    fn decodes_a_stored_record() {
        let r = decode_run(b"r1", row(GOOD)).unwrap().unwrap();
        assert_eq!(r.run_id, "r1");
        assert_eq!(r.scheduled_at.timestamp_micros(), 1_000_001);
        assert_eq!(r.started_at, None);
        assert_eq!(r.finished_at.unwrap().timestamp_micros(), 2_000_000);
        assert_eq!((r.exit_code, r.http_status), (Some(-2), Some(503)));
        assert_eq!(r.outcome, RunOutcome::Success);
        assert_eq!((r.attempt, r.backfill, r.due_at), (1, false, None));
        assert!(decode_run(b"gone", row([None; 13])).unwrap().is_none());

        let mut retry = GOOD;
        retry[10] = Some("3");
        retry[11] = Some("1");
        retry[12] = Some("1500002");
        let r = decode_run(b"r2", row(retry)).unwrap().unwrap();
        assert_eq!((r.attempt, r.backfill), (3, true));
        assert_eq!(r.due_at.unwrap().timestamp_micros(), 1_500_002);
    }

    #[test]
    fn unreadable_records_name_the_run_and_the_value() {
        let mut bad = GOOD;
        bad[4] = Some("succes");
        let err: apscheduler_core::Error = decode_run(b"r1", row(bad)).unwrap_err().into();
        assert_eq!(err.kind(), apscheduler_core::ErrorKind::Serialization);
        assert!(
            err.message().contains("'r1'") && err.message().contains("'succes'"),
            "{err}"
        );

        let mut bad = GOOD;
        bad[1] = Some("soon");
        let err = decode_run(b"r2", row(bad)).unwrap_err().to_string();
        assert!(
            err.contains("'r2'") && err.contains("scheduled_at"),
            "{err}"
        );

        let mut bad = GOOD;
        bad[9] = None;
        let err = decode_run(b"r3", row(bad)).unwrap_err().to_string();
        assert!(err.contains("'node' is missing"), "{err}");

        for (i, value, field) in [
            (10, "-1", "attempt"),
            (11, "yes", "backfill"),
            (12, "x", "due_at"),
        ] {
            let mut bad = GOOD;
            bad[i] = Some(value);
            let err = decode_run(b"r4", row(bad)).unwrap_err().to_string();
            assert!(err.contains("'r4'") && err.contains(field), "{err}");
        }
    }
}

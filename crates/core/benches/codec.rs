//! Bytes per job and encode + decode time of the job-state codec's two formats
//! (`apscheduler_core::codec::StateCodec::{encode_state, decode}`, the calls every
//! persistent store makes per job written and read).
//!
//! `cargo bench -p apscheduler-core --bench codec`

use std::hint::black_box;
use std::time::Instant;

use apscheduler_core::codec::{StateCodec, StateFormat};
use apscheduler_core::serde_json::json;
use apscheduler_core::JobState;

/// A typical stored job: a cron trigger, two arguments, two keyword arguments.
fn typical() -> JobState {
    JobState {
        version: JobState::VERSION,
        id: "nightly-report-42".into(),
        name: "nightly report".into(),
        task: "reports:nightly".into(),
        args: vec![json!(42), json!("eu-west")],
        kwargs: json!({"recipients": ["ops@example.com"], "retries": 3})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        trigger: json!({
            "type": "cron", "timezone": "Europe/Paris", "hour": "3", "minute": "15",
            "start_date": null, "end_date": null, "jitter": null
        }),
        executor: "default".into(),
        misfire_grace_time: Some(1.0),
        coalesce: true,
        max_instances: 1,
        recover: false,
        next_run_time: Some("2026-11-23T03:15:00+01:00".into()),
        next_run_time_zone: Some("Europe/Paris".into()),
        policy: Default::default(),
        paused_reason: None,
        declaration: None,
    }
}

fn main() {
    const N: u32 = 200_000;
    let state = typical();
    println!("format   bytes/job  encode+decode ns/job (median of 5 x {N})");
    for format in [StateFormat::Json, StateFormat::Bincode] {
        let codec = StateCodec::new(format, 1 << 20);
        let bytes = codec.encode_state(&state).expect("encodes").len();
        let mut runs: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..N {
                    let encoded = codec.encode_state(black_box(&state)).expect("encodes");
                    black_box(codec.decode(black_box(&encoded)).expect("decodes"));
                }
                start.elapsed().as_nanos() as f64 / f64::from(N)
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        println!(
            "{:<8} {bytes:>9}  {:>8.0} (range {:.0}-{:.0})",
            format.to_string(),
            runs[2],
            runs[0],
            runs[4]
        );
    }
}

//! `aps trigger eval`: conformance vectors in, fire times out, one line each.

use std::io::{self, BufRead, BufWriter, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

use apscheduler_core::time::to_rfc3339;
use apscheduler_triggers::evaluate_vector;
use serde_json::{json, Value};

/// Answers one input line; never panics and never fails.
pub(crate) fn answer(line: &str) -> Value {
    let vector: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return json!({"id": null, "error": format!("invalid JSON: {e}")}),
    };
    let id = vector.get("id").cloned().unwrap_or(Value::Null);
    match panic::catch_unwind(AssertUnwindSafe(|| evaluate_vector(&vector))) {
        Ok(Ok(fires)) => json!({
            "id": id,
            "fires": fires.iter().map(to_rfc3339).collect::<Vec<_>>(),
        }),
        Ok(Err(e)) => json!({"id": id, "error": e.to_string()}),
        Err(_) => json!({"id": id, "error": "internal error while evaluating this vector"}),
    }
}

pub(crate) fn run() -> ExitCode {
    // A panic is caught per line; keep its message off stderr noise.
    panic::set_hook(Box::new(|_| {}));
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                // Not UTF-8 or unreadable: say so for this line and go on.
                let answer = json!({"id": null, "error": format!("unreadable input line: {e}")});
                if writeln!(out, "{answer}").is_err() {
                    return ExitCode::FAILURE;
                }
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if writeln!(out, "{}", answer(&line)).is_err() {
            return ExitCode::FAILURE;
        }
    }
    if out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

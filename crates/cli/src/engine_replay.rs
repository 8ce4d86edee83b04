//! `aps engine replay`: one scenario in, the engine's step records out.

use std::io::Read;
use std::process::ExitCode;

pub(crate) fn run() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("error: cannot read the scenario from stdin: {e}");
        return ExitCode::from(2);
    }
    let scenario: serde_json::Value = match serde_json::from_str(&input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: the scenario is not valid JSON: {e}");
            return ExitCode::from(2);
        }
    };
    match apscheduler_engine::replay::replay(&scenario) {
        Ok(records) => {
            println!("{}", serde_json::Value::Array(records));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

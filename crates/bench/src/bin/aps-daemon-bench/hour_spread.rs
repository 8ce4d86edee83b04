//! `aps-daemon-bench hour-spread`: what `aps run` did with hourly cron jobs in the
//! minutes after the top of an hour (bench/hspread-bench.sh). It reads what `aps` wrote
//! (`aps jobs list --json` before the hour, `aps history --json` after) and measures
//! nothing itself.

use std::collections::{BTreeMap, HashMap};

use chrono::DateTime;
use serde_json::{json, Value};

use super::{ns_of, pct, summary, time_field};

const SECOND: i128 = 1_000_000_000;
const MINUTE: i128 = 60 * SECOND;

/// The runs of one minute after the hour (or of the whole window).
#[derive(Default)]
struct Tally {
    expected: usize,
    /// Fire times with at least one started record.
    ran: usize,
    /// Fire times started more than once.
    twice: usize,
    /// Fire times with a `missed` record and no start.
    missed: usize,
    /// Expected fire times without any record.
    no_record: usize,
    submitted: Vec<f64>,
    process: Vec<f64>,
    /// Runs started per whole second, by the record's `started_at` and by the command's
    /// own clock.
    started_per_s: HashMap<i128, usize>,
    process_per_s: HashMap<i128, usize>,
}

impl Tally {
    fn report(self) -> Value {
        let submitted = summary(self.submitted);
        let process = summary(self.process);
        json!({
            "expected": self.expected,
            "ran": self.ran,
            "twice": self.twice,
            "missed": self.missed,
            "no_record": self.no_record,
            "submitted": submitted,
            "process": process,
            "peak_started_per_s": self.started_per_s.values().max().copied().unwrap_or(0),
            "peak_process_starts_per_s": self.process_per_s.values().max().copied().unwrap_or(0),
        })
    }
}

/// What the history says about one fire time.
#[derive(Default)]
struct Fire {
    starts: usize,
    missed: bool,
}

/// Prints the report described in the binary's usage.
pub(crate) fn run(
    hour_ns: i128,
    window_s: i64,
    jobs_path: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let listing: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(jobs_path)?)
        .map_err(|e| format!("{jobs_path}: not `aps jobs list --json` output: {e}"))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
    let runs: Vec<Value> = serde_json::from_str(&text)
        .map_err(|e| format!("stdin: not `aps history --json` output: {e}"))?;
    println!("{}", report(hour_ns, window_s, &listing, &runs)?);
    Ok(())
}

/// The report on `runs` (`aps history --json`) against `listing` (`aps jobs list
/// --json` taken before the hour at `hour_ns`) for the `window_s` seconds after it.
fn report(
    hour_ns: i128,
    window_s: i64,
    listing: &[Value],
    runs: &[Value],
) -> Result<Value, Box<dyn std::error::Error>> {
    if window_s <= 0 {
        return Err(format!("WINDOW_S must be more than 0, not {window_s}").into());
    }
    let end_ns = hour_ns + i128::from(window_s) * SECOND;

    // The fire times the jobs expect, from their stored next run times.
    let mut expected: HashMap<(String, i128), usize> = HashMap::new();
    let mut minute_of_hour = [0usize; 60];
    let (mut outside_hour, mut no_next) = (0usize, 0usize);
    for job in listing {
        let id = job["id"]
            .as_str()
            .ok_or("a job without an id in the listing")?;
        let Some(next) = job["next_run_time"].as_str() else {
            no_next += 1;
            continue;
        };
        let next = DateTime::parse_from_rfc3339(next)
            .map_err(|e| format!("job {id}: next_run_time {next:?}: {e}"))?;
        let at = ns_of(&next.to_utc());
        if (hour_ns..hour_ns + 60 * MINUTE).contains(&at) {
            minute_of_hour[((at - hour_ns) / MINUTE) as usize] += 1;
        } else {
            outside_hour += 1;
        }
        if (hour_ns..end_ns).contains(&at) {
            expected.insert((id.to_owned(), at), ((at - hour_ns) / MINUTE) as usize);
        }
    }

    let minutes = ((end_ns - hour_ns + MINUTE - 1) / MINUTE) as usize;
    let mut per_minute: Vec<Tally> = (0..minutes).map(|_| Tally::default()).collect();
    let mut all = Tally::default();
    let mut fires: HashMap<(String, i128), Fire> = HashMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut nodes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut records, mut unexpected) = (0usize, 0usize);
    for run in runs {
        let Some(at) = time_field(run, "scheduled_at").map(|t| ns_of(&t)) else {
            continue;
        };
        if !(hour_ns..end_ns).contains(&at) {
            continue;
        }
        records += 1;
        let job = run["job_id"].as_str().unwrap_or_default().to_owned();
        let outcome = run["outcome"].as_str().unwrap_or("?");
        *outcomes.entry(outcome.to_owned()).or_default() += 1;
        let key = (job, at);
        if !expected.contains_key(&key) {
            unexpected += 1;
        }
        let fire = fires.entry(key).or_default();
        let minute = &mut per_minute[((at - hour_ns) / MINUTE) as usize];
        let Some(started) = time_field(run, "started_at").map(|t| ns_of(&t)) else {
            fire.missed |= outcome == "missed";
            continue;
        };
        fire.starts += 1;
        *nodes
            .entry(run["node"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        for t in [&mut *minute, &mut all] {
            t.submitted.push((started - at) as f64 / 1e6);
            *t.started_per_s
                .entry(started.div_euclid(SECOND))
                .or_default() += 1;
        }
        // The command printed its own start (`date +%s%N`).
        if let Some(p) = run["output"]
            .as_str()
            .and_then(|o| o.trim().parse::<i128>().ok())
        {
            for t in [&mut *minute, &mut all] {
                t.process.push((p - at) as f64 / 1e6);
                *t.process_per_s.entry(p.div_euclid(SECOND)).or_default() += 1;
            }
        }
    }
    for (key, &minute) in &expected {
        let fire = fires.get(key);
        for t in [&mut per_minute[minute], &mut all] {
            t.expected += 1;
            match fire {
                None => t.no_record += 1,
                Some(f) if f.starts > 0 => {
                    t.ran += 1;
                    t.twice += usize::from(f.starts > 1);
                }
                Some(f) => t.missed += usize::from(f.missed),
            }
        }
    }

    let mut spread: Vec<usize> = minute_of_hour.to_vec();
    spread.sort_unstable();
    let per_minute: Vec<Value> = per_minute
        .into_iter()
        .enumerate()
        .map(|(m, t)| {
            let mut v = t.report();
            v["minute"] = json!(m);
            v
        })
        .collect();
    Ok(json!({
        "jobs": listing.len(),
        "jobs_without_next_run_time": no_next,
        "jobs_due_outside_the_hour": outside_hour,
        "jobs_per_minute_of_the_hour": {
            "min": spread.first(),
            "p50": pct(&spread.iter().map(|&n| n as f64).collect::<Vec<_>>(), 50.0),
            "max": spread.last(),
            "all": minute_of_hour.to_vec(),
        },
        "window_s": window_s,
        "records": records,
        "records_not_expected": unexpected,
        "outcomes": outcomes,
        "started_by_node": nodes,
        "all": all.report(),
        "minutes": per_minute,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-25T18:00:00Z in Unix ns.
    const HOUR: i128 = 1_795_629_600 * SECOND;

    fn job(id: &str, next: &str) -> Value {
        json!({ "id": id, "next_run_time": next })
    }

    fn run(job: &str, at: &str, started: Option<&str>, outcome: &str, output: &str) -> Value {
        json!({ "job_id": job, "scheduled_at": at, "started_at": started, "outcome": outcome,
                "output": output, "node": "n/1" })
    }

    #[test]
    fn counts_each_fire_time_once_and_names_what_went_wrong() {
        let listing = [
            job("a", "2026-11-25T18:00:00+00:00"),
            job("b", "2026-11-25T19:00:00+01:00"), // the same instant in another zone
            job("c", "2026-11-25T18:01:00Z"),
            job("d", "2026-11-25T18:01:00Z"),
            job("e", "2026-11-25T18:30:00Z"), // after the window
        ];
        let date = |s: &str| format!("{}\n", s);
        let runs = [
            run(
                "a",
                "2026-11-25T18:00:00Z",
                Some("2026-11-25T18:00:00.004Z"),
                "success",
                &date("1795629600010000000"),
            ),
            // b started twice: counted once as run, once as twice.
            run(
                "b",
                "2026-11-25T18:00:00Z",
                Some("2026-11-25T18:00:00.006Z"),
                "success",
                "",
            ),
            run(
                "b",
                "2026-11-25T18:00:00Z",
                Some("2026-11-25T18:00:01.500Z"),
                "success",
                "",
            ),
            run("c", "2026-11-25T18:01:00Z", None, "missed", ""),
            // d has no record; this one is for a fire time nobody expected.
            run(
                "z",
                "2026-11-25T18:01:30Z",
                Some("2026-11-25T18:01:30.001Z"),
                "success",
                "",
            ),
            // Before the hour: not counted.
            run(
                "a",
                "2026-11-25T17:00:00Z",
                Some("2026-11-25T17:00:00.001Z"),
                "success",
                "",
            ),
        ];
        let r = report(HOUR, 120, &listing, &runs).unwrap();
        assert_eq!(r["records"], 5);
        assert_eq!(r["records_not_expected"], 1);
        assert_eq!(r["jobs_due_outside_the_hour"], 0);
        assert_eq!(r["jobs_per_minute_of_the_hour"]["max"], 2);
        let all = &r["all"];
        assert_eq!(
            [
                &all["expected"],
                &all["ran"],
                &all["twice"],
                &all["missed"],
                &all["no_record"]
            ],
            [4, 2, 1, 1, 1]
        );
        // a, b, b and z started; two of them in the hour's first second.
        assert_eq!(all["submitted"]["n"], 4);
        assert_eq!(all["peak_started_per_s"], 2);
        assert_eq!(all["process"]["p50_ms"], 10.0);
        assert_eq!(r["minutes"][0]["expected"], 2);
        assert_eq!(r["minutes"][1]["missed"], 1);
        assert_eq!(r["minutes"][1]["no_record"], 1);
        assert!(report(HOUR, 0, &listing, &runs).is_err());
    }
}

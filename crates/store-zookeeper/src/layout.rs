//! Where a store's znodes live under its root path, and how job ids and run times
//! become znode names.
//!
//! ```text
//! <root>/jobs/<id>                                  the job: header line + state
//! <root>/runs/<day>/<hour>/<minute>-<shard>/<key>-<id>   index entry: when the job can be claimed
//! <root>/changes                                    bumped by every add/modify/remove, and by
//!                                                   releases while a scheduler waits for one
//! <root>/clock                                      written to read the server's time
//! <root>/waiters/<session>_<until>                  ephemeral: a scheduler waits for a release
//! <root>/history/jobs/<job>/<key>-<run>             one run record (JSON), per job
//! <root>/history/ids/<run>                          where run <run>'s record is (JSON pointer)
//! <root>/history/running/<node>+<job>+<key>+<run>   empty: run <run> is `running`
//! <root>/nodes/<node>                               a node's heartbeat (JSON NodeInfo)
//! <root>/run_groups/<job>                           the job's runs (the run contract), JSON
//! ```
//!
//! In the history, `<key>` is the run's `scheduled_at` (UTC microseconds) shifted and
//! zero-padded like an index key, so a job's records list in time order; `<job>`,
//! `<run>` and `<node>` are percent-encoded like job ids (`+` is always encoded, so it
//! separates the fields of a running entry). The job folders are container znodes.
//!
//! `<key>` is the instant (UTC microseconds) the job can next be claimed, shifted so that
//! the decimal text sorts like the number (negative instants included); `<day>`,
//! `<hour>` and `<minute>` are that key divided down, so a due-job lookup lists a few
//! small folders (at most 24 hours a day, 960 minute folders an hour) instead of every
//! job. `<shard>` (one hex digit from the id) spreads one minute's
//! entries over 16 folders, each listed in one reply of at most ZooKeeper's 1 MB.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters kept as they are in a znode name; everything else is percent-encoded
/// (`/` separates path segments, and ZooKeeper refuses control and some Unicode
/// characters).
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':')
    .remove(b'@');

/// `.` and `..` are not valid znode names: there every character is encoded.
const ALL: &AsciiSet = NON_ALPHANUMERIC;

const OFFSET: u64 = 1 << 63;
const MICROS_PER_MINUTE: u64 = 60_000_000;
const MICROS_PER_HOUR: u64 = 3_600_000_000;
const MICROS_PER_DAY: u64 = 86_400_000_000;
const SHARDS: u32 = 16;

/// The paths of one store.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) root: String,
    pub(crate) jobs: String,
    pub(crate) runs: String,
    pub(crate) changes: String,
    pub(crate) clock: String,
    /// `<root>/waiters`: one ephemeral znode per scheduler waiting for a release.
    pub(crate) waiters: String,
    /// `<root>/history/jobs`: one folder of run records per job.
    pub(crate) history_jobs: String,
    /// `<root>/history/ids`: one pointer per run id to its record.
    pub(crate) history_ids: String,
    /// `<root>/history/running`: one entry per `running` record.
    pub(crate) history_running: String,
    /// `<root>/nodes`: one heartbeat per scheduler node.
    pub(crate) nodes: String,
    /// `<root>/run_groups`: one znode per job with its runs (the run contract).
    pub(crate) run_groups: String,
}

/// A run record's place, as its znode names say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunName {
    /// `scheduled_at`, UTC microseconds.
    pub(crate) key: i64,
    /// The run id.
    pub(crate) run: String,
}

/// An entry of the running index, decoded from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunningName {
    pub(crate) node: String,
    pub(crate) job: String,
    pub(crate) key: i64,
    pub(crate) run: String,
}

/// One index entry: a job that can be claimed from `key` on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    /// When the job can be claimed (UTC microseconds).
    pub(crate) key: i64,
    /// The job's id.
    pub(crate) id: String,
}

impl Layout {
    pub(crate) fn new(root: &str) -> Self {
        Layout {
            root: root.to_owned(),
            jobs: format!("{root}/jobs"),
            runs: format!("{root}/runs"),
            changes: format!("{root}/changes"),
            clock: format!("{root}/clock"),
            waiters: format!("{root}/waiters"),
            history_jobs: format!("{root}/history/jobs"),
            history_ids: format!("{root}/history/ids"),
            history_running: format!("{root}/history/running"),
            nodes: format!("{root}/nodes"),
            run_groups: format!("{root}/run_groups"),
        }
    }

    /// A job's folder of run records.
    pub(crate) fn run_folder(&self, job: &str) -> String {
        format!("{}/{}", self.history_jobs, encode_id(job))
    }

    /// A run record's znode, relative to `<root>/history/jobs` (as pointers hold it).
    pub(crate) fn run_relative(job: &str, key: i64, run: &str) -> String {
        format!("{}/{}", encode_id(job), run_name(key, run))
    }

    /// A run record's znode.
    pub(crate) fn run(&self, job: &str, key: i64, run: &str) -> String {
        format!(
            "{}/{}",
            self.history_jobs,
            Layout::run_relative(job, key, run)
        )
    }

    /// A run id's pointer znode.
    pub(crate) fn run_pointer(&self, run: &str) -> String {
        format!("{}/{}", self.history_ids, encode_id(run))
    }

    /// A running index entry's znode, from its name.
    pub(crate) fn running(&self, name: &str) -> String {
        format!("{}/{name}", self.history_running)
    }

    /// A node's heartbeat znode.
    pub(crate) fn node(&self, node: &str) -> String {
        format!("{}/{}", self.nodes, encode_id(node))
    }

    /// The job's znode.
    pub(crate) fn job(&self, id: &str) -> String {
        format!("{}/{}", self.jobs, encode_id(id))
    }

    /// The day folder of an index key.
    pub(crate) fn day(&self, key: i64) -> String {
        format!("{}/{:010}", self.runs, shifted(key) / MICROS_PER_DAY)
    }

    /// The hour folder of an index key (under its day folder).
    pub(crate) fn hour(&self, key: i64) -> String {
        format!("{}/{:011}", self.day(key), shifted(key) / MICROS_PER_HOUR)
    }

    /// The minute folder of an index entry (under its hour folder).
    pub(crate) fn bucket(&self, key: i64, id: &str) -> String {
        format!(
            "{}/{:012}-{:x}",
            self.hour(key),
            shifted(key) / MICROS_PER_MINUTE,
            shard(id)
        )
    }

    /// The index entry's znode.
    pub(crate) fn entry(&self, key: i64, id: &str) -> String {
        format!(
            "{}/{:020}-{}",
            self.bucket(key, id),
            shifted(key),
            encode_id(id)
        )
    }
}

/// A day folder's name → the first key it can hold.
pub(crate) fn day_start(name: &str) -> Option<i64> {
    let day: u64 = name.parse().ok()?;
    Some(unshifted(day.checked_mul(MICROS_PER_DAY)?))
}

/// An hour folder's name → the first key it can hold.
pub(crate) fn hour_start(name: &str) -> Option<i64> {
    let hour: u64 = name.parse().ok()?;
    Some(unshifted(hour.checked_mul(MICROS_PER_HOUR)?))
}

/// A minute folder's name → the first key it can hold.
pub(crate) fn bucket_start(name: &str) -> Option<i64> {
    let (minute, _shard) = name.split_once('-')?;
    let minute: u64 = minute.parse().ok()?;
    Some(unshifted(minute.checked_mul(MICROS_PER_MINUTE)?))
}

/// An index entry's name → the entry.
pub(crate) fn parse_entry(name: &str) -> Option<Entry> {
    let (key, id) = name.split_once('-')?;
    let key: u64 = key.parse().ok()?;
    Some(Entry {
        key: unshifted(key),
        id: decode_id(id)?,
    })
}

/// A job znode's name → the job id.
pub(crate) fn decode_id(name: &str) -> Option<String> {
    percent_decode_str(name)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// A job id → a znode name (never empty, `.` or `..`, never containing `/`).
pub(crate) fn encode_id(id: &str) -> String {
    if id.is_empty() {
        // Not a valid job id (the scheduler refuses it); a name that decodes back to "".
        return "%".to_owned() + "00";
    }
    let set = if id == "." || id == ".." { ALL } else { KEEP };
    utf8_percent_encode(id, set).to_string()
}

/// A run record's name in its job's folder: sorts by `scheduled_at`.
pub(crate) fn run_name(key: i64, run: &str) -> String {
    format!("{:020}-{}", shifted(key), encode_id(run))
}

/// A run record's name → its `scheduled_at` key and run id.
pub(crate) fn parse_run_name(name: &str) -> Option<RunName> {
    let (key, run) = name.split_once('-')?;
    let key: u64 = key.parse().ok()?;
    Some(RunName {
        key: unshifted(key),
        run: decode_id(run)?,
    })
}

/// The name of a running index entry: everything `running_elsewhere` returns, so that
/// one listing answers it.
pub(crate) fn running_name(node: &str, job: &str, key: i64, run: &str) -> String {
    format!(
        "{}+{}+{:020}+{}",
        encode_id(node),
        encode_id(job),
        shifted(key),
        encode_id(run)
    )
}

/// A running index entry's name → its fields.
pub(crate) fn parse_running_name(name: &str) -> Option<RunningName> {
    let mut parts = name.split('+');
    let (node, job, key, run) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let key: u64 = key.parse().ok()?;
    Some(RunningName {
        node: decode_id(node)?,
        job: decode_id(job)?,
        key: unshifted(key),
        run: decode_id(run)?,
    })
}

fn shifted(key: i64) -> u64 {
    (key as u64) ^ OFFSET
}

fn unshifted(v: u64) -> i64 {
    (v ^ OFFSET) as i64
}

/// A stable shard for an id (FNV-1a): the same id lands in the same folder in every
/// version and process.
fn shard(id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_sort_like_their_keys() {
        let l = Layout::new("/aps");
        let keys = [
            i64::MIN + 1,
            -86_400_000_001,
            -1,
            0,
            1,
            59_999_999,
            60_000_000,
            i64::MAX,
        ];
        let names: Vec<String> = keys.iter().map(|&k| l.entry(k, "a")).collect();
        for pair in names.windows(2) {
            let name = |p: &str| p.rsplit('/').next().unwrap().to_owned();
            assert!(name(&pair[0]) < name(&pair[1]), "{pair:?}");
        }
        for &k in &keys {
            let path = l.entry(k, "a/b");
            let name = path.rsplit('/').next().unwrap();
            assert_eq!(
                parse_entry(name),
                Some(Entry {
                    key: k,
                    id: "a/b".into()
                })
            );
        }
    }

    #[test]
    fn folders_hold_their_entries() {
        let l = Layout::new("/aps");
        for key in [-1_i64, 0, 1_700_000_000_123_456, -62_000_000_000_000_000] {
            let bucket = l.bucket(key, "x");
            let day = l.day(key);
            assert!(bucket.starts_with(&day));
            let day_name = day.rsplit('/').next().unwrap();
            let bucket_name = bucket.rsplit('/').next().unwrap();
            let (ds, bs) = (
                day_start(day_name).unwrap(),
                bucket_start(bucket_name).unwrap(),
            );
            assert!(
                ds <= bs && bs <= key && key - bs < 60_000_000,
                "{key} {ds} {bs}"
            );
        }
    }

    #[test]
    fn history_names_round_trip_and_sort_by_time() {
        let keys = [i64::MIN + 1, -1, 0, 1, 4_102_444_800_000_001];
        let names: Vec<String> = keys.iter().map(|&k| run_name(k, "r-1")).collect();
        for pair in names.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
        for &key in &keys {
            for run in ["r-1", "a+b", "ünï/cödé", "."] {
                assert_eq!(
                    parse_run_name(&run_name(key, run)),
                    Some(RunName {
                        key,
                        run: run.into()
                    })
                );
                let name = running_name("host/1 + x", "job+1", key, run);
                assert_eq!(name.matches('+').count(), 3, "{name}");
                assert_eq!(
                    parse_running_name(&name),
                    Some(RunningName {
                        node: "host/1 + x".into(),
                        job: "job+1".into(),
                        key,
                        run: run.into()
                    })
                );
            }
        }
        assert_eq!(parse_running_name("a+b+c"), None);
    }

    #[test]
    fn ids_become_valid_znode_names_and_back() {
        for id in [
            "plain-id_1",
            "a/b",
            "100%",
            ".",
            "..",
            "...",
            "ünï cödé",
            "tab\there",
            "x.y",
        ] {
            let name = encode_id(id);
            assert!(!name.contains('/') && name != "." && name != ".." && !name.is_empty());
            assert!(name.chars().all(|c| c.is_ascii_graphic()), "{name}");
            assert_eq!(decode_id(&name).as_deref(), Some(id), "{name}");
        }
        assert_eq!(encode_id("job.1"), "job.1");
        assert_eq!(decode_id(&encode_id("")).as_deref(), Some("\0"));
    }
}

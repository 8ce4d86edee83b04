//! Jenkins' `H` in crontab text: a value picked from the field's range by a hash of a key
//! (the job id), the same on every run, restart, node and version.
//!
//! The algorithm is Jenkins' (`hudson.scheduler.Hash` and `BaseParser.doHash`): the MD5 of
//! the key's UTF-8 bytes, its second half XORed onto its first, read big-endian as a
//! 64-bit seed for `java.util.Random`; each `H` of the line, in field order (minute, hour,
//! day of month, month, day of week) and left to right within a field, draws one
//! `nextInt(n)`. So a job named like a Jenkins job gets the values Jenkins gives it.

use apscheduler_core::TriggerError;
use md5::{Digest, Md5};

use super::expr::{err, parse_uint, Range};

/// The crontab fields `H` may stand in, in Jenkins' order, with the trigger's field index
/// and Jenkins' bounds: (name, index, lowest, highest, highest for a bare `H`).
/// A bare `H` in the day of month stays within 1-28 (every month has those days), and in
/// the day of week within 0-6 (7 is Sunday again).
const JENKINS_FIELDS: [(&str, usize, u32, u32, u32); 5] = [
    ("minute", 6, 0, 59, 59),
    ("hour", 5, 0, 23, 23),
    ("day", 2, 1, 31, 28),
    ("month", 1, 1, 12, 12),
    ("day_of_week", 4, 0, 7, 6),
];

/// `java.util.Random`: the 48-bit linear congruential generator the JDK specifies.
#[derive(Debug, Clone)]
pub(crate) struct JavaRandom {
    seed: u64,
}

const MULTIPLIER: u64 = 0x5_DEEC_E66D;
const ADDEND: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;

impl JavaRandom {
    /// `new Random(seed)`.
    pub(crate) fn new(seed: i64) -> JavaRandom {
        JavaRandom {
            seed: (seed as u64 ^ MULTIPLIER) & MASK,
        }
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.seed = self.seed.wrapping_mul(MULTIPLIER).wrapping_add(ADDEND) & MASK;
        (self.seed >> (48 - bits)) as i32
    }

    /// `nextInt(bound)`: uniform in `0..bound` (`bound` must be positive).
    pub(crate) fn next_int(&mut self, bound: i32) -> i32 {
        assert!(bound > 0, "bound must be positive");
        let mut r = self.next(31);
        let m = bound - 1;
        if bound & m == 0 {
            return ((i64::from(bound) * i64::from(r)) >> 31) as i32;
        }
        // Reject the top values that would bias the modulo, as the JDK does (the sum
        // overflows, on purpose, exactly when `u` is in the biased tail).
        let mut u = r;
        loop {
            r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return r;
            }
            u = self.next(31);
        }
    }
}

/// Jenkins' `Hash.from(key)`: the random sequence every `H` of one crontab line draws from.
pub(crate) fn jenkins_random(key: &str) -> JavaRandom {
    let mut digest: [u8; 16] = Md5::digest(key.as_bytes()).into();
    for i in 8..16 {
        digest[i % 8] ^= digest[i];
    }
    let seed = digest[..8]
        .iter()
        .fold(0i64, |l, b| (l << 8).wrapping_add(i64::from(*b)));
    JavaRandom::new(seed)
}

/// Whether a (trimmed) piece is an `H` form, in either case (no month or weekday name
/// starts with `h`).
pub(crate) fn is_hash_piece(piece: &str) -> bool {
    piece.starts_with(['h', 'H'])
}

/// Whether crontab text uses `H` anywhere (and so needs a hash key).
pub(crate) fn uses_hash(fields: &[&str]) -> bool {
    fields
        .iter()
        .flat_map(|f| f.split(','))
        .any(|p| is_hash_piece(p.trim()))
}

/// The values of every `H` piece of crontab fields (indexed as the trigger's fields), per
/// field in order, drawn as Jenkins draws them. `key` is the hash key; `None` with an `H`
/// present is an error saying how to give one.
pub(crate) fn resolve(
    texts: &[Option<&str>; 8],
    key: Option<&str>,
) -> Result<[Vec<Range>; 8], TriggerError> {
    let mut out: [Vec<Range>; 8] = Default::default();
    // `H` has no meaning in the fields Jenkins does not have.
    for (index, name) in [(0, "year"), (7, "second")] {
        if let Some(text) = texts[index] {
            if let Some(piece) = text.split(',').find(|p| is_hash_piece(p.trim())) {
                return Err(err(
                    name,
                    piece.trim(),
                    "H is read as Jenkins reads it, in the minute, hour, day-of-month, month \
                     and day-of-week fields only",
                ));
            }
        }
    }
    let mut random: Option<JavaRandom> = None;
    for (name, index, low, high, bare_high) in JENKINS_FIELDS {
        let Some(text) = texts[index] else { continue };
        for raw in text.split(',') {
            if !is_hash_piece(raw.trim()) {
                continue;
            }
            let piece = raw.trim().to_ascii_lowercase();
            let form = parse_form(name, raw.trim(), &piece[1..])?;
            let (s, e) = match form.range {
                Some((s, e)) => {
                    for v in [s, e] {
                        if v < low || v > high {
                            return Err(err(
                                name,
                                raw.trim(),
                                format!("{v} is outside {low}-{high}"),
                            ));
                        }
                    }
                    if s > e {
                        return Err(err(
                            name,
                            raw.trim(),
                            "the start of the range is after its end",
                        ));
                    }
                    (s, e)
                }
                None => (low, bare_high),
            };
            let width = i64::from(e) - i64::from(s) + 1;
            if i64::from(form.step) > width {
                return Err(err(
                    name,
                    raw.trim(),
                    format!(
                        "the step ({}) is wider than the range ({s}-{e}, {width} value(s))",
                        form.step
                    ),
                ));
            }
            let rng = match &mut random {
                Some(r) => r,
                None => random.insert(jenkins_random(key.ok_or_else(|| {
                    err(
                        name,
                        raw.trim(),
                        "H needs a hash key to pick its value: the daemon's jobs and jobs \
                         added with an id use the job id; in code call \
                         CronTrigger::from_crontab_hashed(expr, tz, key), or give the \
                         crontab trigger's arguments a \"hash_key\"",
                    )
                })?)),
            };
            // Jenkins: a step of 1 (or none) picks one value; a wider step picks where
            // the stepped sequence starts.
            let range = if form.step > 1 {
                let first = s + rng.next_int(form.step as i32) as u32;
                Range {
                    first,
                    last: e,
                    step: form.step,
                }
            } else {
                let v = s + rng.next_int(width as i32) as u32;
                Range {
                    first: v,
                    last: v,
                    step: 1,
                }
            };
            out[index].push(range);
        }
    }
    Ok(out)
}

/// `H`, `H/n`, `H(a-b)`, `H(a-b)/n` after the `H`.
struct Form {
    range: Option<(u32, u32)>,
    step: u32,
}

fn parse_form(field: &str, original: &str, rest: &str) -> Result<Form, TriggerError> {
    let bad = || {
        err(
            field,
            original,
            "expected H, H/n, H(a-b) or H(a-b)/n with numbers a, b and n",
        )
    };
    let (range, rest) = match rest.strip_prefix('(') {
        Some(inner) => {
            let (range, rest) = inner.split_once(')').ok_or_else(bad)?;
            let (a, b) = range.split_once('-').ok_or_else(bad)?;
            let a = parse_uint(a.trim()).ok_or_else(bad)?;
            let b = parse_uint(b.trim()).ok_or_else(bad)?;
            (Some((a, b)), rest)
        }
        None => (None, rest),
    };
    let step = match rest {
        "" => 1,
        _ => {
            let step = rest
                .strip_prefix('/')
                .and_then(parse_uint)
                .ok_or_else(bad)?;
            if step == 0 {
                return Err(err(field, original, "the step must be more than 0"));
            }
            step
        }
    };
    Ok(Form { range, step })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from the JDK's documented algorithm (`new Random(42).nextInt(...)`).
    #[test]
    fn java_random_matches_the_jdk() {
        let mut r = JavaRandom::new(42);
        // `new Random(42)`: nextInt(10) = 0, 3, 8; then nextInt(16) (a power of two) = 0.
        assert_eq!([r.next_int(10), r.next_int(10), r.next_int(10)], [0, 3, 8]);
        assert_eq!(r.next_int(16), 0);
    }
}

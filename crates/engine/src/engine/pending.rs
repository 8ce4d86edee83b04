//! Jobs added before `start`: kept in order, their ids counted so a conflict is found
//! without scanning them, and the generated ids.

use super::*;

/// A job built from a [`JobSpec`] and validated, not yet added (see
/// [`Engine::add_pending`] and [`Engine::add_prepared`]).
pub(crate) struct PreparedJob(pub(super) Pending);

#[derive(Clone)]
pub(super) struct Pending {
    pub(super) job: Job,
    pub(super) jobstore: Arc<str>,
    pub(super) replace_existing: bool,
    /// Added with [`JobSpec::declared`]: kept, updated or replaced by
    /// [`super::declared`]'s rule.
    pub(super) declared: bool,
    /// The job had no trigger: it runs once, at start.
    pub(super) run_once: bool,
    /// `next_run_time` was given explicitly.
    pub(super) explicit_next: bool,
    /// The id was made by [`new_job_id`].
    pub(super) generated_id: bool,
}

/// The jobs added before `start`, in the order they were added, in fixed-size chunks:
/// adding one never moves the others (a growing `Vec` copies every pending job, and
/// touches twice their memory, each time it doubles).
#[derive(Default)]
pub(super) struct PendingJobs {
    pub(super) chunks: Vec<Vec<Pending>>,
}

/// Pending jobs per chunk (about 200 KiB).
pub(super) const PENDING_CHUNK: usize = 1024;

impl PendingJobs {
    pub(super) fn push(&mut self, p: Pending) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < chunk.capacity() => chunk.push(p),
            _ => {
                let mut chunk = Vec::with_capacity(PENDING_CHUNK);
                chunk.push(p);
                self.chunks.push(chunk);
            }
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.chunks.iter().flatten()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Pending> {
        self.chunks.iter_mut().flatten()
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Pending) -> bool) {
        for chunk in &mut self.chunks {
            chunk.retain(&mut keep);
        }
        self.chunks.retain(|c| !c.is_empty());
    }
}

impl IntoIterator for PendingJobs {
    type Item = Pending;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<Pending>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.chunks.into_iter().flatten()
    }
}

/// How many pending jobs have each 64-bit hash of their id: a new id whose hash is not
/// there is free without scanning the pending jobs, and growing the table re-hashes no
/// id string.
///
/// Ids made by [`new_job_id`] are unique by construction, so they cannot conflict with
/// each other, only with an explicit id equal to one of them. They are left out (one
/// table probe less per added job, the common case) until an explicit id shaped like
/// them is added; then they are counted from there on.
#[derive(Default)]
pub(super) struct PendingIds {
    pub(super) hasher: foldhash::fast::RandomState,
    pub(super) counts: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    /// Whether generated ids are counted too.
    pub(super) generated_counted: bool,
}

impl PendingIds {
    /// Whether the id of a pending job (made by [`new_job_id`] or not) is counted.
    pub(super) fn counts_id(&self, generated: bool) -> bool {
        !generated || self.generated_counted
    }
    pub(super) fn key(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }
    #[cfg(test)]
    pub(super) fn may_contain(&self, key: u64) -> bool {
        self.counts.contains_key(&key)
    }
    pub(super) fn insert(&mut self, key: u64) {
        *self.counts.entry(key).or_insert(0) += 1;
    }
    /// Counts `key` if no pending id has it yet and says so; a key already there is
    /// left as it is (one table probe for the common case of a fresh id).
    pub(super) fn insert_new(&mut self, key: u64) -> bool {
        match self.counts.entry(key) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(1);
                true
            }
            std::collections::hash_map::Entry::Occupied(_) => false,
        }
    }
    pub(super) fn remove(&mut self, key: u64) {
        if let Some(n) = self.counts.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&key);
            }
        }
    }
    pub(super) fn clear(&mut self) {
        self.counts.clear();
        self.generated_counted = false;
    }
}

/// Hashes a key that already is a hash (a `u64` from [`PendingIds::key`]) to itself.
#[derive(Default)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A random job id in the form of APScheduler's `uuid4().hex` (a version 4 UUID, 32
/// lowercase hex digits).
///
/// The bits come from a keyed bijection of a per-thread counter, the key drawn from the
/// operating system once per thread: ids are unique within a thread by construction,
/// and across threads as unlikely to collide as random UUIDs, while adding a job makes
/// no system call.
pub(super) fn new_job_id() -> Arc<str> {
    /// SplitMix64's finalizer: a bijection of `u64` that mixes every bit.
    pub(super) fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    thread_local! {
        static KEY: (u64, u64) = {
            let k = uuid::Uuid::new_v4().as_u128();
            ((k >> 64) as u64, k as u64)
        };
        static COUNTER: Cell<u64> = const { Cell::new(0) };
    }
    let c = COUNTER.with(|n| {
        let c = n.get();
        n.set(c.wrapping_add(1));
        c
    });
    let (k0, k1) = KEY.with(|k| *k);
    let hi = u128::from(mix(k0 ^ c));
    let lo = u128::from(mix(k1 ^ c.rotate_left(32)));
    let uuid = uuid::Builder::from_random_bytes(((hi << 64) | lo).to_be_bytes()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
    Arc::from(&*uuid.simple().encode_lower(&mut buf))
}

/// Whether `id` has the shape of an id made by [`new_job_id`]: 32 lowercase hex digits
/// of a version-4, RFC 4122 variant UUID.
pub(super) fn could_be_generated(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 32
        && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && b[12] == b'4'
        && matches!(b[16], b'8' | b'9' | b'a' | b'b')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_job_ids_are_distinct_uuid4_hex() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = new_job_id();
            let uuid = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(uuid.get_version_num(), 4);
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(&*id, uuid.simple().to_string());
            assert!(could_be_generated(&id), "{id}");
            assert!(seen.insert(id));
        }
        assert!(!could_be_generated("dup"));
        assert!(!could_be_generated("0123456789AB4DEF8123456789ABCDEF"));
        assert!(!could_be_generated("0123456789ab3def8123456789abcdef"));
        assert!(!could_be_generated("0123456789ab4def7123456789abcdef"));
        let other = std::thread::spawn(new_job_id).join().unwrap();
        assert!(!seen.contains(&other));
    }

    #[test]
    fn pending_ids_count_each_id() {
        let mut ids = PendingIds::default();
        let (a, b) = (ids.key("a"), ids.key("b"));
        assert!(!ids.may_contain(a));
        ids.insert(a);
        ids.insert(a);
        ids.remove(a);
        assert!(ids.may_contain(a));
        ids.remove(a);
        assert!(!ids.may_contain(a));
        assert!(ids.insert_new(b));
        assert!(!ids.insert_new(b));
        ids.remove(b);
        assert!(!ids.may_contain(b));
        ids.insert(b);
        ids.clear();
        assert!(!ids.may_contain(b));
    }
}

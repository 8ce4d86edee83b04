//! Writes: every change to a job and its index entry is one `multi` request, checked
//! against the version of the job znode read before it.

use super::*;

/// One write of a `multi` request.
pub(crate) enum Op {
    /// Creates a znode (`NodeExists` if it is there).
    Create { path: String, data: Vec<u8> },
    /// Creates an index entry (and its folders when missing).
    CreateEntry(Entry),
    /// Sets a znode's data, if its version is still `version`.
    Set {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    /// Deletes a znode (at `version`, if given).
    Delete { path: String, version: Option<i32> },
    /// Writes `P/changes` (wakes the watchers).
    Bump,
}

/// Why a `multi` failed.
pub(crate) enum Failed {
    /// Operation `index` was refused (`NodeExists`, `BadVersion`, `NoNode`, ...).
    Op { index: usize, error: ZkError },
    /// The request itself failed.
    Call(Error),
}

impl Failed {
    pub(crate) fn into_error(self, what: &'static str) -> Error {
        match self {
            Failed::Op { error, .. } => zk(what, error),
            Failed::Call(e) => e,
        }
    }
}

impl ZooKeeperJobStore {
    /// Commits `ops` as one `multi`, creating index folders that are missing.
    pub(crate) async fn commit(&self, c: &Client, ops: &[Op]) -> Result<(), Failed> {
        let mut tries = 0;
        loop {
            let mut w = c.new_multi_writer();
            for op in ops {
                let added = match op {
                    Op::Create { path, data } => w.add_create(path, data, &PERSISTENT),
                    Op::CreateEntry(e) => {
                        w.add_create(&self.layout.entry(e.key, &e.id), b"", &PERSISTENT)
                    }
                    Op::Set {
                        path,
                        data,
                        version,
                    } => w.add_set_data(path, data, Some(*version)),
                    Op::Delete { path, version } => w.add_delete(path, *version),
                    Op::Bump => w.add_set_data(&self.layout.changes, b"", None),
                };
                added.map_err(|e| Failed::Call(zk("prepare a write", e)))?;
            }
            match w.commit().await {
                Ok(_) => return Ok(()),
                Err(MultiWriteError::RequestFailed { source }) => {
                    return Err(Failed::Call(zk("write", source)))
                }
                Err(MultiWriteError::OperationFailed { index, source }) => {
                    if let (ZkError::NoNode, Some(Op::CreateEntry(_))) = (&source, ops.get(index)) {
                        tries += 1;
                        if tries < WRITE_TRIES {
                            // Create every folder the request needs at once.
                            let mut buckets = HashSet::new();
                            let entries = ops.iter().filter_map(|op| match op {
                                Op::CreateEntry(e)
                                    if buckets.insert(self.layout.bucket(e.key, &e.id)) =>
                                {
                                    Some(e)
                                }
                                _ => None,
                            });
                            let created =
                                join_all(entries.map(|e| self.create_folders(c, e))).await;
                            for done in created {
                                done.map_err(Failed::Call)?;
                            }
                            continue;
                        }
                    }
                    return Err(Failed::Op {
                        index,
                        error: source,
                    });
                }
            }
        }
    }

    /// Creates the day, hour and minute folders of an index entry.
    pub(crate) async fn create_folders(&self, c: &Client, e: &Entry) -> Result<(), Error> {
        for path in [
            self.layout.day(e.key),
            self.layout.hour(e.key),
            self.layout.bucket(e.key, &e.id),
        ] {
            match c.create(&path, b"", &CONTAINER).await {
                // NoNode: the day folder went away meanwhile; the caller tries again.
                Ok(_) | Err(ZkError::NodeExists) | Err(ZkError::NoNode) => {}
                Err(e) => return Err(zk("create an index folder", e)),
            }
        }
        Ok(())
    }

    /// The index changes that move a job from `old` to `new` header.
    pub(crate) fn reindex(
        ops: &mut Vec<Op>,
        layout: &Layout,
        id: &str,
        old: &Header,
        new: &Header,
    ) {
        let (before, after) = (old.due_key(), new.due_key());
        if before == after {
            return;
        }
        if let Some(key) = before {
            ops.push(Op::Delete {
                path: layout.entry(key, id),
                version: None,
            });
        }
        if let Some(key) = after {
            ops.push(Op::CreateEntry(Entry {
                key,
                id: id.to_owned(),
            }));
        }
    }

    pub(crate) fn encode(&self, job: &Job) -> Result<Record, Error> {
        if job.id.is_empty() {
            return Err(invalid("id", "", "a job id must not be empty"));
        }
        Ok(Record {
            header: Header {
                next: job.next_run_time.as_ref().map(micros::run_time),
                ..Header::default()
            },
            state: self.codec.encode(job)?,
        })
    }

    /// The writes that add `record` as a new job.
    pub(crate) fn creation(&self, id: &str, record: &Record, ops: &mut Vec<Op>) {
        ops.push(Op::Create {
            path: self.layout.job(id),
            data: record.encode(),
        });
        if let Some(key) = record.header.due_key() {
            ops.push(Op::CreateEntry(Entry {
                key,
                id: id.to_owned(),
            }));
        }
    }

    /// Stores a new state for an existing job, keeping its lease: `Ok(false)` when the
    /// job is missing.
    pub(crate) async fn overwrite(
        &self,
        c: &Client,
        id: &str,
        mut record: Record,
    ) -> Result<bool, Error> {
        for _ in 0..WRITE_TRIES {
            let Some(read) = self.read(c, id).await? else {
                return Ok(false);
            };
            let old = read.record.map(|r| r.header).unwrap_or_default();
            record.header.owner.clone_from(&old.owner);
            record.header.expires = old.expires;
            let mut ops = vec![Op::Set {
                path: self.layout.job(id),
                data: record.encode(),
                version: read.version,
            }];
            Self::reindex(&mut ops, &self.layout, id, &old, &record.header);
            ops.push(Op::Bump);
            match self.commit(c, &ops).await {
                Ok(()) => return Ok(true),
                Err(Failed::Op {
                    error: ZkError::BadVersion | ZkError::NoNode,
                    ..
                }) => continue,
                Err(f) => return Err(f.into_error("update a job")),
            }
        }
        Err(contended(id))
    }

    pub(crate) async fn replace_one(
        &self,
        c: &Client,
        id: &str,
        record: &Record,
    ) -> Result<(), Error> {
        for _ in 0..WRITE_TRIES {
            if self.overwrite(c, id, record.clone()).await? {
                return Ok(());
            }
            let mut ops = Vec::new();
            self.creation(id, record, &mut ops);
            ops.push(Op::Bump);
            match self.commit(c, &ops).await {
                Ok(()) => return Ok(()),
                Err(Failed::Op {
                    index: 0,
                    error: ZkError::NodeExists,
                }) => continue,
                Err(f) => return Err(f.into_error("add a job")),
            }
        }
        Err(contended(id))
    }
}

pub(crate) fn contended(id: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("job '{id}' kept changing under concurrent writers; try again"),
    )
}

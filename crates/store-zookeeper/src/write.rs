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
    /// Fails the request unless a znode is still at `version`.
    Check { path: String, version: i32 },
}

/// What a read-modify-write does once it has read the job.
pub(crate) enum Step<T> {
    /// Nothing to write: this is the answer.
    Done(T),
    /// Write these (checked against the version read), then answer.
    Write(Vec<Op>, T),
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
    /// Commits `ops` as one `multi`, creating index folders that are missing. Returns
    /// the server's time at the write (UTC microseconds, from the modification time
    /// of its first data write; `None` when it set no data).
    pub(crate) async fn commit(&self, c: &Client, ops: &[Op]) -> Result<Option<i64>, Failed> {
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
                    Op::Check { path, version } => w.add_check_version(path, *version),
                };
                added.map_err(|e| Failed::Call(zk("prepare a write", e)))?;
            }
            match w.commit().await {
                Ok(results) => {
                    return Ok(results.iter().find_map(|r| match r {
                        MultiWriteResult::SetData { stat } => Some(stat.mtime.saturating_mul(1000)),
                        _ => None,
                    }))
                }
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

    /// The writes that store `record` over a job read at `version` with header `old`,
    /// moving its index entry when its due key changes.
    pub(crate) fn rewrite(&self, id: &str, version: i32, old: &Header, record: &Record) -> Vec<Op> {
        let mut ops = vec![Op::Set {
            path: self.layout.job(id),
            data: record.encode(),
            version,
        }];
        let (before, after) = (old.due_key(), record.header.due_key());
        if before != after {
            if let Some(key) = before {
                ops.push(Op::Delete {
                    path: self.layout.entry(key, id),
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
        ops
    }

    /// The writes that delete a job read at `version` (with header `old`, when it could
    /// be read) and its index entry.
    pub(crate) fn deletion(&self, id: &str, version: i32, old: Option<&Header>) -> Vec<Op> {
        let mut ops = vec![Op::Delete {
            path: self.layout.job(id),
            version: Some(version),
        }];
        if let Some(key) = old.and_then(Header::due_key) {
            ops.push(Op::Delete {
                path: self.layout.entry(key, id),
                version: None,
            });
        }
        ops
    }

    /// Reads job `id`, lets `plan` decide what to write, and writes it; when another
    /// writer changed or removed the job in between (`BadVersion`, `NoNode`), reads it
    /// again and asks `plan` anew.
    pub(crate) async fn read_modify_write<T>(
        &self,
        c: &Client,
        id: &str,
        what: &'static str,
        plan: impl FnMut(Option<Read>) -> Result<Step<T>, Error>,
    ) -> Result<T, Error> {
        Ok(self.read_modify_write_at(c, id, what, plan).await?.0)
    }

    /// [`read_modify_write`](Self::read_modify_write), with the server's time at the
    /// write (see [`commit`](Self::commit); `None` when nothing was written).
    pub(crate) async fn read_modify_write_at<T>(
        &self,
        c: &Client,
        id: &str,
        what: &'static str,
        mut plan: impl FnMut(Option<Read>) -> Result<Step<T>, Error>,
    ) -> Result<(T, Option<i64>), Error> {
        for _ in 0..WRITE_TRIES {
            let (ops, answer) = match plan(self.read(c, id).await?)? {
                Step::Done(answer) => return Ok((answer, None)),
                Step::Write(ops, answer) => (ops, answer),
            };
            match self.commit(c, &ops).await {
                Ok(at) => return Ok((answer, at)),
                Err(Failed::Op {
                    error: ZkError::BadVersion | ZkError::NoNode,
                    ..
                }) => continue,
                Err(f) => return Err(f.into_error(what)),
            }
        }
        Err(contended(id))
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
        record: &Record,
    ) -> Result<bool, Error> {
        self.read_modify_write(c, id, "update a job", |read| {
            let Some(read) = read else {
                return Ok(Step::Done(false));
            };
            let old = read.record.map(|r| r.header).unwrap_or_default();
            let mut record = record.clone();
            record.header.owner.clone_from(&old.owner);
            record.header.expires = old.expires;
            let mut ops = self.rewrite(id, read.version, &old, &record);
            ops.push(Op::Bump);
            Ok(Step::Write(ops, true))
        })
        .await
    }

    /// Stores `record` as job `id`, replacing the job there (keeping its lease) or
    /// creating it.
    pub(crate) async fn replace_one(
        &self,
        c: &Client,
        id: &str,
        record: &Record,
    ) -> Result<(), Error> {
        for _ in 0..WRITE_TRIES {
            if self.overwrite(c, id, record).await? {
                return Ok(());
            }
            let mut ops = Vec::new();
            self.creation(id, record, &mut ops);
            ops.push(Op::Bump);
            match self.commit(c, &ops).await {
                Ok(_) => return Ok(()),
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

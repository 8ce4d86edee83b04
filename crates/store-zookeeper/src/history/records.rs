//! `record_runs` and `interrupt_running`: each record, its run id's pointer and its
//! running index entry rewritten together by one `multi`, retried when another writer
//! changed them first.

use std::collections::{HashMap, HashSet};

use apscheduler_core::{log_warn, Error, ErrorKind, RunOutcome, RunRecord};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use zookeeper_client::Error as ZkError;

use super::{contended, encode_record, key_of, HOp, Pointer, ZooKeeperRunHistory};
use crate::layout::{self, Layout, RunningName};
use crate::write::Failed;
use crate::{BURST, MULTI_BYTES, WRITE_TRIES};

impl ZooKeeperRunHistory {
    /// The writes that store `record` (encoded as `data`) over what `old` says is there.
    pub(super) fn record_ops(
        &self,
        record: &RunRecord,
        data: Vec<u8>,
        old: Option<(Pointer, i32)>,
    ) -> Result<Vec<HOp>, Error> {
        let key = key_of(record.scheduled_at);
        let running = (record.outcome == RunOutcome::Running)
            .then(|| layout::running_name(&record.node, &record.job_id, key, &record.run_id));
        let pointer = Pointer {
            record: Layout::run_relative(&record.job_id, key, &record.run_id),
            running: running.clone(),
        };
        let pointer_data = serde_json::to_vec(&pointer)
            .map_err(|e| Error::new(ErrorKind::Serialization, format!("run pointer: {e}")))?;
        let pointer_path = self.layout.run_pointer(&record.run_id);
        let path = self.layout.run(&record.job_id, key, &record.run_id);
        let mut ops = Vec::new();
        let old_running = match old {
            None => {
                ops.push(HOp::Create {
                    path: pointer_path,
                    data: pointer_data,
                });
                ops.push(HOp::Create { path, data });
                None
            }
            Some((old, version)) => {
                ops.push(HOp::Set {
                    path: pointer_path,
                    data: pointer_data,
                    version: Some(version),
                });
                if old.record == pointer.record {
                    ops.push(HOp::Set {
                        path,
                        data,
                        version: None,
                    });
                } else {
                    ops.push(HOp::Delete {
                        path: format!("{}/{}", self.layout.history_jobs, old.record),
                        version: None,
                    });
                    ops.push(HOp::Create { path, data });
                }
                old.running
            }
        };
        if old_running != running {
            if let Some(name) = old_running {
                ops.push(HOp::Delete {
                    path: self.layout.running(&name),
                    version: None,
                });
            }
            if let Some(name) = running {
                ops.push(HOp::Create {
                    path: self.layout.running(&name),
                    data: Vec::new(),
                });
            }
        }
        Ok(ops)
    }

    pub(super) async fn record(&self, records: &[RunRecord]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        // A run id named twice: its last record counts.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            last.insert(&r.run_id, i);
        }
        let mut encoded: Vec<(&RunRecord, Vec<u8>)> = Vec::with_capacity(last.len());
        for (i, r) in records.iter().enumerate() {
            if last[r.run_id.as_str()] == i {
                encoded.push((r, encode_record(r)?));
            }
        }
        let c = self.client().await?;
        let mut pending: Vec<usize> = (0..encoded.len()).collect();
        for _ in 0..WRITE_TRIES {
            // Where each record is now (one burst of reads), then its writes.
            let mut planned: Vec<(usize, Vec<HOp>)> = Vec::with_capacity(pending.len());
            for chunk in pending.chunks(BURST) {
                let pointers = join_all(
                    chunk
                        .iter()
                        .map(|&i| self.read_pointer(&c, &encoded[i].0.run_id)),
                )
                .await;
                for (&i, old) in chunk.iter().zip(pointers) {
                    let (record, data) = &encoded[i];
                    planned.push((i, self.record_ops(record, data.clone(), old?)?));
                }
            }
            // As few multis as the size limit allows.
            let mut chunks: Vec<(Vec<usize>, Vec<HOp>)> = vec![(Vec::new(), Vec::new())];
            let mut bytes = 0;
            for (i, ops) in planned {
                let size: usize = ops.iter().map(HOp::bytes).sum();
                let last = chunks.last_mut().expect("a chunk");
                if bytes + size > MULTI_BYTES && !last.0.is_empty() {
                    chunks.push((Vec::new(), Vec::new()));
                    bytes = 0;
                }
                bytes += size;
                let last = chunks.last_mut().expect("a chunk");
                last.0.push(i);
                last.1.extend(ops);
            }
            let done = join_all(chunks.iter().map(|(_, ops)| Self::commit(&c, ops))).await;
            let mut again = Vec::new();
            let mut folders = HashSet::new();
            for ((indexes, ops), result) in chunks.iter().zip(done) {
                match result {
                    Ok(()) => {}
                    Err(Failed::Call(e)) => return Err(e),
                    Err(Failed::Op { index, error }) => {
                        if let (ZkError::NoNode, Some(HOp::Create { .. })) =
                            (&error, ops.get(index))
                        {
                            for &i in indexes {
                                folders.insert(self.layout.run_folder(&encoded[i].0.job_id));
                            }
                        }
                        // Changed meanwhile (BadVersion, NodeExists) or a folder was
                        // missing: read again and write again.
                        again.extend_from_slice(indexes);
                    }
                }
            }
            if again.is_empty() {
                return Ok(());
            }
            if !folders.is_empty() {
                self.make_job_folders(&c, &folders).await?;
            }
            pending = again;
        }
        Err(contended(&format!(
            "run record '{}'",
            encoded[pending[0]].0.run_id
        )))
    }

    pub(super) async fn interrupt(
        &self,
        node: &str,
        now: DateTime<Utc>,
        message: &str,
    ) -> Result<Vec<RunRecord>, Error> {
        let c = self.client().await?;
        let mut changed = Vec::new();
        // Entries that cannot be interrupted here (their record is missing or no longer
        // running): not tried again in this call.
        let mut skipped: HashSet<String> = HashSet::new();
        for _ in 0..WRITE_TRIES {
            let mine: Vec<(String, RunningName)> = self
                .running_entries(&c)
                .await?
                .into_iter()
                .filter(|(name, e)| e.node == node && !skipped.contains(name))
                .collect();
            if mine.is_empty() {
                return Ok(changed);
            }
            let paths: Vec<String> = mine
                .iter()
                .map(|(_, e)| self.layout.run(&e.job, e.key, &e.run))
                .collect();
            let path_refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            let reads = Self::read_records(&c, &path_refs).await?;
            let mut writes = Vec::new();
            for (((name, entry), path), read) in mine.iter().zip(&paths).zip(reads) {
                let Some((record, version)) = read else {
                    skipped.insert(name.clone());
                    continue;
                };
                let mut record = record?;
                // Taken over since the listing (`running` again, on another node):
                // that node's run now, not this caller's.
                if record.outcome != RunOutcome::Running || record.node != node {
                    skipped.insert(name.clone());
                    continue;
                }
                record.outcome = RunOutcome::Interrupted;
                record.finished_at = Some(now);
                record.message = Some(message.to_owned());
                let pointer = Pointer {
                    record: Layout::run_relative(&entry.job, entry.key, &entry.run),
                    running: None,
                };
                let ops = vec![
                    // Only one caller's write of the version read succeeds: the record
                    // is handed to that caller alone.
                    HOp::Set {
                        path: path.clone(),
                        data: encode_record(&record)?,
                        version: Some(version),
                    },
                    HOp::Set {
                        path: self.layout.run_pointer(&entry.run),
                        data: serde_json::to_vec(&pointer).map_err(|e| {
                            Error::new(ErrorKind::Serialization, format!("run pointer: {e}"))
                        })?,
                        version: None,
                    },
                    HOp::Delete {
                        path: self.layout.running(name),
                        version: None,
                    },
                ];
                writes.push((name, record, ops));
            }
            let results = join_all(writes.iter().map(|(_, _, ops)| Self::commit(&c, ops))).await;
            let mut retry = false;
            for ((name, record, _), result) in writes.into_iter().zip(results) {
                match result {
                    Ok(()) => changed.push(record),
                    // Rewritten meanwhile: look again (another caller's interrupt
                    // removes the entry; a rewrite that keeps it running does not).
                    Err(Failed::Op {
                        error: ZkError::BadVersion,
                        ..
                    }) => retry = true,
                    Err(Failed::Op { .. }) => {
                        skipped.insert(name.clone());
                    }
                    Err(Failed::Call(e)) => {
                        if changed.is_empty() {
                            return Err(e);
                        }
                        // These are interrupted already: hand them over; the rest
                        // stay running for the next call.
                        log_warn!("ZooKeeper run history: interrupting runs of {node}: {e}");
                        return Ok(changed);
                    }
                }
            }
            if !retry && changed.is_empty() {
                return Ok(changed);
            }
        }
        Ok(changed)
    }
}

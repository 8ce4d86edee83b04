//! `record_starts`: the start of claimed runs, written only on records still
//! `running` without one (a versioned `setData`, or the record created whole).

use std::collections::HashSet;

use apscheduler_core::{Error, RunOutcome, RunRecord};
use futures_util::future::join_all;
use zookeeper_client::{Client, Error as ZkError};

use super::{contended, decode_record, encode_record, ZooKeeperRunHistory};
use crate::error::zk;
use crate::write::Failed;
use crate::{BURST, WRITE_TRIES};

impl ZooKeeperRunHistory {
    /// The starts of `records`, [`BURST`] records at a time (see
    /// [`start_one`](Self::start_one)); the run ids that may start.
    pub(super) async fn start(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        let c = self.client().await?;
        let mut seen = HashSet::with_capacity(records.len());
        let unique: Vec<&RunRecord> = records
            .iter()
            .filter(|r| seen.insert(r.run_id.as_str()))
            .collect();
        let mut accepted = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(BURST) {
            let done = join_all(chunk.iter().map(|r| self.start_one(&c, r))).await;
            for (r, started) in chunk.iter().zip(done) {
                if started? {
                    accepted.push(r.run_id.clone());
                }
            }
        }
        Ok(accepted)
    }

    /// Writes `record`'s start: with no record of its run id, the record whole (its
    /// pointer, record and running entry created in one `multi`); on a stored record
    /// still `running` without a start, that record with `started_at` set, by a
    /// `setData` of the version read (an interruption in between makes it fail, and
    /// the record is read again). Whether its run may start: the stored record is
    /// (now) `running` with a start.
    async fn start_one(&self, c: &Client, record: &RunRecord) -> Result<bool, Error> {
        let data = encode_record(record)?;
        let mut made_folders = false;
        for _ in 0..WRITE_TRIES {
            let Some((pointer, _)) = self.read_pointer(c, &record.run_id).await? else {
                let ops = self.record_ops(record, data.clone(), None)?;
                match Self::commit(c, &ops).await {
                    Ok(()) => return Ok(true),
                    Err(Failed::Call(e)) => return Err(e),
                    Err(Failed::Op {
                        error: ZkError::NoNode,
                        ..
                    }) if !made_folders => {
                        let folder = self.layout.run_folder(&record.job_id);
                        self.make_job_folders(c, &HashSet::from([folder])).await?;
                        made_folders = true;
                    }
                    // Created meanwhile (NodeExists): read it.
                    Err(Failed::Op { .. }) => {}
                }
                continue;
            };
            let path = format!("{}/{}", self.layout.history_jobs, pointer.record);
            let (stored, version) = match c.get_data(&path).await {
                Ok((bytes, stat)) => (decode_record(&path, &bytes)?, stat.version),
                // Moved or pruned meanwhile: read the pointer again.
                Err(ZkError::NoNode) => continue,
                Err(e) => return Err(zk("read a run record", e)),
            };
            if stored.outcome != RunOutcome::Running {
                return Ok(false);
            }
            if stored.started_at.is_some() {
                return Ok(true);
            }
            let mut started = stored;
            started.started_at = record.started_at;
            match c
                .set_data(&path, &encode_record(&started)?, Some(version))
                .await
            {
                Ok(_) => return Ok(true),
                Err(ZkError::BadVersion | ZkError::NoNode) => {}
                Err(e) => return Err(zk("write a run's start", e)),
            }
        }
        Err(contended(&format!("run record '{}'", record.run_id)))
    }
}

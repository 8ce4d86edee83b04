//! `record_starts`: the start of claimed runs, written only on records still
//! `running` without one.

use std::collections::{BTreeMap, HashMap, HashSet};

use apscheduler_core::{Error, RunOutcome, RunRecord};
use mongodb::bson::{doc, Bson, RawDocumentBuf};
use mongodb::error::ErrorKind as DriverKind;

use super::{encode, field, stored_micros, MongoDbRunHistory};
use crate::error::DUPLICATE_KEY;
use crate::IDS_PER_QUERY;

impl MongoDbRunHistory {
    /// An unordered `insertMany` of the records (a duplicate key leaves the stored one
    /// alone), an `updateMany` per start time of the records still `running` without
    /// a start (filtered on both: atomic per document), then a `find` of their
    /// outcomes and starts. A run may start when its record is `running` with a start,
    /// or has this write's start time: the update applied while it was `running` (an
    /// interruption after that finds it started, and does not start it again).
    pub(super) async fn start(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut seen = HashSet::with_capacity(records.len());
        let unique: Vec<&RunRecord> = records.iter().filter(|r| seen.insert(&*r.run_id)).collect();
        let (_, runs) = self.runs().await?;
        let context = "record of run starts";
        let inserted = runs
            .insert_many(unique.iter().map(|r| encode(r)))
            .ordered(false)
            .await;
        if let Err(e) = inserted {
            let DriverKind::InsertMany(failure) = &*e.kind else {
                return Err(self.fail(context, e));
            };
            let other = failure.write_concern_error.is_some()
                || failure
                    .write_errors
                    .iter()
                    .flatten()
                    .any(|w| w.code != DUPLICATE_KEY);
            if other {
                return Err(self.fail(context, e));
            }
        }
        // The time each record starts at, as stored.
        let started: HashMap<&str, Option<i64>> = unique
            .iter()
            .map(|r| (r.run_id.as_str(), r.started_at.as_ref().map(stored_micros)))
            .collect();
        let mut by_start: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for (id, at) in &started {
            if let Some(at) = at {
                by_start.entry(*at).or_default().push(id);
            }
        }
        let running = RunOutcome::Running.as_str();
        for (at, ids) in &by_start {
            for chunk in ids.chunks(IDS_PER_QUERY) {
                runs.update_many(
                    doc! {
                        field::ID: {"$in": chunk},
                        field::OUTCOME: running,
                        field::STARTED: Bson::Null,
                    },
                    doc! {"$set": {field::STARTED: *at}},
                )
                .await
                .map_err(|e| self.fail(context, e))?;
            }
        }
        let ids: Vec<&str> = started.keys().copied().collect();
        let mut accepted = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let mut cursor = runs
                .clone_with_type::<RawDocumentBuf>()
                .find(doc! {field::ID: {"$in": chunk}})
                .projection(doc! {field::ID: 1, field::OUTCOME: 1, field::STARTED: 1})
                .await
                .map_err(|e| self.fail(context, e))?;
            while cursor.advance().await.map_err(|e| self.fail(context, e))? {
                let doc = cursor.current();
                let Ok(id) = doc.get_str(field::ID) else {
                    continue;
                };
                let outcome = doc.get_str(field::OUTCOME).ok();
                let at = doc.get_i64(field::STARTED).ok();
                let ours = at.is_some() && started.get(id).copied().flatten() == at;
                if ours || (outcome == Some(running) && at.is_some()) {
                    accepted.push(id.to_owned());
                }
            }
        }
        Ok(accepted)
    }
}

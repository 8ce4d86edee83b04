//! The node registry: the collection `<jobs collection>_nodes`, one document per node.

use apscheduler_core::{async_trait, Error, ErrorKind, NodeInfo, NodeRegistry, RunProtocol};
use chrono::DateTime;
use mongodb::bson::{doc, Document};
use mongodb::options::{CollectionOptions, ReadPreference, SelectionCriteria};
use mongodb::Collection;

use super::{stored_micros, MongoDbRunHistory, NODES_SUFFIX};
use crate::validate_collection_name;

impl MongoDbRunHistory {
    /// The node registry collection (`<jobs collection>_nodes`).
    async fn nodes_collection(&self) -> Result<Collection<Document>, Error> {
        let name = format!("{}{NODES_SUFFIX}", self.link.collection);
        validate_collection_name(&self.link.database, &name)?;
        let conn = self.link.conn().await?;
        Ok(conn.database.collection_with_options::<Document>(
            &name,
            CollectionOptions::builder()
                .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
                .build(),
        ))
    }
}

/// A node entry as stored: `_id` the node name, times in UTC microseconds.
fn node_document(node: &NodeInfo) -> Document {
    doc! {
        "_id": &node.node,
        "host": &node.host,
        "pid": i64::from(node.pid),
        "started_us": stored_micros(&node.started_at),
        "heartbeat_us": stored_micros(&node.heartbeat_at),
        "running": i64::from(node.running),
        "protocol": node.protocol.as_str(),
    }
}

fn read_node(d: &Document) -> Option<NodeInfo> {
    let time = |k: &str| d.get_i64(k).ok().and_then(DateTime::from_timestamp_micros);
    Some(NodeInfo {
        node: d.get_str("_id").ok()?.to_owned(),
        host: d.get_str("host").ok()?.to_owned(),
        pid: u32::try_from(d.get_i64("pid").ok()?).ok()?,
        started_at: time("started_us")?,
        heartbeat_at: time("heartbeat_us")?,
        running: u32::try_from(d.get_i64("running").ok()?).ok()?,
        // Absent in an entry written before nodes named their protocol.
        protocol: d
            .get_str("protocol")
            .map(|p| RunProtocol::from(p.to_owned()))
            .unwrap_or_default(),
    })
}

/// The node registry: the collection `<jobs collection>_nodes`, one document per node
/// (`_id` its name), replaced by each heartbeat.
#[async_trait]
impl NodeRegistry for MongoDbRunHistory {
    async fn heartbeat(&self, node: &NodeInfo) -> Result<(), Error> {
        let nodes = self.nodes_collection().await?;
        nodes
            .replace_one(doc! {"_id": &node.node}, node_document(node))
            .upsert(true)
            .await
            .map_err(|e| self.fail("heartbeat", e))?;
        Ok(())
    }

    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let nodes = self.nodes_collection().await?;
        let mut cursor = nodes
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .map_err(|e| self.fail("list nodes", e))?;
        let mut found = Vec::new();
        while cursor
            .advance()
            .await
            .map_err(|e| self.fail("list nodes", e))?
        {
            let d = cursor
                .deserialize_current()
                .map_err(|e| self.fail("list nodes", e))?;
            let node = read_node(&d).ok_or_else(|| {
                Error::new(
                    ErrorKind::Serialization,
                    format!(
                        "MongoDB: node entry {:?} in {}{NODES_SUFFIX} cannot be read",
                        d.get("_id"),
                        self.link.collection
                    ),
                )
            })?;
            found.push(node);
        }
        Ok(found)
    }

    async fn remove_node(&self, node: &str) -> Result<bool, Error> {
        let nodes = self.nodes_collection().await?;
        let done = nodes
            .delete_one(doc! {"_id": node})
            .await
            .map_err(|e| self.fail("remove node", e))?;
        Ok(done.deleted_count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_written_before_the_protocol_field_reads_as_history_records() {
        let mut d = doc! {
            "_id": "a", "host": "h", "pid": 7_i64, "started_us": 1_i64,
            "heartbeat_us": 2_i64, "running": 0_i64,
        };
        assert_eq!(read_node(&d).unwrap().protocol, RunProtocol::HistoryRecords);
        d.insert("protocol", "leased_runs.2");
        let node = read_node(&d).unwrap();
        assert_eq!(node.protocol, RunProtocol::LeasedRuns);
        // Earlier releases' leased runs (most without the `ending` state).
        d.insert("protocol", "leased_runs");
        let earlier = RunProtocol::Other("leased_runs".to_owned());
        assert_eq!(read_node(&d).unwrap().protocol, earlier);
        assert_eq!(read_node(&node_document(&node)).unwrap(), node);
    }
}

//! The node registry on Redis: the hash `<prefix>nodes`, node name to the entry as JSON.

use apscheduler_core::{async_trait, Error, ErrorKind, NodeInfo, NodeRegistry};

use super::RedisRunHistory;

/// The node registry: the hash `<prefix>nodes`, node name to the entry as JSON.
#[async_trait]
impl NodeRegistry for RedisRunHistory {
    async fn heartbeat(&self, node: &NodeInfo) -> Result<(), Error> {
        let entry = serde_json::to_string(node)
            .map_err(|e| Error::new(ErrorKind::Serialization, e.to_string()))?;
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.nodes_key()).arg(&node.node).arg(entry);
        let _: i64 = self.conn.query("heartbeat", &cmd).await?;
        Ok(())
    }

    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.nodes_key());
        let entries: Vec<(String, Vec<u8>)> = self.conn.query("list nodes", &cmd).await?;
        let mut nodes = entries
            .into_iter()
            .map(|(name, entry)| {
                serde_json::from_slice::<NodeInfo>(&entry).map_err(|e| {
                    Error::new(
                        ErrorKind::Serialization,
                        format!(
                            "Redis: node entry '{name}' in {} cannot be read: {e}",
                            self.nodes_key()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    async fn remove_node(&self, node: &str) -> Result<bool, Error> {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(self.nodes_key()).arg(node);
        let removed: i64 = self.conn.query("remove node", &cmd).await?;
        Ok(removed > 0)
    }
}

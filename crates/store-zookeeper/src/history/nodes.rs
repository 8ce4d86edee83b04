//! The [`NodeRegistry`] of the schedulers sharing the store: one heartbeat znode per
//! node under `<root>/nodes`.

use apscheduler_core::{async_trait, Error, ErrorKind, NodeInfo, NodeRegistry};
use futures_util::future::join_all;
use zookeeper_client::Error as ZkError;

use super::{contended, serialization, ZooKeeperRunHistory};
use crate::error::zk;
use crate::{BURST, PERSISTENT, WRITE_TRIES};

#[async_trait]
impl NodeRegistry for ZooKeeperRunHistory {
    async fn heartbeat(&self, node: &NodeInfo) -> Result<(), Error> {
        let data = serde_json::to_vec(node).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!("node entry '{}': {e}", node.node),
            )
        })?;
        let path = self.layout.node(&node.node);
        let c = self.client().await?;
        for _ in 0..WRITE_TRIES {
            match c.set_data(&path, &data, None).await {
                Ok(_) => return Ok(()),
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(zk("write a heartbeat", e)),
            }
            match c.create(&path, &data, &PERSISTENT).await {
                Ok(_) => return Ok(()),
                Err(ZkError::NodeExists) => {}
                Err(ZkError::NoNode) => self.make_folders(&c).await?,
                Err(e) => return Err(zk("write a heartbeat", e)),
            }
        }
        Err(contended(&format!("node entry '{}'", node.node)))
    }

    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let c = self.client().await?;
        let names = Self::children(&c, &self.layout.nodes).await?;
        let paths: Vec<String> = names
            .iter()
            .map(|n| format!("{}/{n}", self.layout.nodes))
            .collect();
        let mut nodes = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(BURST) {
            for (path, read) in chunk
                .iter()
                .zip(join_all(chunk.iter().map(|p| c.get_data(p))).await)
            {
                match read {
                    Ok((data, _)) => nodes.push(
                        serde_json::from_slice::<NodeInfo>(&data)
                            .map_err(|e| serialization("node entry", path, e))?,
                    ),
                    Err(ZkError::NoNode) => {}
                    Err(e) => return Err(zk("read node entries", e)),
                }
            }
        }
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    async fn remove_node(&self, node: &str) -> Result<bool, Error> {
        let c = self.client().await?;
        match c.delete(&self.layout.node(node), None).await {
            Ok(()) => Ok(true),
            Err(ZkError::NoNode) => Ok(false),
            Err(e) => Err(zk("remove a node entry", e)),
        }
    }
}

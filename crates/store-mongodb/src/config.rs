//! `type = "mongodb"`: the MongoDB store's configuration and registration.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::codec::StateFormat;
use apscheduler_core::component::{
    seconds, ComponentRegistry, ConfigTable, Registration, UrlOptions,
};
use apscheduler_core::{Error, JobStore};
use serde::{Deserialize, Serialize};

use crate::{MongoDbJobStore, MongoDbJobStoreBuilder};

/// The MongoDB store's options, one per builder method
/// (`type = "mongodb"  url = "mongodb://127.0.0.1:27017/"  database = "apscheduler"`).
/// Durations are seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoDbStoreConfig {
    /// The connection string (default `mongodb://127.0.0.1:27017/`; APScheduler's
    /// `host` is accepted too).
    pub url: Option<String>,
    /// [`MongoDbJobStoreBuilder::database`].
    pub database: Option<String>,
    /// [`MongoDbJobStoreBuilder::collection`].
    pub collection: Option<String>,
    /// [`MongoDbJobStoreBuilder::max_state_bytes`].
    pub max_state_bytes: Option<usize>,
    /// [`MongoDbJobStoreBuilder::state_format`] (`json` or `bincode`).
    pub state_format: Option<StateFormat>,
    /// [`MongoDbJobStoreBuilder::server_selection_timeout`].
    #[serde(default, with = "seconds")]
    pub server_selection_timeout: Option<Duration>,
    /// [`MongoDbJobStoreBuilder::connect_timeout`].
    #[serde(default, with = "seconds")]
    pub connect_timeout: Option<Duration>,
}

impl MongoDbStoreConfig {
    /// Reads the options of a configured component.
    ///
    /// # Errors
    /// `InvalidInput` naming the option and the value.
    pub fn from_table(table: &ConfigTable) -> Result<Self, Error> {
        Ok(MongoDbStoreConfig {
            url: table
                .get_str("url")?
                .or(table.get_str("host")?)
                .map(str::to_owned),
            database: table.get_str("database")?.map(str::to_owned),
            collection: table.get_str("collection")?.map(str::to_owned),
            max_state_bytes: table.get_positive("max_state_bytes")?,
            state_format: table.get_str("state_format")?.map(str::parse).transpose()?,
            server_selection_timeout: table.get_seconds("server_selection_timeout")?,
            connect_timeout: table.get_seconds("connect_timeout")?,
        })
    }

    /// The builder these options describe.
    pub fn builder(&self) -> MongoDbJobStoreBuilder {
        let url = self.url.as_deref().unwrap_or("mongodb://127.0.0.1:27017/");
        let mut b = MongoDbJobStore::builder(url);
        if let Some(db) = &self.database {
            b = b.database(db.clone());
        }
        if let Some(c) = &self.collection {
            b = b.collection(c.clone());
        }
        if let Some(n) = self.max_state_bytes {
            b = b.max_state_bytes(n);
        }
        if let Some(f) = self.state_format {
            b = b.state_format(f);
        }
        if let Some(t) = self.server_selection_timeout {
            b = b.server_selection_timeout(t);
        }
        if let Some(t) = self.connect_timeout {
            b = b.connect_timeout(t);
        }
        b
    }
}

fn factory(table: &ConfigTable) -> Result<Arc<dyn JobStore>, Error> {
    Ok(Arc::new(
        MongoDbStoreConfig::from_table(table)?.builder().build()?,
    ))
}

/// The store a `mongodb://` or `mongodb+srv://` URL names.
fn open_url(url: &str, options: &UrlOptions) -> Result<Arc<dyn JobStore>, Error> {
    let mut builder = MongoDbJobStore::builder(url);
    if let Some(timeout) = options.connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    Ok(Arc::new(builder.build()?))
}

/// Registers `mongodb` (and APScheduler's class string), and the URL schemes `mongodb`
/// and `mongodb+srv`.
pub fn register(registry: &mut ComponentRegistry) {
    registry.register_store(
        &["mongodb", "apscheduler.jobstores.mongodb:MongoDBJobStore"],
        factory,
    );
    registry.register_url_schemes(&["mongodb", "mongodb+srv"], open_url);
}

apscheduler_core::inventory::submit! { Registration::new(env!("CARGO_PKG_NAME"), register) }

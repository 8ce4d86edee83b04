//! [`MongoDbJobStoreBuilder`], and the store's constructors and settings.

use super::*;

/// Builds a [`MongoDbJobStore`]; see [`MongoDbJobStore::builder`].
#[derive(Debug, Clone)]
pub struct MongoDbJobStoreBuilder {
    source: Source,
    database: String,
    collection: String,
    max_state_bytes: usize,
    state_format: StateFormat,
    server_selection_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
}

impl MongoDbJobStoreBuilder {
    /// The database (default [`MongoDbJobStore::DEFAULT_DATABASE`], `apscheduler`).
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// The collection (default [`MongoDbJobStore::DEFAULT_COLLECTION`], `jobs`).
    pub fn collection(mut self, name: impl Into<String>) -> Self {
        self.collection = name.into();
        self
    }

    /// The largest job state the store writes or reads, in bytes (default
    /// [`MongoDbJobStore::DEFAULT_MAX_STATE_BYTES`], 1 MiB; at most 15 MiB, below
    /// MongoDB's 16 MiB document limit). A larger job is refused with `Serialization`
    /// when added; a larger stored state is treated as corrupt.
    pub fn max_state_bytes(mut self, bytes: usize) -> Self {
        self.max_state_bytes = bytes;
        self
    }

    /// The format new job states are written in (default JSON, stored as a BSON
    /// document; bincode is stored as binary data; see [`apscheduler_core::codec`]).
    /// States in either format are read, so switching is not a migration.
    pub fn state_format(mut self, format: StateFormat) -> Self {
        self.state_format = format;
        self
    }

    /// How long to wait for a suitable server before an operation fails with
    /// `Unavailable` (the driver's default is 30 s; the connection string's
    /// `serverSelectionTimeoutMS` sets it too). Ignored with
    /// [`builder_with_client`](MongoDbJobStore::builder_with_client).
    pub fn server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = Some(timeout);
        self
    }

    /// How long the first connection may take (default: the server selection
    /// time-out when one is set, here or as the connection string's
    /// `serverSelectionTimeoutMS`; else 5 s). The store first opens a plain TCP
    /// connection to each host (a refused connection or an unknown host fails at
    /// once, with that cause), then asks the server for a ping within this time; it
    /// fails with `Unavailable` naming the address and the cause ("cannot reach the
    /// MongoDB store at 127.0.0.1:27017: connection refused ..."). Also the driver's
    /// `connectTimeoutMS` and server selection time-out, unless the connection
    /// string or [`server_selection_timeout`](Self::server_selection_timeout) set
    /// them. With [`builder_with_client`](MongoDbJobStore::builder_with_client), only
    /// the ping is bounded.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Checks the configuration and builds the store; nothing connects yet.
    ///
    /// # Errors
    /// `InvalidInput` for a database or collection name MongoDB refuses (see
    /// [`validate_database_name`], [`validate_collection_name`]), a connection string
    /// that does not start with `mongodb://` or `mongodb+srv://`, or a state limit of
    /// zero or above 15 MiB.
    pub fn build(self) -> Result<MongoDbJobStore, Error> {
        validate_database_name(&self.database)?;
        validate_collection_name(&self.database, &self.collection)?;
        if let Source::Url(url) = &self.source {
            if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "invalid value for field 'url': a MongoDB connection string starts with \
                     'mongodb://' or 'mongodb+srv://'",
                ));
            }
        }
        if self.max_state_bytes == 0
            || self.max_state_bytes > MongoDbJobStore::MAX_STATE_BYTES_LIMIT
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "invalid value for field 'max_state_bytes': '{}': must be between 1 and {}",
                    self.max_state_bytes,
                    MongoDbJobStore::MAX_STATE_BYTES_LIMIT
                ),
            ));
        }
        let token: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        Ok(MongoDbJobStore {
            link: Arc::new(Link {
                namespace: format!("{}.{}", self.database, self.collection),
                source: self.source,
                database: self.database,
                collection: self.collection,
                server_selection_timeout: self.server_selection_timeout,
                connect_timeout: self.connect_timeout,
                conn: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                no_server_time: AtomicBool::new(false),
            }),
            codec: StateCodec::new(self.state_format, self.max_state_bytes),
            changes: apscheduler_core::ChangeChannel::new(token.clone()),
            streaming: Arc::new(AtomicBool::new(false)),
            waits: Arc::new(crate::waits::Waits::new(token)),
        })
    }
}

impl MongoDbJobStore {
    /// The database used unless configured (APScheduler's default).
    pub const DEFAULT_DATABASE: &'static str = "apscheduler";
    /// The collection used unless configured (APScheduler's default).
    pub const DEFAULT_COLLECTION: &'static str = "jobs";
    /// The default limit on a job state's size: 1 MiB.
    pub const DEFAULT_MAX_STATE_BYTES: usize = 1 << 20;
    /// The highest state size limit allowed: 15 MiB.
    pub const MAX_STATE_BYTES_LIMIT: usize = 15 << 20;

    /// A store for the server at `url` (a MongoDB connection string), in database
    /// `apscheduler`, collection `jobs`.
    ///
    /// # Errors
    /// As [`MongoDbJobStoreBuilder::build`].
    pub fn new(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).build()
    }

    /// A builder for a store on the server at `url`, a MongoDB [connection string]
    /// such as `mongodb://user:pass@db1,db2/?replicaSet=rs0` (read in
    /// [`start`](JobStore::start)).
    ///
    /// [connection string]: https://www.mongodb.com/docs/manual/reference/connection-string/
    ///
    /// The database is the connection string's default database when it names one
    /// (`mongodb://host:27017/billing`), else [`DEFAULT_DATABASE`](Self::DEFAULT_DATABASE);
    /// [`database`](MongoDbJobStoreBuilder::database) overrides both.
    pub fn builder(url: impl Into<String>) -> MongoDbJobStoreBuilder {
        let url = url.into();
        let named = url_database(&url);
        let mut builder = Self::builder_from(Source::Url(url));
        if let Some(database) = named {
            builder.database = database;
        }
        builder
    }

    /// A builder for a store using a client the application already has (built with
    /// the re-exported [`mongodb`] crate). The store never shuts this client down.
    pub fn builder_with_client(client: Client) -> MongoDbJobStoreBuilder {
        Self::builder_from(Source::Client(client))
    }

    fn builder_from(source: Source) -> MongoDbJobStoreBuilder {
        MongoDbJobStoreBuilder {
            source,
            database: Self::DEFAULT_DATABASE.to_owned(),
            collection: Self::DEFAULT_COLLECTION.to_owned(),
            max_state_bytes: Self::DEFAULT_MAX_STATE_BYTES,
            state_format: StateFormat::Json,
            server_selection_timeout: None,
            connect_timeout: None,
        }
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.link.database
    }

    /// The collection name.
    pub fn collection(&self) -> &str {
        &self.link.collection
    }

    /// The limit on a job state's size, in bytes.
    pub fn max_state_bytes(&self) -> usize {
        self.codec.max_bytes
    }

    /// The format new job states are written in.
    pub fn state_format(&self) -> StateFormat {
        self.codec.format
    }

    /// The run history kept beside the jobs: the collection `<collection>_runs` of the
    /// same database, reached with this store's client (connecting it when needed). The
    /// same as [`JobStore::run_history`], by its type.
    pub fn history(&self) -> MongoDbRunHistory {
        MongoDbRunHistory::new(self.link.clone())
    }

    /// Whether the store holds a client (after [`start`](JobStore::start) or a first
    /// operation, until [`shutdown`](JobStore::shutdown)).
    pub fn is_connected(&self) -> bool {
        self.link.conn.lock().is_some()
    }
}

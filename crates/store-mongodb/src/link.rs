//! The connection shared by the job store and its run history: where the data lives,
//! connecting (and creating the indexes), and the write commands both send.

use super::*;

use apscheduler_core::reach::{self, Cause, DEFAULT_CONNECT_TIMEOUT};
use mongodb::options::ServerAddress;

/// Where the store's data lives and the client it reaches it with, shared with the
/// store's [`MongoDbRunHistory`] (so both use one client and connect once).
pub(crate) struct Link {
    pub(crate) source: Source,
    pub(crate) database: String,
    pub(crate) collection: String,
    /// `database.collection`, for messages.
    pub(crate) namespace: String,
    pub(crate) server_selection_timeout: Option<Duration>,
    /// Bounds the first connection (see [`MongoDbJobStoreBuilder::connect_timeout`]).
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) conn: Mutex<Option<Conn>>,
    pub(crate) connecting: tokio::sync::Mutex<()>,
    /// Set once a server was seen that does not tell its time (warned about once).
    pub(crate) no_server_time: AtomicBool,
}

/// Where the client comes from.
#[derive(Clone)]
pub(crate) enum Source {
    /// A connection string; the store creates (and shuts down) its client.
    Url(String),
    /// A client the application owns.
    Client(Client),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the connection string: it may hold a password.
        match self {
            Source::Url(_) => f.write_str("Url(<redacted>)"),
            Source::Client(_) => f.write_str("Client"),
        }
    }
}

/// A connected client and the collection handles.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) database: Database,
    pub(crate) jobs: Collection<Document>,
    pub(crate) raw: Collection<RawDocumentBuf>,
    /// `<collection>_waiters`: the schedulers' waits for releases ([`crate::waits`]).
    pub(crate) waiters: Collection<Document>,
}

impl Link {
    /// The connected client and collection handles, connecting first when needed
    /// (which also creates the jobs collection's indexes).
    pub(crate) async fn conn(&self) -> Result<Conn, Error> {
        if let Some(conn) = self.conn.lock().clone() {
            return Ok(conn);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.conn.lock().clone() {
            return Ok(conn);
        }
        let conn = self.connect().await?;
        *self.conn.lock() = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self) -> Result<Conn, Error> {
        let started = std::time::Instant::now();
        let mut timeout = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let mut hosts = Vec::new();
        let client = match &self.source {
            Source::Url(url) => {
                let mut options = ClientOptions::parse(url)
                    .await
                    .map_err(|e| fail(&self.namespace, "cannot use the connection string", e))?;
                if options.app_name.is_none() {
                    options.app_name = Some("apscheduler-rs".to_owned());
                }
                if let Some(timeout) = self.server_selection_timeout {
                    options.server_selection_timeout = Some(timeout);
                }
                timeout = self
                    .connect_timeout
                    .or(options.server_selection_timeout)
                    .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
                options.server_selection_timeout.get_or_insert(timeout);
                options.connect_timeout.get_or_insert(timeout);
                hosts = options
                    .hosts
                    .iter()
                    .filter_map(|a| match a {
                        ServerAddress::Tcp { host, port } => {
                            Some((host.clone(), port.unwrap_or(DEFAULT_PORT)))
                        }
                        #[allow(unreachable_patterns)]
                        _ => None,
                    })
                    .collect();
                probe(&hosts, started, timeout).await?;
                Client::with_options(options)
                    .map_err(|e| fail(&self.namespace, "cannot create the client", e))?
            }
            Source::Client(client) => client.clone(),
        };
        let database = client.database(&self.database);
        let address = match hosts.as_slice() {
            [] => "its server".to_owned(),
            hosts => hosts
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
                .join(","),
        };
        let host = hosts.first().map(|(h, _)| h.clone()).unwrap_or_default();
        let ping = database.run_command(doc! {"ping": 1});
        match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(_)) => {}
            // Server selection failed: the cause is in the description of the
            // servers the driver tried.
            Ok(Err(e)) if matches!(*e.kind, DriverKind::ServerSelection { .. }) => {
                let cause = match Cause::of_error(&e, &host) {
                    Cause::Other(_) => Cause::TimedOut(timeout),
                    cause => cause,
                };
                return Err(reach::unreachable(
                    "MongoDB",
                    &address,
                    &cause,
                    started.elapsed(),
                    timeout,
                )
                .with_source(e));
            }
            Ok(Err(e)) => return Err(fail(&self.namespace, "cannot reach the server", e)),
            Err(_) => {
                return Err(reach::unreachable(
                    "MongoDB",
                    &address,
                    &Cause::TimedOut(timeout),
                    started.elapsed(),
                    timeout,
                ))
            }
        }
        // Claims read back what they just wrote: always on the primary.
        let jobs = database.collection_with_options::<Document>(
            &self.collection,
            CollectionOptions::builder()
                .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
                .build(),
        );
        let indexes = [
            IndexModel::builder()
                .keys(doc! {field::NEXT_RUN_TIME: 1, field::ID: 1})
                .options(
                    IndexOptions::builder()
                        .name(NEXT_RUN_TIME_INDEX.to_owned())
                        .build(),
                )
                .build(),
            IndexModel::builder()
                .keys(doc! {field::LEASE_EXPIRES: 1})
                .options(
                    IndexOptions::builder()
                        .name(LEASE_INDEX.to_owned())
                        .sparse(true)
                        .build(),
                )
                .build(),
        ];
        if let Err(e) = jobs.create_indexes(indexes).await {
            match &*e.kind {
                DriverKind::Command(c) if INDEX_CONFLICT_CODES.contains(&c.code) => {
                    apscheduler_core::log_warn!(
                        target: "apscheduler",
                        namespace = %self.namespace,
                        error = %e,
                        "an index of the same name exists with other options; keeping it"
                    );
                }
                _ => return Err(fail(&self.namespace, "cannot create the indexes", e)),
            }
        }
        Ok(Conn {
            raw: jobs.clone_with_type(),
            waiters: database.collection(&format!(
                "{}{}",
                self.collection,
                crate::waits::WAITERS_SUFFIX
            )),
            client,
            database,
            jobs,
        })
    }
}

/// MongoDB's port when the connection string names none.
const DEFAULT_PORT: u16 = 27017;

/// Opens (and closes) a TCP connection to one of `hosts`, on a blocking thread (name
/// resolution is the system's): a refused connection or an unknown host is known at
/// once, where the driver would wait out its server selection time-out.
async fn probe(
    hosts: &[(String, u16)],
    started: std::time::Instant,
    timeout: Duration,
) -> Result<(), Error> {
    let owned = hosts.to_vec();
    tokio::task::spawn_blocking(move || reach::probe_any_tcp("MongoDB", &owned, started, timeout))
        .await
        .unwrap_or(Ok(()))
}

/// A driver error as a core error, naming `namespace` and what was being done.
pub(crate) fn fail(namespace: &str, context: impl Into<String>, source: DriverError) -> Error {
    StoreError::Driver {
        namespace: namespace.to_owned(),
        context: context.into(),
        source,
    }
    .into_error()
}

/// What a write command did: the statements' write errors (index into the statements,
/// code, message) and how many documents its statements matched (`n`).
pub(crate) struct Written {
    pub(crate) failures: Vec<(usize, i32, String)>,
    pub(crate) matched: u64,
}

/// Runs a write command (`update` or `delete`) on `target` over `statements` (each with its
/// size in bytes), in as many commands as the limits need, unordered.
pub(crate) async fn write_command(
    database: &Database,
    target: &Collection<Document>,
    namespace: &str,
    command: &str,
    list: &str,
    statements: Vec<(Document, usize)>,
    context: &str,
) -> Result<Written, Error> {
    let mut failures = Vec::new();
    let mut matched = 0;
    let mut start = 0;
    let mut statements = statements.into_iter().peekable();
    while statements.peek().is_some() {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some((_, size)) = statements.peek() {
            if !batch.is_empty()
                && (batch.len() >= STATEMENTS_PER_COMMAND || bytes + size > BYTES_PER_COMMAND)
            {
                break;
            }
            let Some((statement, size)) = statements.next() else {
                break;
            };
            bytes += size;
            batch.push(Bson::Document(statement));
        }
        let count = batch.len();
        let mut body = doc! {command: target.name(), list: batch, "ordered": false};
        if let Some(concern) = target.write_concern() {
            if let Ok(concern) = bson::to_bson(concern) {
                body.insert("writeConcern", concern);
            }
        }
        let reply = database
            .run_command(body)
            .await
            .map_err(|e| fail(namespace, context, e))?;
        matched += reply
            .get("n")
            .and_then(bson_int)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        if let Ok(errors) = reply.get_array("writeErrors") {
            for error in errors.iter().filter_map(Bson::as_document) {
                let index = error
                    .get("index")
                    .and_then(bson_int)
                    .and_then(|i| usize::try_from(i).ok())
                    .unwrap_or(0);
                let code = error
                    .get("code")
                    .and_then(bson_int)
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(0);
                let message = error.get_str("errmsg").unwrap_or_default().to_owned();
                failures.push((start + index, code, message));
            }
        }
        if let Ok(concern) = reply.get_document("writeConcernError") {
            return Err(write_error(
                namespace,
                context,
                concern
                    .get("code")
                    .and_then(bson_int)
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(0),
                concern.get_str("errmsg").unwrap_or_default().to_owned(),
            ));
        }
        start += count;
    }
    Ok(Written { failures, matched })
}

pub(crate) fn write_error(namespace: &str, context: &str, code: i32, message: String) -> Error {
    StoreError::Write {
        namespace: namespace.to_owned(),
        context: context.to_owned(),
        code,
        message,
    }
    .into_error()
}

/// An integer of any BSON integer type (or an integral double).
pub(crate) fn bson_int(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(v) => Some((*v).into()),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) if v.fract() == 0.0 && v.is_finite() => Some(*v as i64),
        _ => None,
    }
}

/// The default database a connection string names (`mongodb://host/db?...`), if any.
pub(crate) fn url_database(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let name = path.split('?').next().unwrap_or_default();
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_string_names_the_default_database() {
        assert_eq!(
            url_database("mongodb://h:27017/billing?w=1").as_deref(),
            Some("billing")
        );
        assert_eq!(
            url_database("mongodb://u:p@h1,h2/ops").as_deref(),
            Some("ops")
        );
        assert_eq!(
            url_database("mongodb://h:27017/?directConnection=true"),
            None
        );
        assert_eq!(url_database("mongodb://h:27017"), None);
        let store = MongoDbJobStore::builder("mongodb://h/billing")
            .build()
            .unwrap();
        assert_eq!(store.link.namespace, "billing.jobs");
        let store = MongoDbJobStore::builder("mongodb://h/billing")
            .database("other")
            .build()
            .unwrap();
        assert_eq!(store.link.namespace, "other.jobs");
    }
}

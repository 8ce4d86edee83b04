//! The store a URL names, and this daemon's node name.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::component::{ComponentRegistry, UrlOptions};
use apscheduler_core::JobStore;
use rustix::process::Pid;
// The store crates register their URL schemes when they are linked: linked here even
// where nothing else in the daemon names them.
use apscheduler_store_mongodb as _;
use apscheduler_store_redis as _;
use apscheduler_store_zookeeper as _;

/// What the process opening a store does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Runs jobs (`aps run`): a SQLite file's single-node lock is taken at once, so a
    /// second daemon on the file is refused at start.
    Scheduler,
    /// Only reads and changes jobs (`aps jobs ...`, `aps history`): never claims.
    Manager,
}

/// The daemon's SQLite page cache per connection.
const SQLITE_PAGE_CACHE: usize = 512 * 1024;

/// How often the daemon checkpoints its SQLite file's WAL, in the background: a commit
/// that checkpoints syncs the file, a pause of several ms in a claim or release, and a
/// long WAL slows every read (docs/PERFORMANCE.md, "100 commands a second").
const SQLITE_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Opens (without connecting) the store `url` names, through the scheme its store crate
/// registered (`ComponentRegistry::open_url`): `sqlite:`, `postgres://`, `mysql://`
/// (`mariadb://`), `redis://`, `redis+sentinel://`, `redis+cluster://`, `mongodb://`,
/// `zookeeper://host:port/path`. A SQLite file gets the daemon's settings: it is created
/// readable by its owner only, and a scheduler takes its single-node lock at once.
/// `connect_timeout` bounds the first connection (`None`: each store's default).
pub(crate) fn open(
    url: &str,
    connect_timeout: Option<Duration>,
    role: Role,
) -> Result<Arc<dyn JobStore>, String> {
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    if scheme.eq_ignore_ascii_case("sqlite") {
        return open_sqlite(url, connect_timeout, role);
    }
    let mut options = UrlOptions::new();
    if let Some(t) = connect_timeout {
        options = options.connect_timeout(t);
    }
    // An unknown scheme is refused here, as `check_store_url` words it.
    ComponentRegistry::global()
        .open_url(url, &options)
        .map_err(|e| e.to_string())
}

/// A SQLite file as the daemon keeps it (the settings below).
fn open_sqlite(
    url: &str,
    connect_timeout: Option<Duration>,
    role: Role,
) -> Result<Arc<dyn JobStore>, String> {
    create_owner_only(url)?;
    let mut builder = apscheduler_store_sql::SqlJobStore::builder(url);
    if let Some(t) = connect_timeout {
        builder = builder.connect_timeout(t);
    }
    // A small page cache per connection: the daemon reads few rows at a time, and
    // stays small (docs/PERFORMANCE.md, "The aps daemon"). A management command keeps
    // SQLite's defaults: it does not map the file either, since `aps jobs list` reads
    // one page here and there across the run history's index, and each fault of a map
    // brings in (and the exit unmaps) 16 pages around the one read: 450 MB resident and
    // 100-200 ms more on a 1,000,000-run history.
    // The daemon's scheduler writes through one connection: SQLite has one writer at a
    // time, and in-process writers waiting their turn in the pool (in order) do better
    // than in SQLite's busy handler, which sleeps 1, 2, 5, 10 ms and more between tries.
    let builder = match role {
        Role::Scheduler => builder
            .sqlite_page_cache(SQLITE_PAGE_CACHE)
            .sqlite_background_checkpoints(SQLITE_CHECKPOINT_EVERY)
            .max_connections(1),
        Role::Manager => builder,
    };
    let store = builder.build().map_err(|e| e.to_string())?;
    if role == Role::Scheduler {
        store.lock_single_node().map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(store))
}

/// The file path of a SQLite URL (`sqlite:/abs.db`, `sqlite:///rel.db`,
/// `sqlite:////abs.db`, `sqlite:rel.db`), or `None` for an in-memory database.
pub(crate) fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.split('?').next().unwrap_or("");
    if rest.is_empty() || rest.contains(":memory:") {
        return None;
    }
    Some(match rest.strip_prefix("//") {
        // sqlite:///rel.db is relative, sqlite:////abs.db absolute (SQLAlchemy's form).
        Some(after) => after.strip_prefix('/').unwrap_or(after).to_owned(),
        None => rest.to_owned(),
    })
}

fn create_owner_only(url: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create the SQLite database '{path}': {e}")),
    }
}

/// This machine's host name.
pub(crate) fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The node name a daemon writes into run records: `host/pid`, so that a restarted
/// daemon can tell which `running` records were left by a process that is gone.
pub(crate) fn daemon_node(configured: Option<&str>) -> String {
    let host = configured.map_or_else(host_name, str::to_owned);
    format!("{host}/{}", std::process::id())
}

/// Whether the node `node` (`host/pid`) is a process on this host that is gone.
pub(crate) fn is_dead_local_node(node: &str, host: &str) -> bool {
    let Some((h, pid)) = node.rsplit_once('/') else {
        return false;
    };
    if h != host {
        return false;
    }
    match pid.parse::<i32>().ok().and_then(Pid::from_raw) {
        Some(pid) if pid.as_raw_nonzero().get() as u32 == std::process::id() => false,
        // EPERM: alive, someone else's.
        Some(pid) => matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        ),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_files() {
        assert_eq!(
            sqlite_path("sqlite:/var/aps.db").as_deref(),
            Some("/var/aps.db")
        );
        assert_eq!(sqlite_path("sqlite:///rel.db").as_deref(), Some("rel.db"));
        assert_eq!(sqlite_path("sqlite:////abs.db").as_deref(), Some("/abs.db"));
        assert_eq!(
            sqlite_path("sqlite:aps.db?mode=rwc").as_deref(),
            Some("aps.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[test]
    fn redis_urls_carry_their_prefix_and_sentinels() {
        let store = open(
            "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0?prefix=app.",
            None,
            Role::Scheduler,
        )
        .expect("a Sentinel URL");
        assert!(
            format!("{store:?}").contains("prefix: \"app.\""),
            "{store:?}"
        );
        let err = open("redis+sentinel://127.0.0.1:26379", None, Role::Scheduler)
            .expect_err("no master name");
        assert!(err.contains("names no master"), "{err}");
        let store = open("redis://127.0.0.1:6379/?prefix=b.", None, Role::Manager).unwrap();
        assert!(format!("{store:?}").contains("prefix: \"b.\""), "{store:?}");
        let store = open(
            "redis+cluster://127.0.0.1:7000,127.0.0.1:7001/?prefix=c.&partitions=8",
            None,
            Role::Scheduler,
        )
        .expect("a cluster URL");
        assert!(
            format!("{store:?}").contains("the Redis Cluster at 127.0.0.1:7000,127.0.0.1:7001"),
            "{store:?}"
        );
    }

    #[test]
    fn only_gone_local_processes_are_dead_nodes() {
        let host = host_name();
        let me = format!("{host}/{}", std::process::id());
        assert!(!is_dead_local_node(&me, &host));
        assert!(!is_dead_local_node("elsewhere/1", &host));
        // pid 1 exists; a pid beyond pid_max does not.
        assert!(!is_dead_local_node(&format!("{host}/1"), &host));
        assert!(is_dead_local_node(&format!("{host}/999999999"), &host));
    }
}

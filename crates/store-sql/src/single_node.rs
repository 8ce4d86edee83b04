//! SQLite is single-node: one scheduler at a time claims jobs from a SQLite file.
//!
//! Claims on SQLite are atomic, but the file is not meant for a cluster (no store clock,
//! no notifications, one writer). A second scheduler on the same file would run, and
//! nobody would have asked for it: so the first claim takes an exclusive lock on a file
//! beside the database (`<database>-scheduler.lock`, holding the holder's pid), and a
//! scheduler that finds it taken is refused with `Conflict` until the holder stops.
//! Processes that only manage jobs (`aps jobs ...`, a paused scheduler) never claim and
//! never take it. The lock is the kernel's (`flock`): it ends with the holder's process,
//! however that ends. It is a separate file because closing any descriptor of the
//! database file itself would drop SQLite's own locks. Within one process, stores on
//! the same file share the lock (the process is the node).

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use apscheduler_core::{Error, ErrorKind};

/// The scheduler lock of one SQLite file.
#[derive(Debug)]
pub(crate) struct NodeLock {
    path: PathBuf,
    database: PathBuf,
    /// Whether this store counts among the lock's holders in this process.
    held: Mutex<bool>,
}

/// The locks this process holds: the open lock file and how many stores hold it.
fn held_here() -> &'static Mutex<HashMap<PathBuf, (File, usize)>> {
    static HELD: OnceLock<Mutex<HashMap<PathBuf, (File, usize)>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashMap::new()))
}

impl NodeLock {
    /// The lock beside `database`.
    pub(crate) fn beside(database: &Path) -> NodeLock {
        // One key per file however it was named (relative, through links).
        let database = match (database.parent(), database.file_name()) {
            (Some(dir), Some(file)) => {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                dir.canonicalize()
                    .map_or_else(|_| database.to_owned(), |d| d.join(file))
            }
            _ => database.to_owned(),
        };
        let mut name = database.as_os_str().to_owned();
        name.push("-scheduler.lock");
        NodeLock {
            path: PathBuf::from(name),
            database,
            held: Mutex::new(false),
        }
    }

    /// Takes the lock unless this store holds it already.
    ///
    /// # Errors
    /// `Conflict` naming the holder's pid when another scheduler holds it;
    /// `Unavailable` when the lock file cannot be opened.
    pub(crate) fn acquire(&self) -> Result<(), Error> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if *held {
            return Ok(());
        }
        let mut here = held_here().lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, holders)) = here.get_mut(&self.path) {
            *holders += 1;
            *held = true;
            return Ok(());
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "cannot open the scheduler lock '{}' of the SQLite file '{}': {e}",
                    self.path.display(),
                    self.database.display()
                ),
            )
        })?;
        match file.try_lock() {
            Ok(()) => {
                // Best effort: the pid only makes the refusal's message precise.
                let _ = file.set_len(0).and_then(|()| {
                    file.rewind()?;
                    write!(file, "{}", std::process::id())
                });
                here.insert(self.path.clone(), (file, 1));
                *held = true;
                Ok(())
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process".to_owned(),
                    pid => format!("process {pid}"),
                };
                Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "another scheduler ({holder}) runs on the SQLite file '{}' (it holds '{}'): \
                         SQLite is single-node, one scheduler per file; share a PostgreSQL, \
                         MySQL/MariaDB, Redis, MongoDB or ZooKeeper store between schedulers",
                        self.database.display(),
                        self.path.display()
                    ),
                ))
            }
            Err(TryLockError::Error(e)) => Err(Error::new(
                ErrorKind::Unavailable,
                format!("cannot lock '{}': {e}", self.path.display()),
            )),
        }
    }

    /// Lets the lock go (the store shuts down) once no other store of this process
    /// holds it; the file stays.
    pub(crate) fn release(&self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !std::mem::take(&mut *held) {
            return;
        }
        let mut here = held_here().lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, holders)) = here.get_mut(&self.path) {
            *holders -= 1;
            if *holders == 0 {
                here.remove(&self.path);
            }
        }
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_of_one_process_share_the_lock_another_holder_is_refused_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("jobs.sqlite");
        let (a, b) = (NodeLock::beside(&db), NodeLock::beside(&db));
        a.acquire().unwrap();
        b.acquire().unwrap();
        a.release();
        // Another open file description is what another process holds (flock is per
        // open file, not per process).
        let other = File::options().write(true).open(&a.path).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        b.release();
        other.try_lock().unwrap();
        let refused = NodeLock::beside(&db).acquire().unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Conflict);
        let message = refused.to_string();
        assert!(
            message.contains(&format!("process {}", std::process::id()))
                && message.contains("single-node"),
            "{message}"
        );
        drop(other);
        NodeLock::beside(&db).acquire().unwrap();
    }
}

//! A private PostgreSQL primary with a synchronous streaming standby, and a PgBouncer in
//! front of them, for failover tests: the primary is SIGKILLed, the standby promoted,
//! and PgBouncer repointed (its ini edited, then `RELOAD`), as a failover manager does.
//!
//! The binaries are Debian's: `initdb`, `pg_ctl`, `pg_basebackup` from the newest
//! `/usr/lib/postgresql/*/bin` (or `PATH`), `pgbouncer` and `psql` from `PATH`. As root
//! the servers run as the `postgres` user (`initdb` refuses root, PgBouncer too).
//!
//! ```no_run
//! use apscheduler_testkit::pg_failover::{PgBouncer, PostgresPair};
//!
//! let mut pair = PostgresPair::start().expect("PostgreSQL is installed");
//! let bouncer = PgBouncer::start(pair.primary_port());
//! let url = bouncer.url("postgres"); // what the schedulers connect to
//! pair.kill_primary();
//! pair.promote_standby();
//! bouncer.repoint(pair.standby_port());
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::{random_namespace, running_as_root, spare_port};

/// The directory of Debian's PostgreSQL binaries (the newest version), or `None` when
/// they are on `PATH` only (or nowhere).
fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

/// Runs the servers' tools as `postgres` when we are root, from Debian's directory.
#[derive(Debug, Clone)]
struct Tools {
    bin: Option<PathBuf>,
    as_postgres: bool,
}

impl Tools {
    fn command(&self, program: &str) -> Command {
        let program = match &self.bin {
            Some(dir) if dir.join(program).exists() => dir.join(program).display().to_string(),
            _ => program.to_owned(),
        };
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &program]);
            c
        } else {
            Command::new(program)
        };
        // The servers inherit nothing: with our pipes they would keep them open.
        c.stdin(Stdio::null());
        c
    }

    /// Runs `program args`, panicking with its output when it fails.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A directory the servers' user owns.
    fn make_dir(&self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("create a server's directory");
        if self.as_postgres {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown postgres {}", dir.display());
        }
    }
}

/// A primary (`synchronous_standby_names = '*'`: a commit returns once the standby has
/// flushed it, so a promoted standby has every committed write) and its standby
/// (`pg_basebackup -R`, streaming); both stopped, their directory removed, on drop.
#[derive(Debug)]
pub struct PostgresPair {
    tools: Tools,
    dir: PathBuf,
    ports: [u16; 2],
}

impl PostgresPair {
    /// Creates and starts both; `None` when `initdb` is not installed.
    ///
    /// # Panics
    /// When a tool fails, or the standby does not stream synchronously within 60 s.
    pub fn start() -> Option<Self> {
        let tools = Tools {
            bin: pg_bin(),
            as_postgres: running_as_root(),
        };
        let found = tools
            .command("initdb")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("aps-pgpair-{}", random_namespace()));
        tools.make_dir(&dir);
        let pair = PostgresPair {
            tools,
            dir,
            ports: [spare_port(), spare_port()],
        };
        let primary = pair.data(0);
        pair.tools.run(
            "initdb",
            &["-D", &primary, "-A", "trust", "-U", "root", "--no-sync"],
        );
        pair.pg_ctl_start(0);
        let standby = pair.data(1);
        pair.tools.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pair.ports[0].to_string(),
                "-U",
                "root",
                "-D",
                &standby,
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        pair.pg_ctl_start(1);
        // Until the standby streams synchronously, a commit would wait for it (or, were
        // it not yet listed, be acknowledged unreplicated).
        let started = Instant::now();
        loop {
            let state = pair.sql(
                0,
                "SELECT string_agg(sync_state, ',') FROM pg_stat_replication WHERE state = 'streaming'",
            );
            if state.trim() == "sync" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the standby does not stream synchronously (sync_state {state:?}); logs in {}",
                pair.dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(pair)
    }

    fn data(&self, i: usize) -> String {
        self.dir.join(format!("data{i}")).display().to_string()
    }

    fn pg_ctl_start(&self, i: usize) {
        let log = self
            .dir
            .join(format!("server{i}.log"))
            .display()
            .to_string();
        // The sockets go to our directory (the default one may not be writable);
        // `cluster_name` is the standby's `application_name` upstream. Only the primary
        // waits for a synchronous standby: the promoted standby has none left, and
        // would otherwise hold every commit forever (a failover manager, Patroni's
        // non-strict synchronous mode say, likewise drops the requirement then).
        let sync = if i == 0 {
            " -c synchronous_standby_names='*'"
        } else {
            ""
        };
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{sync} \
             -c cluster_name=node{i} -c wal_receiver_status_interval=1s",
            self.ports[i],
            self.dir.display()
        );
        let data = self.data(i);
        self.tools.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        );
    }

    /// Runs `sql` with `psql` on server `i` (0 primary, 1 standby) and returns its
    /// unaligned output.
    pub fn sql(&self, i: usize, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.ports[i].to_string()])
            .args(["-U", "root", "-d", "postgres", "-AtXqc", sql])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql on port {}: {sql}: {}",
            self.ports[i],
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The primary's port.
    pub fn primary_port(&self) -> u16 {
        self.ports[0]
    }

    /// The standby's port.
    pub fn standby_port(&self) -> u16 {
        self.ports[1]
    }

    /// SIGKILLs the primary's postmaster and every process it started (a crash of its
    /// machine: no backend lingers to finish a transaction).
    ///
    /// # Panics
    /// When the primary does not run.
    pub fn kill_primary(&mut self) {
        let pid_file = Path::new(&self.data(0)).join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).expect("the primary runs");
        let postmaster: u32 = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap();
        let mut pids = children_of(postmaster);
        pids.insert(0, postmaster);
        // The postmaster first (it would restart crashed children), then the rest.
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let gone = Instant::now();
        while Path::new(&format!("/proc/{postmaster}")).exists()
            && gone.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fences the primary without stopping it, as a switchover does: every session,
    /// the open ones too, turns read-only (`default_transaction_read_only`, reloaded),
    /// so a write there fails with SQLSTATE 25006.
    pub fn fence_primary(&self) {
        self.sql(0, "ALTER SYSTEM SET default_transaction_read_only = on");
        self.sql(0, "SELECT pg_reload_conf()");
    }

    /// `pg_ctl promote -w`: the standby ends recovery and takes writes.
    ///
    /// # Panics
    /// When the promotion fails or takes over 60 s.
    pub fn promote_standby(&self) {
        let data = self.data(1);
        self.tools
            .run("pg_ctl", &["-D", &data, "-w", "-t", "60", "promote"]);
    }
}

/// The process ids whose parent is `parent`, from `/proc`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces, so after the last ')'.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

impl Drop for PostgresPair {
    fn drop(&mut self) {
        for i in 0..2 {
            if Path::new(&self.data(i)).join("postmaster.pid").exists() {
                let data = self.data(i);
                let _ = self
                    .tools
                    .command("pg_ctl")
                    .args(["-D", &data, "-m", "immediate", "-w", "stop"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private PgBouncer (session pooling: `LISTEN` needs its session) on a spare
/// loopback port, forwarding every database to one PostgreSQL; `repoint` edits its ini
/// and sends `RELOAD` on its admin console. Stopped, its directory removed, on drop.
#[derive(Debug)]
pub struct PgBouncer {
    tools: Tools,
    dir: PathBuf,
    port: u16,
}

impl PgBouncer {
    /// Starts one in front of the PostgreSQL on `target` (a loopback port).
    ///
    /// # Panics
    /// When `pgbouncer` is not installed (the panic says how to install it) or does not
    /// answer within 30 s.
    pub fn start(target: u16) -> Self {
        // Debian puts it in /usr/sbin, which a non-root PATH may lack.
        let tools = Tools {
            bin: Some(PathBuf::from("/usr/sbin")),
            as_postgres: running_as_root(),
        };
        let dir = std::env::temp_dir().join(format!("aps-pgbouncer-{}", random_namespace()));
        tools.make_dir(&dir);
        let bouncer = PgBouncer {
            tools,
            dir,
            port: spare_port(),
        };
        std::fs::write(bouncer.dir.join("users.txt"), "\"root\" \"\"\n").expect("users.txt");
        bouncer.write_ini(target);
        let status = bouncer
            .tools
            .command("pgbouncer")
            .arg("-d")
            .arg(bouncer.dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run pgbouncer ({e}): apt-get install pgbouncer"));
        assert!(status.success(), "pgbouncer -d: {status}");
        let started = Instant::now();
        while !bouncer.admin("SHOW VERSION") {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "pgbouncer on port {} does not answer (log: {})",
                bouncer.port,
                bouncer.dir.join("pgbouncer.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        bouncer
    }

    /// Writes the ini: every database goes to the server on `target`. A server that
    /// refuses logins is tried again a second later (not 15 s), and a connection
    /// attempt gives up after 2 s, so clients see the outage as errors and the
    /// new server as soon as it is there.
    fn write_ini(&self, target: u16) {
        let d = self.dir.display();
        std::fs::write(
            self.dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host=127.0.0.1 port={target}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {}\nunix_socket_dir = {d}\n\
                 auth_type = trust\nauth_file = {d}/users.txt\nadmin_users = root\n\
                 pool_mode = session\nmax_client_conn = 500\ndefault_pool_size = 100\n\
                 server_login_retry = 1\nserver_connect_timeout = 2\n\
                 query_wait_timeout = 10\nignore_startup_parameters = extra_float_digits\n\
                 logfile = {d}/pgbouncer.log\n\
                 pidfile = {d}/pgbouncer.pid\n",
                self.port
            ),
        )
        .expect("write pgbouncer.ini");
    }

    /// Runs `command` on the admin console; whether it succeeded.
    fn admin(&self, command: &str) -> bool {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "root", "-d", "pgbouncer", "-AtXqc", command])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Points every database at the server on `target`: the ini edited, then `RELOAD`.
    ///
    /// # Panics
    /// When `RELOAD` fails.
    pub fn repoint(&self, target: u16) {
        self.write_ini(target);
        assert!(
            self.admin("RELOAD"),
            "RELOAD on pgbouncer port {}",
            self.port
        );
    }

    /// The URL of `database` through it.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://root@127.0.0.1:{}/{database}", self.port)
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! [`PrivatePostgres`]: a PostgreSQL server of a test's own, for fault tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{random_namespace, running_as_root, spare_port};

/// A private PostgreSQL server for fault tests (`initdb` and `pg_ctl` on a spare
/// loopback port, in a temporary directory, `fsync = off`: a crash of the server, not
/// of the machine, keeps every committed write); stopped, and its directory removed,
/// on drop. As root, `initdb` refuses to run: the server then runs as the `postgres`
/// user through `runuser`.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
    /// Run `initdb`/`pg_ctl` as `postgres` (we are root).
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Creates its data directory (not started yet); `None` when `initdb` is not on
    /// `PATH`.
    ///
    /// # Panics
    /// When `initdb` is there but fails.
    pub fn init() -> Option<Self> {
        let found = Command::new("initdb")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("aps-pg-{}", random_namespace()));
        std::fs::create_dir_all(&dir).expect("create the server directory");
        let as_postgres = running_as_root();
        let port = spare_port();
        let server = PrivatePostgres {
            dir,
            port,
            as_postgres,
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres:"])
                .arg(&server.dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown postgres {}", server.dir.display());
        }
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "root", "--no-sync"],
        );
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn command(&self, program: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        // The server inherits nothing: with our pipes it would keep them open.
        let out = self
            .command(program)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it (again, after [`stop`](Self::stop)) and waits until it accepts
    /// connections.
    ///
    /// # Panics
    /// When `pg_ctl start` fails or times out (30 s).
    pub fn start(&self) {
        let data = self.data();
        let log = self.dir.join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start",
            ],
        );
    }

    /// `pg_ctl stop -m immediate`: every server process quits at once, as in a crash
    /// (the next start recovers from the WAL).
    ///
    /// # Panics
    /// When `pg_ctl stop` fails.
    pub fn stop(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    /// Its URL (`postgres://root@127.0.0.1:PORT/postgres`).
    pub fn url(&self) -> String {
        format!("postgres://root@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if Path::new(&self.data()).join("postmaster.pid").exists() {
            let data = self.data();
            let _ = self
                .command("pg_ctl")
                .args(["-D", &data, "-m", "immediate", "-w", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

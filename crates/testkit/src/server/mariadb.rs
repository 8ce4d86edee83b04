//! [`PrivateMariaDb`]: a MariaDB server of a test's own, for fault tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{kill_child, random_namespace, running_as_root, server_log, spare_port};

/// A private MariaDB server for fault tests (`mariadb-install-db` and `mariadbd` on a
/// spare loopback port, in a temporary directory, with a database `test`);
/// SIGKILLed, and its directory removed, on drop.
#[derive(Debug)]
pub struct PrivateMariaDb {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateMariaDb {
    /// Creates its data directory and starts it; `None` when `mariadb-install-db` is
    /// not on `PATH`.
    ///
    /// # Panics
    /// When the server is there but cannot be set up or started.
    pub fn new() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("aps-mariadb-{}", random_namespace()));
        std::fs::create_dir_all(&dir).expect("create the server directory");
        let install = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(Self::as_root())
            .stdin(Stdio::null())
            .output();
        let out = match install {
            Ok(out) => out,
            Err(_) => {
                let _ = std::fs::remove_dir_all(&dir);
                return None;
            }
        };
        assert!(
            out.status.success(),
            "mariadb-install-db: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let port = spare_port();
        let mut server = PrivateMariaDb {
            dir,
            port,
            child: None,
        };
        server.start();
        server.sql("CREATE DATABASE test");
        Some(server)
    }

    /// `--user=root` when we are root (the server refuses to run as root otherwise).
    fn as_root() -> Vec<&'static str> {
        let root = running_as_root();
        if root {
            vec!["--user=root"]
        } else {
            Vec::new()
        }
    }

    /// Runs `sql` with the `mariadb` client.
    fn sql(&self, sql: &str) {
        let out = Command::new("mariadb")
            .args([
                "-h127.0.0.1",
                &format!("-P{}", self.port),
                "-uroot",
                "-e",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run the mariadb client");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it (again, after [`kill`](Self::kill)) on the same port and directory
    /// (InnoDB recovers from its redo log), and waits until it answers.
    ///
    /// # Panics
    /// When it does not answer within 30 s.
    pub fn start(&mut self) {
        let log = server_log(&self.dir);
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .arg(format!("--pid-file={}", self.dir.join("pid").display()))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--innodb-buffer-pool-size=64M"])
            .args(Self::as_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run mariadbd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = Command::new("mariadb")
                .args(["-h127.0.0.1", &format!("-P{}", self.port), "-uroot"])
                .args(["-e", "SELECT 1"])
                .stdin(Stdio::null())
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private MariaDB on port {} did not come up (log: {})",
                self.port,
                self.dir.join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: a crash, not a clean shutdown.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// Its URL (`mysql://root@127.0.0.1:PORT/test`).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/test", self.port)
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

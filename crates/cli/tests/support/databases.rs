//! A database of its own on each test server, for the cluster tests: a fresh database
//! on PostgreSQL and MariaDB (dropped at the end), a key prefix of its own in the
//! database a Redis URL names (its keys cleared at the end), a fresh database on MongoDB
//! and a fresh path on ZooKeeper.

use std::process::Command;

use apscheduler_testkit::server::random_namespace;

use super::run_ok;

/// A database of its own on the test server, dropped at the end.
pub struct Database {
    /// The URL of its store.
    pub url: String,
    /// The command that drops or clears it, if any.
    drop: Option<Vec<String>>,
}

impl Database {
    /// A new database on the PostgreSQL server `admin` connects to, dropped at the end.
    pub fn postgres(admin: &str) -> Database {
        let name = random_namespace();
        run_ok("psql", &[admin, "-qc", &format!("CREATE DATABASE {name}")]);
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        Database {
            url: format!("{base}/{name}"),
            drop: Some(vec![
                "psql".into(),
                admin.into(),
                "-qc".into(),
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ]),
        }
    }

    /// A new database on the MySQL/MariaDB server of `admin`, dropped at the end.
    pub fn mysql(admin: &str) -> Database {
        let name = random_namespace();
        let (host, port) = host_port(admin, 3306);
        let client = |sql: String| {
            vec![
                "mysql".to_owned(),
                format!("-h{host}"),
                format!("-P{port}"),
                "-uroot".into(),
                "-e".into(),
                sql,
            ]
        };
        let create = client(format!("CREATE DATABASE {name}"));
        let args: Vec<&str> = create[1..].iter().map(String::as_str).collect();
        run_ok("mysql", &args);
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        Database {
            url: format!("{base}/{name}"),
            drop: Some(client(format!("DROP DATABASE IF EXISTS {name}"))),
        }
    }

    /// A key prefix of its own in the database `admin` names on its server, its keys
    /// cleared at the end; other keys there are left alone, so that tests on one Redis
    /// server can run side by side.
    pub fn redis(admin: &str) -> Database {
        let db = redis_database(admin);
        let (host, port) = host_port(admin, 6379);
        let prefix = format!("{}.", random_namespace());
        let clear: Vec<String> = [
            "redis-cli",
            "-h",
            &host,
            "-p",
            &port.to_string(),
            "-n",
            &db.to_string(),
            "EVAL",
            "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end",
            "0",
            &format!("{prefix}*"),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        Database {
            url: format!("redis://{host}:{port}/{db}?prefix={prefix}"),
            drop: Some(clear),
        }
    }

    /// A new database on the MongoDB server of `admin`, not dropped.
    pub fn mongodb(admin: &str) -> Database {
        let (host, port) = host_port(admin, 27017);
        Database {
            url: format!(
                "mongodb://{host}:{port}/{}?directConnection=true",
                random_namespace()
            ),
            drop: None,
        }
    }

    /// A new path on the ZooKeeper servers `hosts`.
    pub fn zookeeper(hosts: &str) -> Database {
        Database {
            url: format!("zookeeper://{hosts}/{}", random_namespace()),
            drop: None,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(command) = &self.drop {
            let _ = Command::new(&command[0]).args(&command[1..]).output();
        }
    }
}

/// `host` and `port` of a URL like `scheme://user@host:port/...`.
fn host_port(url: &str, default_port: u16) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap_or(default_port)),
        None => (hostport.to_owned(), default_port),
    }
}

/// The database number a `redis://host:port/N` URL names (none: 0).
pub fn redis_database(url: &str) -> u32 {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    let db = path.split(['?', '#']).next().unwrap_or_default();
    if db.is_empty() {
        0
    } else {
        db.parse()
            .unwrap_or_else(|_| panic!("no database number in the Redis URL {url}"))
    }
}

//! A PostgreSQL store started on a table that already exists logs nothing from the
//! server's notices at INFO: the `CREATE ... IF NOT EXISTS` of its start-up would
//! otherwise make the server send "relation ... already exists, skipping", which sqlx
//! logs at INFO on every start. Its own test binary: the log subscriber is global.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use apscheduler_core::{JobStore as _, RunHistory as _};
use support::{server_url, Tables, POSTGRES_ENV};

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Starts a store and its run history on `table`, as a scheduler and the daemon do.
async fn start(tables: &Tables, table: &str) {
    let store = tables.store_on(table);
    store.start("default").await.unwrap();
    store.history().prepare().await.unwrap();
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_logs_no_server_notice_at_info() {
    let Some(url) = server_url(POSTGRES_ENV, "a_second_start_logs_no_server_notice_at_info") else {
        return;
    };
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("install the log subscriber");

    let tables = Tables::new(&url);
    let table = tables.table();
    start(&tables, &table).await;
    // The first start creates the tables (and logs its migrations at INFO).
    assert!(
        logs.text().contains("applying schema migration"),
        "the subscriber saw the first start's migrations:\n{}",
        logs.text()
    );
    let before = logs.text().len();
    start(&tables, &table).await;
    let second = logs.text()[before..].to_owned();
    assert!(
        !second.contains("sqlx::postgres::notice"),
        "a server notice was logged at INFO on the second start:\n{second}"
    );
    assert!(
        !logs.text().contains("sqlx::postgres::notice"),
        "a server notice was logged at INFO on the first start:\n{}",
        logs.text()
    );
}

//! A run history table created before the `attempt`, `backfill` and `due_at` columns
//! (eleven columns, as the first release made it) is upgraded at prepare time, on every
//! backend: the columns are added, a row written in the old format reads as a first
//! attempt, not a backfill, with no due time, and new records keep all three fields.
//! The node registry gets its `protocol` column the same way: a node row written by the
//! old release reads as `history_records`. Schedulers upgrading the same tables at once
//! all succeed.

mod support;

use std::sync::Arc;

use apscheduler_core::{JobStore, NodeInfo, RunHistory, RunProtocol};
use apscheduler_store_sql::SqlJobStore;
use apscheduler_testkit::history_fields::{
    check_attempt_backfill_due_at, check_old_format_record, old_format_record,
};
use support::{on_every_backend, Raw, Tables};

on_every_backend!(
    an_old_table_is_upgraded_at_prepare,
    schedulers_upgrading_together
);

fn history_of(store: &SqlJobStore) -> Arc<dyn RunHistory> {
    store.run_history().expect("SQL keeps history")
}

/// The run history table, its indexes and the node table as the earlier release's
/// prepare left them (so that only the columns are missing: PostgreSQL's prepare skips
/// its locked path when every relation is there, and must still see them missing).
fn old_tables_ddl(raw: &Raw, store: &SqlJobStore) -> Vec<String> {
    let table = store.table_name();
    let runs = raw.quote(store.runs_table_name());
    let nodes = raw.quote(store.history().nodes_table_name());
    let index = |suffix: &str| raw.quote(&format!("{table}{suffix}"));
    let text = match raw {
        Raw::MySql(_) => " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        Raw::Postgres(_) => " COLLATE \"C\"",
        Raw::Sqlite(_) => "",
    };
    let nodes_ddl = format!(
        "CREATE TABLE {nodes} (node VARCHAR(191){text} NOT NULL PRIMARY KEY, \
         host VARCHAR(255){text} NOT NULL, pid BIGINT NOT NULL, started_at BIGINT NOT NULL, \
         heartbeat_at BIGINT NOT NULL, running BIGINT NOT NULL)"
    );
    let mut ddl = match raw {
        Raw::MySql(_) => vec![format!(
            "CREATE TABLE {runs} (\
             run_id VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             job_id VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             scheduled_at BIGINT NOT NULL, started_at BIGINT NULL, finished_at BIGINT NULL, \
             outcome VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             exit_code INTEGER NULL, http_status INTEGER NULL, output LONGBLOB NOT NULL, \
             message LONGBLOB NULL, \
             node VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             PRIMARY KEY (run_id), KEY {} (scheduled_at, run_id), \
             KEY {} (job_id, scheduled_at, run_id), KEY {} (outcome, scheduled_at, run_id)) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            index("_runs_time_idx"),
            index("_runs_job_idx"),
            index("_runs_outcome_idx"),
        )],
        Raw::Postgres(_) | Raw::Sqlite(_) => {
            let (collate, bytes) = match raw {
                Raw::Postgres(_) => (" COLLATE \"C\"", "BYTEA"),
                _ => ("", "BLOB"),
            };
            vec![
                format!(
                    "CREATE TABLE {runs} (run_id VARCHAR(191){collate} NOT NULL PRIMARY KEY, \
                     job_id VARCHAR(191){collate} NOT NULL, scheduled_at BIGINT NOT NULL, \
                     started_at BIGINT, finished_at BIGINT, outcome VARCHAR(16) NOT NULL, \
                     exit_code INTEGER, http_status INTEGER, output {bytes} NOT NULL, \
                     message {bytes}, node VARCHAR(191){collate} NOT NULL)"
                ),
                format!(
                    "CREATE INDEX {} ON {runs} (scheduled_at, run_id)",
                    index("_runs_time_idx")
                ),
                format!(
                    "CREATE INDEX {} ON {runs} (job_id, scheduled_at, run_id)",
                    index("_runs_job_idx")
                ),
                format!(
                    "CREATE INDEX {} ON {runs} (outcome, scheduled_at, run_id)",
                    index("_runs_outcome_idx")
                ),
            ]
        }
    };
    ddl.push(nodes_ddl);
    ddl
}

/// A binary literal of `text` in `raw`'s dialect.
fn bytes_literal(raw: &Raw, text: &str) -> String {
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    match raw {
        Raw::Postgres(_) => format!("decode('{hex}', 'hex')"),
        Raw::Sqlite(_) | Raw::MySql(_) => format!("X'{hex}'"),
    }
}

/// Creates the old table under the history's name and writes
/// [`old_format_record`] into it with the old eleven columns.
async fn old_table_with_a_row(raw: &Raw, store: &SqlJobStore) {
    for statement in old_tables_ddl(raw, store) {
        raw.exec(&statement).await;
    }
    let runs = raw.quote(store.runs_table_name());
    let r = old_format_record();
    let micros = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();
    raw.exec(&format!(
        "INSERT INTO {runs} (run_id, job_id, scheduled_at, started_at, finished_at, outcome, \
         exit_code, http_status, output, message, node) \
         VALUES ('{}', '{}', {}, {}, {}, '{}', {}, NULL, {}, {}, '{}')",
        r.run_id,
        r.job_id,
        micros(r.scheduled_at),
        micros(r.started_at.unwrap()),
        micros(r.finished_at.unwrap()),
        r.outcome,
        r.exit_code.unwrap(),
        bytes_literal(raw, &r.output),
        bytes_literal(raw, r.message.as_deref().unwrap()),
        r.node,
    ))
    .await;
    let nodes = raw.quote(store.history().nodes_table_name());
    raw.exec(&format!(
        "INSERT INTO {nodes} (node, host, pid, started_at, heartbeat_at, running) \
         VALUES ('old-node/7', 'old-host', 7, 1000000, 2000000, 3)"
    ))
    .await;
}

/// The old release's node row reads as `history_records`; a node of another protocol
/// is written and read back with it.
async fn check_old_node_row(history: &dyn RunHistory) {
    let nodes = history.nodes().expect("SQL keeps a node registry");
    let listed = nodes.list_nodes().await.expect("list the nodes");
    let old = listed
        .iter()
        .find(|n| n.node == "old-node/7")
        .expect("the old row");
    assert_eq!(
        (old.host.as_str(), old.pid, old.running, &old.protocol),
        ("old-host", 7, 3, &RunProtocol::HistoryRecords)
    );
    let leased = NodeInfo {
        node: "new-node/8".into(),
        protocol: RunProtocol::LeasedRuns,
        ..old.clone()
    };
    nodes.heartbeat(&leased).await.expect("heartbeat");
    let listed = nodes.list_nodes().await.expect("list the nodes");
    assert!(listed.contains(&leased), "{listed:?}");
}

/// Prepare adds the three columns to the old table; the old row reads with the
/// defaults; new records keep the fields; a second prepare changes nothing.
async fn an_old_table_is_upgraded_at_prepare(tables: &Tables) {
    let store = tables.store();
    let raw = Raw::connect(tables.url()).await;
    old_table_with_a_row(&raw, &store).await;
    let history = history_of(&store);
    history.prepare().await.expect("prepare upgrades the table");
    check_old_format_record(&*history).await;
    check_attempt_backfill_due_at(&*history).await;
    check_old_node_row(&*history).await;
    history.prepare().await.expect("prepare again");
    let runs = raw.quote(store.runs_table_name());
    assert_eq!(
        raw.int(&format!(
            "SELECT attempt FROM {runs} WHERE run_id = 'old-1'"
        ))
        .await,
        Some(1)
    );
    assert_eq!(
        raw.int(&format!(
            "SELECT backfill FROM {runs} WHERE run_id = 'old-1'"
        ))
        .await,
        Some(0)
    );
    raw.close().await;
    store.shutdown().await.unwrap();
}

/// Four schedulers preparing the same old table at once all succeed (MySQL/MariaDB
/// prepare without a lock: a column another one added first is not an error), and the
/// old row reads with the defaults from each.
async fn schedulers_upgrading_together(tables: &Tables) {
    let table = tables.table();
    let stores: Vec<SqlJobStore> = (0..4).map(|_| tables.store_on(&table)).collect();
    let raw = Raw::connect(tables.url()).await;
    old_table_with_a_row(&raw, &stores[0]).await;
    let histories: Vec<_> = stores.iter().map(history_of).collect();
    let results = futures_util::future::join_all(histories.iter().map(|h| h.prepare())).await;
    for (i, result) in results.into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("scheduler {i} preparing: {e}"));
    }
    for history in &histories {
        check_old_format_record(&**history).await;
    }
    check_old_node_row(&*histories[3]).await;
    raw.close().await;
    for store in stores {
        store.shutdown().await.unwrap();
    }
}

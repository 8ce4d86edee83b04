//! Configuration checks that need no server: names, connection strings, limits, and
//! an unreachable server.

use std::time::Duration;

use apscheduler_core::{ErrorKind, JobStore};
use apscheduler_store_mongodb::{
    validate_collection_name, validate_database_name, MongoDbJobStore,
};

const URL: &str = "mongodb://user:secret@127.0.0.1:27117/";

fn kind_of(result: Result<MongoDbJobStore, apscheduler_core::Error>) -> (ErrorKind, String) {
    let err = result.expect_err("an invalid configuration");
    (err.kind(), err.to_string())
}

#[test]
fn defaults() {
    let store = MongoDbJobStore::new(URL).unwrap();
    assert_eq!(store.database(), "apscheduler");
    assert_eq!(store.collection(), "jobs");
    assert_eq!(store.max_state_bytes(), 1 << 20);
    assert!(store.is_persistent());
    assert!(!store.is_connected());
    let debug = format!("{store:?}");
    assert!(!debug.contains("secret"), "{debug}");
    assert!(debug.contains("apscheduler.jobs"), "{debug}");
    let builder = format!("{:?}", MongoDbJobStore::builder(URL));
    assert!(!builder.contains("secret"), "{builder}");
}

#[test]
fn database_names() {
    for good in ["apscheduler", "a", "my-db_1", "日本", &"x".repeat(63)] {
        validate_database_name(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        MongoDbJobStore::builder(URL)
            .database(good)
            .build()
            .unwrap();
    }
    for (bad, reason) in [
        ("", "cannot be empty"),
        ("a.b", "cannot contain '.'"),
        ("a/b", "cannot contain '/'"),
        ("a\\b", "cannot contain '\\\\'"),
        ("a b", "cannot contain ' '"),
        ("a$b", "cannot contain '$'"),
        ("a\"b", "cannot contain '\\\"'"),
        ("a*b", "cannot contain '*'"),
        ("a<b", "cannot contain '<'"),
        ("a:b", "cannot contain ':'"),
        ("a|b", "cannot contain '|'"),
        ("a?b", "cannot contain '?'"),
        ("a\0b", "cannot contain '\\0'"),
        (&"x".repeat(64), "at most 63 bytes"),
    ] {
        let (kind, message) = kind_of(MongoDbJobStore::builder(URL).database(bad).build());
        assert_eq!(kind, ErrorKind::InvalidInput, "{bad:?}");
        assert!(message.contains("field 'database'"), "{message}");
        assert!(message.contains(reason), "{bad:?}: {message}");
    }
}

#[test]
fn collection_names() {
    for good in ["jobs", "scheduler.jobs", "_jobs", "jobs-2024", "työt"] {
        validate_collection_name("apscheduler", good).unwrap_or_else(|e| panic!("{good}: {e}"));
        MongoDbJobStore::builder(URL)
            .collection(good)
            .build()
            .unwrap();
    }
    for (bad, reason) in [
        ("", "cannot be empty"),
        ("jobs$", "cannot contain '$'"),
        ("jo\0bs", "cannot contain '\\0'"),
        (".jobs", "cannot start with '.'"),
        ("system.jobs", "'system.' is reserved"),
        (&"x".repeat(250), "bytes long; MongoDB allows 255"),
    ] {
        let (kind, message) = kind_of(MongoDbJobStore::builder(URL).collection(bad).build());
        assert_eq!(kind, ErrorKind::InvalidInput, "{bad:?}");
        assert!(message.contains("field 'collection'"), "{message}");
        assert!(message.contains(reason), "{bad:?}: {message}");
    }
}

#[test]
fn connection_strings_and_limits() {
    for bad in ["", "localhost:27017", "http://localhost", "postgres://x"] {
        let (kind, message) = kind_of(MongoDbJobStore::new(bad));
        assert_eq!(kind, ErrorKind::InvalidInput, "{bad:?}");
        assert!(message.contains("field 'url'"), "{message}");
    }
    MongoDbJobStore::new("mongodb+srv://cluster0.example.net/").unwrap();
    for bad in [0, MongoDbJobStore::MAX_STATE_BYTES_LIMIT + 1] {
        let (kind, message) = kind_of(MongoDbJobStore::builder(URL).max_state_bytes(bad).build());
        assert_eq!(kind, ErrorKind::InvalidInput);
        assert!(message.contains("max_state_bytes"), "{message}");
    }
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    // Port 9 (discard) on localhost: nothing answers MongoDB there.
    let store = MongoDbJobStore::builder("mongodb://127.0.0.1:9/?connectTimeoutMS=200")
        .server_selection_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = store.start("default").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    // Refused by the TCP probe before the driver waits out its server selection.
    assert!(
        err.message()
            .contains("cannot reach the MongoDB store at 127.0.0.1:9: connection refused"),
        "{err}"
    );
    assert!(err.message().contains("connect_timeout = 300ms"), "{err}");
    assert!(!store.is_connected());
    let err = store.lookup_job("a").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn malformed_connection_string_is_invalid_input() {
    let store =
        MongoDbJobStore::new("mongodb://127.0.0.1:27117/?serverSelectionTimeoutMS=soon").unwrap();
    let err = store.start("default").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(!err.message().contains("secret"));
}

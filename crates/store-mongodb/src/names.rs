//! Database and collection name rules (MongoDB's naming restrictions).

use apscheduler_core::{Error, ErrorKind};

/// Characters MongoDB refuses in database names (on any platform).
const DATABASE_FORBIDDEN: &[char] = &[
    '/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?', '\0',
];

/// Longest database name MongoDB accepts, in bytes.
const DATABASE_MAX_BYTES: usize = 63;

/// Longest namespace (`database.collection`) MongoDB accepts, in bytes.
const NAMESPACE_MAX_BYTES: usize = 255;

fn invalid(field: &str, value: &str, reason: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!(
            "invalid value for field '{field}': '{}': {reason}",
            value.escape_debug()
        ),
    )
}

/// Checks a database name against MongoDB's rules: not empty, at most 63 bytes, none
/// of `/\. "$*<>:|?` or NUL (the union of the Unix and Windows rules, so a name works
/// on every server).
///
/// # Errors
/// `InvalidInput` naming the field `database`, the value and the rule it breaks.
///
/// ```
/// use apscheduler_store_mongodb::validate_database_name;
///
/// assert!(validate_database_name("apscheduler").is_ok());
/// let err = validate_database_name("my.db").unwrap_err();
/// assert_eq!(err.message(), "invalid value for field 'database': 'my.db': MongoDB database names cannot contain '.'");
/// ```
pub fn validate_database_name(name: &str) -> Result<(), Error> {
    const FIELD: &str = "database";
    if name.is_empty() {
        return Err(invalid(
            FIELD,
            name,
            "MongoDB database names cannot be empty",
        ));
    }
    if let Some(c) = name.chars().find(|c| DATABASE_FORBIDDEN.contains(c)) {
        return Err(invalid(
            FIELD,
            name,
            format_args!(
                "MongoDB database names cannot contain '{}'",
                c.escape_debug()
            ),
        ));
    }
    if name.len() > DATABASE_MAX_BYTES {
        return Err(invalid(
            FIELD,
            name,
            format_args!(
                "MongoDB database names are at most {DATABASE_MAX_BYTES} bytes long (got {})",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// Checks a collection name against MongoDB's rules: not empty, no `$` or NUL, not
/// starting with `.` or with the reserved prefix `system.`, and at most 255 bytes
/// together with the database name (`database.collection`).
///
/// # Errors
/// `InvalidInput` naming the field `collection`, the value and the rule it breaks.
///
/// ```
/// use apscheduler_store_mongodb::validate_collection_name;
///
/// assert!(validate_collection_name("apscheduler", "jobs").is_ok());
/// assert!(validate_collection_name("apscheduler", "scheduler.jobs").is_ok());
/// assert!(validate_collection_name("apscheduler", "system.jobs").is_err());
/// ```
pub fn validate_collection_name(database: &str, name: &str) -> Result<(), Error> {
    const FIELD: &str = "collection";
    if name.is_empty() {
        return Err(invalid(
            FIELD,
            name,
            "MongoDB collection names cannot be empty",
        ));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '$' | '\0')) {
        return Err(invalid(
            FIELD,
            name,
            format_args!(
                "MongoDB collection names cannot contain '{}'",
                c.escape_debug()
            ),
        ));
    }
    if name.starts_with('.') {
        return Err(invalid(
            FIELD,
            name,
            "MongoDB collection names cannot start with '.'",
        ));
    }
    if name.starts_with("system.") {
        return Err(invalid(
            FIELD,
            name,
            "the prefix 'system.' is reserved for MongoDB's own collections",
        ));
    }
    let namespace = database.len() + 1 + name.len();
    if namespace > NAMESPACE_MAX_BYTES {
        return Err(invalid(
            FIELD,
            name,
            format_args!(
                "the namespace '{database}.{name}' is {namespace} bytes long; MongoDB allows {NAMESPACE_MAX_BYTES}"
            ),
        ));
    }
    Ok(())
}

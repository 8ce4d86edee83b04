//! [`ConfigTable`]: one component's options as its factory reads them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::{describe, parse_bool, parse_u64, show, ComponentConfig, ComponentKind};
use crate::{Error, ErrorKind};

/// One component's configuration as its factory sees it: alias, type and options, with
/// typed getters whose errors name the component, the option and the value.
///
/// Every option a factory does not read is refused as unknown once the factory returns.
#[derive(Debug)]
pub struct ConfigTable {
    kind: ComponentKind,
    alias: String,
    type_name: String,
    options: BTreeMap<String, Value>,
    read: RefCell<BTreeSet<String>>,
}

impl ConfigTable {
    /// A table for `alias` (used by the registry; public for testing factories).
    pub fn new(kind: ComponentKind, alias: &str, config: &ComponentConfig) -> Self {
        ConfigTable {
            kind,
            alias: alias.to_owned(),
            type_name: config.type_name().to_owned(),
            options: config.options().clone(),
            read: RefCell::new(BTreeSet::new()),
        }
    }

    /// Job store or executor.
    pub fn kind(&self) -> ComponentKind {
        self.kind
    }

    /// The alias the component is configured under (`default`, `sql`, ...).
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The type it was asked for (`threadpool`, `sqlalchemy`, ...).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The raw value of an option (scalars as text), marking it as read.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.read.borrow_mut().insert(key.to_owned());
        self.options.get(key).filter(|v| !v.is_null())
    }

    /// Every option, read or not.
    pub fn options(&self) -> &BTreeMap<String, Value> {
        &self.options
    }

    /// An `InvalidInput` error about an option:
    /// `executor 'thread': invalid value for 'max_workers': 'abc': expected ...`.
    pub fn invalid(&self, key: &str, value: &Value, expected: &str) -> Error {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{}: invalid value for '{key}': {}: {expected}",
                describe(self.kind, &self.alias),
                show(value)
            ),
        )
    }

    /// A text option.
    ///
    /// # Errors
    /// `InvalidInput` when it is a table or a list.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.invalid(key, v, "expected text")),
        }
    }

    /// A text option that must be given.
    ///
    /// # Errors
    /// `InvalidInput` when missing or not text.
    pub fn require_str(&self, key: &str) -> Result<&str, Error> {
        self.get_str(key)?.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} (type '{}'): missing required option '{key}'",
                    describe(self.kind, &self.alias),
                    self.type_name
                ),
            )
        })
    }

    /// A boolean option (`true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`).
    ///
    /// # Errors
    /// `InvalidInput` for anything else.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, Error> {
        self.get(key)
            .map(|v| {
                parse_bool(v).ok_or_else(|| self.invalid(key, v, "expected a boolean (true/false)"))
            })
            .transpose()
    }

    /// A non-negative whole number.
    ///
    /// # Errors
    /// `InvalidInput` for anything else.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, Error> {
        self.get(key)
            .map(|v| {
                parse_u64(v)
                    .ok_or_else(|| self.invalid(key, v, "expected a non-negative whole number"))
            })
            .transpose()
    }

    /// A non-negative whole number that fits a `usize`.
    ///
    /// # Errors
    /// `InvalidInput` for anything else.
    pub fn get_usize(&self, key: &str) -> Result<Option<usize>, Error> {
        self.get(key)
            .map(|v| {
                parse_u64(v)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| self.invalid(key, v, "expected a non-negative whole number"))
            })
            .transpose()
    }

    /// A whole number of at least 1 (worker counts, limits).
    ///
    /// # Errors
    /// `InvalidInput` for anything else, 0 included.
    pub fn get_positive(&self, key: &str) -> Result<Option<usize>, Error> {
        self.get(key)
            .map(|v| {
                parse_u64(v)
                    .filter(|n| *n >= 1)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| self.invalid(key, v, "expected a positive whole number"))
            })
            .transpose()
    }

    /// A number.
    ///
    /// # Errors
    /// `InvalidInput` for anything else.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, Error> {
        self.get(key)
            .map(|v| {
                let n = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                n.filter(|f| f.is_finite())
                    .ok_or_else(|| self.invalid(key, v, "expected a number"))
            })
            .transpose()
    }

    /// A duration in seconds (fractions allowed).
    ///
    /// # Errors
    /// `InvalidInput` for anything else, negative numbers included.
    pub fn get_seconds(&self, key: &str) -> Result<Option<Duration>, Error> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let secs = self.get_f64(key)?.unwrap_or(-1.0);
        if (0.0..1e12).contains(&secs) {
            Ok(Some(Duration::from_secs_f64(secs)))
        } else {
            Err(self.invalid(key, v, "expected seconds (a non-negative number)"))
        }
    }

    /// A duration in seconds that may also be switched off with `none`, `never` or
    /// `off`: `Some(None)` then.
    ///
    /// # Errors
    /// `InvalidInput` for anything else, negative numbers included.
    pub fn get_optional_seconds(&self, key: &str) -> Result<Option<Option<Duration>>, Error> {
        if let Some(Value::String(s)) = self.get(key) {
            if matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "none" | "never" | "off"
            ) {
                return Ok(Some(None));
            }
        }
        Ok(self.get_seconds(key)?.map(Some))
    }

    /// Refuses options no getter has read.
    pub(crate) fn check_all_read(&self) -> Result<(), Error> {
        let read = self.read.borrow();
        let unknown: Vec<String> = self
            .options
            .iter()
            .filter(|(k, _)| !read.contains(*k))
            .map(|(k, v)| format!("'{k}' = {}", show(v)))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{}: unknown option{} {} for type '{}'",
                describe(self.kind, &self.alias),
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                self.type_name
            ),
        ))
    }
}

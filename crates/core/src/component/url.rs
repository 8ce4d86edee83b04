//! Job stores by URL (`postgres://…`, `redis+cluster://…`): the schemes each store crate
//! registers, as it registers its type names.

use std::sync::Arc;
use std::time::Duration;

use crate::{Error, ErrorKind, JobStore};

/// Opens (without connecting) a job store from its URL and the caller's options.
pub type UrlFactory = fn(&str, &UrlOptions) -> Result<Arc<dyn JobStore>, Error>;

/// What a store URL leaves to the program that opens it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UrlOptions {
    /// How long the first connection may take; `None`: the store's default (or what
    /// the URL itself says, for the stores whose URLs carry one).
    pub connect_timeout: Option<Duration>,
}

impl UrlOptions {
    /// The store's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds the first connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }
}

/// The scheme of `url` (before the first `:`), lower case.
///
/// # Errors
/// `InvalidInput` when there is no scheme.
pub fn url_scheme(url: &str) -> Result<String, Error> {
    match url.split_once(':') {
        Some((scheme, _)) if !scheme.is_empty() => Ok(scheme.to_ascii_lowercase()),
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            "invalid store URL: it has no scheme (`postgres://…`, `sqlite:…`)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::ComponentRegistry;

    /// Stands in for a store crate's opener: it says which URL it was given.
    fn refuse(url: &str, options: &UrlOptions) -> Result<Arc<dyn JobStore>, Error> {
        Err(Error::new(
            ErrorKind::Other,
            format!("asked for {url} within {:?}", options.connect_timeout),
        ))
    }

    #[test]
    fn a_url_goes_to_the_opener_of_its_scheme_and_an_unknown_one_lists_the_known() {
        let mut registry = ComponentRegistry::new();
        let err = registry
            .open_url("mine://h/x", &UrlOptions::new())
            .unwrap_err();
        assert!(err.to_string().contains("links no store crate"), "{err}");
        registry.register_url_schemes(&["mine", "Mine+TLS"], refuse);
        assert_eq!(registry.url_schemes(), ["mine", "mine+tls"]);
        let options = UrlOptions::new().connect_timeout(Duration::from_secs(2));
        let err = registry.open_url("MINE+tls://h/x", &options).unwrap_err();
        assert_eq!(err.message(), "asked for MINE+tls://h/x within Some(2s)");
        let err = registry
            .open_url("theirs://user:secret@h/x", &options)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            err.message(),
            "unknown store URL scheme 'theirs' (known schemes: mine, mine+tls)"
        );
        let err = registry.open_url("no scheme", &options).unwrap_err();
        assert!(err.message().contains("has no scheme"), "{err}");
        // A scheme whose crate this build leaves out (as the facade declares for each
        // store feature that is off) is named with its remedy.
        let err = registry
            .open_url("absent+test://user:secret@h/x", &options)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            err.message(),
            "store URL scheme 'absent+test' is not available in this build (enable it)"
        );
    }

    inventory::submit! {
        crate::component::AbsentUrlScheme {
            schemes: &["absent", "absent+test"],
            remedy: "is not available in this build (enable it)",
        }
    }
}

//! Bearer tokens and roles.
//!
//! A token is 32 random bytes written as `aps_` and 64 hex digits; the server keeps only
//! its SHA-256 (`sha256:<hex>`), so a leaked config reveals no token. A slow password
//! hash buys nothing here: the token has 256 bits of entropy. Hashes are compared in
//! constant time.
//!
//! Roles nest: `read` sees jobs, history, nodes and metrics; `operate` may also pause,
//! resume and run jobs now; `admin` may also add, modify and remove jobs.
//!
//! With no token configured the API serves loopback peers only, as `admin`, without
//! authentication; [`crate::serve`] refuses to listen on any other address then.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts as _, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::error::ApiError;

/// What a caller may do. Each role may do what the ones before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read jobs, history, nodes, metrics.
    Read,
    /// Also pause, resume and run jobs now.
    Operate,
    /// Also add, modify and remove jobs.
    Admin,
}

impl Role {
    /// `read`, `operate` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Role::Read),
            "operate" => Ok(Role::Operate),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "invalid role '{other}': expected read, operate or admin"
            )),
        }
    }
}

/// One configured token: its name (logged with every change it makes), its role and
/// the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    /// Who holds it, for the audit log.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the token.
    hash: [u8; 32],
}

impl TokenEntry {
    /// An entry from a hash written `sha256:<64 hex digits>`.
    ///
    /// # Errors
    /// A message naming the value when the hash is not of that form.
    pub fn new(name: impl Into<String>, role: Role, hash: &str) -> Result<Self, String> {
        let hex = hash.strip_prefix("sha256:").ok_or_else(|| {
            format!("invalid token hash '{hash}': expected 'sha256:' and 64 hex digits")
        })?;
        let bytes = decode_hex(hex).filter(|b| b.len() == 32).ok_or_else(|| {
            format!("invalid token hash '{hash}': expected 'sha256:' and 64 hex digits")
        })?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        Ok(TokenEntry {
            name: name.into(),
            role,
            hash: out,
        })
    }

    /// The hash as written in a config: `sha256:<hex>`.
    pub fn hash_text(&self) -> String {
        format!("sha256:{}", encode_hex(&self.hash))
    }
}

/// A new token for `name` with `role`: the secret to hand out (shown once) and the
/// entry to configure.
pub fn new_token(name: &str, role: Role) -> (String, TokenEntry) {
    use rand::RngCore as _;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = format!("aps_{}", encode_hex(&secret));
    let entry = TokenEntry {
        name: name.to_owned(),
        role,
        hash: digest(&token),
    };
    (token, entry)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Who may call: the configured tokens, or (none configured) loopback peers only.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Arc<Vec<TokenEntry>>,
}

impl Auth {
    /// Tokens as configured; none: loopback peers only, without authentication.
    pub fn new(tokens: Vec<TokenEntry>) -> Self {
        Auth {
            tokens: Arc::new(tokens),
        }
    }

    /// Whether any token is configured (authentication on).
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The entry whose token is `token`, comparing every hash in constant time.
    fn find(&self, token: &str) -> Option<&TokenEntry> {
        let hash = digest(token);
        let mut found = None;
        for entry in self.tokens.iter() {
            if bool::from(entry.hash.ct_eq(&hash)) {
                found = Some(entry);
            }
        }
        found
    }

    /// The caller of a request from `peer` with `authorization` (the header's value).
    ///
    /// # Errors
    /// 401 without a valid token when tokens are configured; 403 for a peer that is not
    /// on loopback when none is.
    pub fn caller(
        &self,
        peer: Option<SocketAddr>,
        authorization: Option<&str>,
    ) -> Result<Caller, ApiError> {
        if !self.has_tokens() {
            return match peer {
                Some(p) if p.ip().is_loopback() => Ok(Caller {
                    name: "loopback".to_owned(),
                    role: Role::Admin,
                }),
                _ => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "no token is configured: the API answers loopback clients only",
                )),
            };
        }
        let token = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing token: send 'Authorization: Bearer <token>'",
                )
            })?;
        self.find(token)
            .map(|e| Caller {
                name: e.name.clone(),
                role: e.role,
            })
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token"))
    }
}

/// Who made a request, as the auth layer found: the token's name and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Caller {
    /// The token's name (`loopback` without tokens).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

impl Caller {
    /// Ok when the caller's role is at least `role`; 403 naming both otherwise.
    ///
    /// # Errors
    /// 403 `forbidden`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "the token '{}' has the role '{}'; this needs '{role}'",
                    self.name, self.role
                ),
            ))
        }
    }
}

/// The middleware that finds the [`Caller`] of each request (put in its extensions)
/// or answers 401/403.
pub(crate) async fn authenticate(
    State(auth): State<Auth>,
    request: Request,
    next: Next,
) -> Response {
    // Through the extractor, which also finds a `MockConnectInfo` (tests, or a host
    // that has no socket address to give).
    let (mut parts, body) = request.into_parts();
    let peer = ConnectInfo::<SocketAddr>::from_request_parts(&mut parts, &())
        .await
        .ok()
        .map(|c| c.0);
    let mut request = Request::from_parts(parts, body);
    if let Err(e) = browser_guard(&auth, request.method(), request.headers()) {
        return e.into_response();
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.caller(peer, authorization) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// Refuses what a web page elsewhere could make a browser send:
/// - a change (any method but GET and HEAD) whose `Origin` is not this server's own
///   (cross-site request forgery: a form on another site posting to `127.0.0.1`);
/// - without tokens, a request whose `Host` is not a loopback name or address (DNS
///   rebinding: another site's name resolving to `127.0.0.1`, so that its pages count
///   as same-origin).
///
/// Tokens are sent by the page's own script, never by the browser on its own, so with
/// tokens only the first rule matters; it costs nothing to keep both.
fn browser_guard(auth: &Auth, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !auth.has_tokens() {
        if let Some(host) = host {
            if !is_loopback_host(host) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "Host '{host}' refused: without tokens the API answers requests to \
                         a loopback name or address only (localhost, 127.0.0.1, [::1])"
                    ),
                ));
            }
        }
    }
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(()); // not a browser's cross-site request (curl, scripts)
    };
    let origin = origin.to_str().unwrap_or("null");
    let same = host.is_some_and(|h| {
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(h))
    });
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("cross-origin request refused: Origin '{origin}' is not this server"),
        ))
    }
}

/// Whether a `Host` header names this machine: `localhost`, a 127.0.0.0/8 or `::1`
/// address, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                n
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_host_names() {
        for ok in [
            "localhost",
            "localhost:8642",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:80",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for no in [
            "evil.example",
            "evil.example:8642",
            "10.0.0.1:80",
            "[2001:db8::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(no), "{no}");
        }
    }

    #[test]
    fn a_new_token_matches_its_entry_and_nothing_else() {
        let (token, entry) = new_token("ci", Role::Operate);
        assert!(token.starts_with("aps_") && token.len() == 68);
        let again = TokenEntry::new("ci", Role::Operate, &entry.hash_text()).unwrap();
        assert_eq!(again, entry);
        let auth = Auth::new(vec![entry]);
        let caller = auth.caller(None, Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(caller.role, Role::Operate);
        assert_eq!(caller.name, "ci");
        let wrong = auth.caller(None, Some("Bearer aps_00")).unwrap_err();
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let missing = auth.caller(None, None).unwrap_err();
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn without_tokens_only_loopback_peers_are_served() {
        let auth = Auth::default();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert_eq!(auth.caller(Some(local), None).unwrap().role, Role::Admin);
        assert_eq!(
            auth.caller(Some(remote), None).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            auth.caller(None, None).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn bad_hashes_and_roles_name_the_value() {
        let e = TokenEntry::new("x", Role::Read, "md5:abc").unwrap_err();
        assert!(e.contains("md5:abc"), "{e}");
        let e = TokenEntry::new("x", Role::Read, "sha256:zz").unwrap_err();
        assert!(e.contains("sha256:zz"), "{e}");
        let e = "root".parse::<Role>().unwrap_err();
        assert!(e.contains("root"), "{e}");
    }

    #[test]
    fn roles_nest() {
        let op = Caller {
            name: "o".into(),
            role: Role::Operate,
        };
        assert!(op.require(Role::Read).is_ok());
        assert!(op.require(Role::Operate).is_ok());
        assert_eq!(
            op.require(Role::Admin).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }
}

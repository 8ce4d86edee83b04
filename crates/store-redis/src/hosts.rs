//! The `[[user]:password@]host[:port][,host[:port]...]` part that the multi-host Redis
//! URLs (`redis+sentinel://`, `redis+cluster://`) share.

use percent_encoding::percent_decode_str;

use crate::error::StoreError;

/// The user, password and hosts of a multi-host URL's authority.
pub(crate) struct Authority {
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) hosts: Vec<(String, u16)>,
}

/// `text` percent-decoded; `invalid` makes the error, naming `what`.
pub(crate) fn decode(
    text: &str,
    what: &str,
    invalid: &dyn Fn(String) -> StoreError,
) -> Result<String, StoreError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| invalid(format!("the {what} is not UTF-8 once percent-decoded")))
}

/// Parses `authority`: hosts without a port get `default_port`; `host_kind` names a
/// host in errors ("a node's", "a Sentinel's"), which `invalid` makes.
pub(crate) fn parse_authority(
    authority: &str,
    default_port: u16,
    host_kind: &str,
    invalid: &dyn Fn(String) -> StoreError,
) -> Result<Authority, StoreError> {
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, pass) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            let user = (!user.is_empty())
                .then(|| decode(user, "user name", invalid))
                .transpose()?;
            let pass = pass.map(|p| decode(p, "password", invalid)).transpose()?;
            (user, pass)
        }
    };
    let mut parsed = Vec::new();
    for host in hosts.split(',') {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) => {
                let port: u16 = port
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| invalid(format!("the port of {host:?} is not 1-65535")))?;
                (name, port)
            }
            None => (host, default_port),
        };
        if name.is_empty() {
            return Err(invalid(format!("{host_kind} host is empty")));
        }
        parsed.push((name.to_owned(), port));
    }
    Ok(Authority {
        username,
        password,
        hosts: parsed,
    })
}

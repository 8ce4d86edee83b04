//! Where `aps` finds its config when no `--config` is given: `$APS_CONFIG` when set,
//! else `/etc/aps/aps.toml` (where the Debian package installs it), so that on a server
//! `aps jobs list` or `aps history` need no option.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The config file of a system-wide install (the Debian package's conffile).
pub(crate) const DEFAULT_CONFIG: &str = "/etc/aps/aps.toml";

/// The environment variable that names the config file when `--config` is not given.
pub(crate) const CONFIG_ENV: &str = "APS_CONFIG";

/// No config file was given and none was found where `aps` looks by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoConfig {
    /// `$APS_CONFIG` names a file that does not exist (the default path is then not
    /// used: falling back would silently run another config than the one asked for).
    EnvMissing {
        /// The value of `$APS_CONFIG`.
        value: PathBuf,
        /// The default path, named so that the message says which files were looked for.
        default: PathBuf,
    },
    /// `$APS_CONFIG` is not set and the default file does not exist.
    DefaultMissing {
        /// The default path.
        default: PathBuf,
    },
}

impl fmt::Display for NoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoConfig::EnvMissing { value, default } => write!(
                f,
                "no config file: {CONFIG_ENV}={} does not exist ({} is not used while \
                 {CONFIG_ENV} is set); give --config FILE or fix {CONFIG_ENV}",
                value.display(),
                default.display()
            ),
            NoConfig::DefaultMissing { default } => write!(
                f,
                "no config file: {CONFIG_ENV} is not set and {} does not exist; give \
                 --config FILE, set {CONFIG_ENV}, or install a config at {}",
                default.display(),
                default.display()
            ),
        }
    }
}

impl std::error::Error for NoConfig {}

/// The config file a command uses: `explicit` (`--config FILE`) when given, else
/// `$APS_CONFIG`, else [`DEFAULT_CONFIG`]; an error when the chosen default is missing.
pub(crate) fn resolve(explicit: Option<&Path>) -> Result<PathBuf, NoConfig> {
    resolve_with(
        explicit,
        std::env::var_os(CONFIG_ENV),
        Path::new(DEFAULT_CONFIG),
    )
}

/// [`resolve`] with the environment's value and the default path passed in (tests).
fn resolve_with(
    explicit: Option<&Path>,
    env: Option<OsString>,
    default: &Path,
) -> Result<PathBuf, NoConfig> {
    if let Some(path) = explicit {
        // An explicit file is read as given: its own read error names it.
        return Ok(path.to_owned());
    }
    match env.filter(|v| !v.is_empty()) {
        Some(value) => {
            let path = PathBuf::from(value);
            if path.exists() {
                Ok(path)
            } else {
                Err(NoConfig::EnvMissing {
                    value: path,
                    default: default.to_owned(),
                })
            }
        }
        None if default.exists() => Ok(default.to_owned()),
        None => Err(NoConfig::DefaultMissing {
            default: default.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_wins_even_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env.toml");
        std::fs::write(&env, "").unwrap();
        let given = dir.path().join("absent.toml");
        let got = resolve_with(Some(&given), Some(env.into()), dir.path()).unwrap();
        assert_eq!(got, given);
    }

    #[test]
    fn env_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env.toml");
        let default = dir.path().join("default.toml");
        std::fs::write(&env, "").unwrap();
        std::fs::write(&default, "").unwrap();
        assert_eq!(
            resolve_with(None, Some(env.clone().into()), &default).unwrap(),
            env
        );
        // An empty variable counts as unset, as shells leave `APS_CONFIG=` around.
        assert_eq!(
            resolve_with(None, Some(OsString::new()), &default).unwrap(),
            default
        );
        assert_eq!(resolve_with(None, None, &default).unwrap(), default);
    }

    #[test]
    fn missing_files_name_both_places() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env.toml");
        let default = dir.path().join("default.toml");
        // The default exists, but a set variable that names a missing file is an error,
        // not a fall-back to another config.
        std::fs::write(&default, "").unwrap();
        let err = resolve_with(None, Some(env.clone().into()), &default).unwrap_err();
        assert_eq!(
            err,
            NoConfig::EnvMissing {
                value: env.clone(),
                default: default.clone()
            }
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("APS_CONFIG={}", env.display())),
            "{text}"
        );
        assert!(text.contains(&default.display().to_string()), "{text}");

        std::fs::remove_file(&default).unwrap();
        let text = resolve_with(None, None, &default).unwrap_err().to_string();
        assert!(text.contains("APS_CONFIG is not set"), "{text}");
        assert!(text.contains(&default.display().to_string()), "{text}");
    }
}

//! Which files an import reads and how: the system format of `/etc/crontab` and
//! `/etc/cron.d`, the file names cron skips in a `cron.d` folder, and job id prefixes that
//! are stable on re-import and unique across files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Why cron skips a file of a `cron.d` folder by its name, or `None` when it reads it.
///
/// Cronie skips names starting with `.` or `#`, ending with `~`, `.rpmsave`, `.rpmorig` or
/// `.rpmnew`. Debian's cron reads only names made of letters, digits, `_` and `-` (the
/// run-parts rule), which also leaves out `*.dpkg-old`, `*.dpkg-dist` and any other name with
/// a dot. A file either cron would skip is skipped.
pub(crate) fn skipped_name(name: &str) -> Option<&'static str> {
    if name.starts_with('.') {
        return Some("a hidden file (name starts with `.`): cron skips it");
    }
    if name.starts_with('#') || name.ends_with('~') {
        return Some("an editor's backup (`#...` or `...~`): cron skips it");
    }
    if [".rpmsave", ".rpmorig", ".rpmnew"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        return Some("a package manager's leftover (`.rpm*`): cron skips it");
    }
    if name.contains(".dpkg-") {
        return Some("a package manager's leftover (`.dpkg-*`): cron skips it");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Some(
            "Debian's cron reads only names of letters, digits, `_` and `-` in cron.d \
             (cronie would read this one)",
        );
    }
    None
}

/// Whether cron reads `path` in the system format: `/etc/crontab` or a file directly in
/// `/etc/cron.d`, also through symbolic links or other spellings of those paths.
pub(crate) fn is_system_path(path: &Path) -> bool {
    let check =
        |p: &Path| p == Path::new("/etc/crontab") || p.parent() == Some(Path::new("/etc/cron.d"));
    // The file itself may be a link; its folder may be spelled with `..` or links.
    let in_resolved_folder = || {
        let (parent, name) = (path.parent()?, path.file_name()?);
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        Some(std::fs::canonicalize(parent).ok()?.join(name))
    };
    check(path)
        || std::fs::canonicalize(path).is_ok_and(|p| check(&p))
        || in_resolved_folder().is_some_and(|p| check(&p))
}

/// Characters of a job id: a file name's letters, digits, `_` and `-`; others become `_`.
fn sanitise(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('_').to_owned()
}

/// Hands out job id prefixes: the file's name (`sysstat` for `/etc/cron.d/sysstat`), or,
/// when two inputs share a name, the whole path of the later one.
#[derive(Debug, Default)]
pub(crate) struct Prefixes {
    used: HashSet<String>,
}

impl Prefixes {
    /// The prefix for the input `path` (`-`: standard input).
    pub(crate) fn prefix_for(&mut self, path: &Path) -> String {
        let base = if path == Path::new("-") {
            "stdin".to_owned()
        } else {
            path.file_name()
                .map(|n| sanitise(&n.to_string_lossy()))
                .unwrap_or_default()
        };
        let base = if base.is_empty() {
            "crontab".to_owned()
        } else {
            base
        };
        let whole = sanitise(&path.to_string_lossy());
        let pick = [base.clone(), whole]
            .into_iter()
            .chain((2..).map(|n| format!("{base}-{n}")))
            .find(|c| !c.is_empty() && !self.used.contains(c))
            .expect("an endless list has a free name");
        self.used.insert(pick.clone());
        pick
    }
}

/// One file to import, in the order read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// Read it (`system`: six-column format).
    Read { path: PathBuf, system: bool },
    /// A `cron.d` entry cron skips, and why.
    Skip { path: PathBuf, reason: String },
}

/// The entries of the `cron.d` folder `dir`, sorted by name: regular files (or links to
/// them) cron reads, and the others with the reason cron skips them.
pub(crate) fn dir_inputs(dir: &Path) -> std::io::Result<Vec<Input>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(reason) = skipped_name(&name) {
                return Input::Skip {
                    path,
                    reason: reason.to_owned(),
                };
            }
            // Cron reads regular files only (it follows symbolic links).
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => Input::Read { path, system: true },
                Ok(_) => Input::Skip {
                    path,
                    reason: "not a regular file: cron skips it".into(),
                },
                Err(e) => Input::Skip {
                    path,
                    reason: format!("cannot read it: {e}"),
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_d_names() {
        for ok in ["sysstat", "e2scrub_all", "php8-2", "0hourly", "A_b-C"] {
            assert_eq!(skipped_name(ok), None, "{ok}");
        }
        for skipped in [
            ".placeholder",
            "#job#",
            "job~",
            "job.rpmnew",
            "job.rpmsave",
            "job.rpmorig",
            "job.dpkg-old",
            "job.dpkg-dist",
            "job.dpkg-new",
            "backup.sh",
            "php8.2",
            "with space",
        ] {
            assert!(skipped_name(skipped).is_some(), "{skipped}");
        }
    }

    #[test]
    fn system_paths() {
        assert!(is_system_path(Path::new("/etc/crontab")));
        assert!(is_system_path(Path::new("/etc/cron.d/anything")));
        assert!(!is_system_path(Path::new("/etc/cron.d")));
        assert!(!is_system_path(Path::new("/etc/cron.daily/job")));
        assert!(!is_system_path(Path::new("/var/spool/cron/crontabs/alice")));
        assert!(!is_system_path(Path::new("crontab")));
        // Another spelling of the same file.
        assert!(is_system_path(Path::new("/etc/../etc/crontab")));
    }

    #[test]
    fn prefixes_are_unique_and_stable() {
        let mut p = Prefixes::default();
        assert_eq!(p.prefix_for(Path::new("/etc/cron.d/sysstat")), "sysstat");
        assert_eq!(p.prefix_for(Path::new("/etc/crontab")), "crontab");
        assert_eq!(p.prefix_for(Path::new("my crontab.txt")), "my_crontab_txt");
        assert_eq!(p.prefix_for(Path::new("-")), "stdin");
        // The same name again: the whole path, then a number.
        assert_eq!(p.prefix_for(Path::new("/tmp/crontab")), "tmp_crontab");
        assert_eq!(p.prefix_for(Path::new("/tmp/crontab")), "crontab-2");
        assert_eq!(p.prefix_for(Path::new("...")), "crontab-3");
    }
}

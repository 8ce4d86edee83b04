//! The identity a command job runs under (`user`, `group`): the look-ups of the user
//! and group, the user's supplementary groups, the environment cron gives a job
//! (`HOME`, `LOGNAME`, `USER`, `SHELL`), and the switch of ids in the child process
//! between fork and exec.
//!
//! The same look-ups check a config (the user and group exist; only a daemon running
//! as root runs jobs as another user) and prepare each run, so a user removed after
//! the config was loaded fails that run with a message instead of running it as root.

use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, Uid, User};

/// The shell of a command job that names none: cron's.
pub(crate) const DEFAULT_SHELL: &str = "/bin/sh";

/// A resolved `user` (and `group`): who the command runs as.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    /// The user's name, for `LOGNAME` and `USER`.
    pub(crate) name: String,
    /// The user's home directory from the passwd database, for `HOME`.
    pub(crate) home: PathBuf,
    uid: Uid,
    gid: Gid,
    /// The supplementary groups (the user's groups, and `gid`), read before the fork:
    /// the child only makes system calls.
    groups: Vec<Gid>,
    /// Whether the ids change: `false` when the daemon already runs as this user and
    /// group (a daemon that is not root naming its own user).
    switch: bool,
}

/// The user `name` from the passwd database.
pub(crate) fn find_user(name: &str) -> Result<User, String> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(format!("no user '{name}' on this system")),
        Err(e) => Err(format!("cannot look up the user '{name}': {e}")),
    }
}

/// The group `name` from the group database.
pub(crate) fn find_group(name: &str) -> Result<Group, String> {
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g),
        Ok(None) => Err(format!("no group '{name}' on this system")),
        Err(e) => Err(format!("cannot look up the group '{name}': {e}")),
    }
}

/// Where a resolution failed: the field (`user` or `group`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunAsError {
    pub(crate) field: &'static str,
    pub(crate) message: String,
}

impl RunAs {
    /// Resolves `user` and `group` (default: the user's primary group) for a process
    /// started by this one.
    ///
    /// # Errors
    /// A user or group that does not exist; a user or group other than this process's
    /// own when it does not run as root (only root can switch).
    pub(crate) fn resolve(user: &str, group: Option<&str>) -> Result<RunAs, RunAsError> {
        let fail = |field, message| RunAsError { field, message };
        let u = find_user(user).map_err(|m| fail("user", m))?;
        let gid = match group {
            Some(g) => find_group(g).map_err(|m| fail("group", m))?.gid,
            None => u.gid,
        };
        let euid = Uid::effective();
        let switch = if euid.is_root() {
            true
        } else if u.uid != euid {
            return Err(fail(
                "user",
                format!(
                    "the daemon runs as uid {euid}, not as root, so it cannot run jobs as '{user}' (uid {})",
                    u.uid
                ),
            ));
        } else if gid != Gid::effective() {
            return Err(fail(
                "group",
                format!(
                    "the daemon runs as gid {}, not as root, so it cannot run jobs in the group {} (gid {gid})",
                    Gid::effective(),
                    group.unwrap_or("of the user")
                ),
            ));
        } else {
            false
        };
        let groups = if switch {
            let c_name = CString::new(u.name.as_str())
                .map_err(|_| fail("user", format!("'{user}' holds a NUL byte")))?;
            nix::unistd::getgrouplist(&c_name, gid).map_err(|e| {
                fail(
                    "user",
                    format!("cannot read the groups of the user '{user}': {e}"),
                )
            })?
        } else {
            Vec::new()
        };
        Ok(RunAs {
            name: u.name,
            home: u.dir,
            uid: u.uid,
            gid,
            groups,
            switch,
        })
    }

    /// Sets the environment cron gives a job run as a user — `HOME` from the passwd
    /// database, `LOGNAME` and `USER` — and, when this process is root, the switch to
    /// the user's ids in the child after fork. The job's own `env`, set after this,
    /// overrides these variables as a crontab's environment lines do.
    // The one way to run code in the child between fork and exec (see SAFETY).
    #[allow(unsafe_code)]
    pub(crate) fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.env("HOME", &self.home)
            .env("LOGNAME", &self.name)
            .env("USER", &self.name);
        if !self.switch {
            return;
        }
        let (uid, gid, groups) = (self.uid, self.gid, self.groups.clone());
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe calls are allowed: it makes three system calls on values
        // computed before the fork, and allocates nothing. The order matters: the
        // supplementary groups and the group can only be set while still root.
        // `Command::uid`/`gid` are not used because the standard library drops every
        // supplementary group with them, before any `pre_exec` closure runs.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setgroups(&groups)?;
                nix::unistd::setgid(gid)?;
                nix::unistd::setuid(uid)?;
                Ok(())
            });
        }
    }
}

/// Checks that `shell` is an absolute path to an executable file.
pub(crate) fn check_shell(shell: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    if !shell.starts_with('/') {
        return Err(format!("'{shell}' is not an absolute path"));
    }
    match std::fs::metadata(shell) {
        Ok(m) if !m.is_file() => Err(format!("'{shell}' is not a file")),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(format!("'{shell}' is not executable")),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("'{shell}' cannot be used: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_and_groups_are_named() {
        let e = RunAs::resolve("aps-no-such-user", None).unwrap_err();
        assert_eq!(e.field, "user");
        assert!(e.message.contains("no user 'aps-no-such-user'"), "{e:?}");
        let e = RunAs::resolve("root", Some("aps-no-such-group")).unwrap_err();
        assert_eq!(e.field, "group");
        assert!(e.message.contains("no group 'aps-no-such-group'"), "{e:?}");
    }

    #[test]
    fn the_own_user_needs_no_switch() {
        let me = User::from_uid(Uid::effective()).unwrap().unwrap();
        let run_as = RunAs::resolve(&me.name, None).unwrap();
        assert_eq!(run_as.home, me.dir);
        assert_eq!(run_as.switch, Uid::effective().is_root());
    }

    #[test]
    fn shells_must_be_executable_files() {
        assert!(check_shell("/bin/sh").is_ok());
        assert!(check_shell("sh")
            .unwrap_err()
            .contains("not an absolute path"));
        assert!(check_shell("/").unwrap_err().contains("not a file"));
        assert!(check_shell("/etc/passwd")
            .unwrap_err()
            .contains("not executable"));
        assert!(check_shell("/no/such/shell")
            .unwrap_err()
            .contains("'/no/such/shell' cannot be used"));
    }
}

//! `--user NAME`: once every listener is bound (port 1038, the gate's 25, the syslog
//! receiver's), the process gives up root for NAME: its supplementary groups (initgroups, so
//! that group `adm` still reads /var/log/mail.log on Debian), its group and its user, real,
//! effective and saved alike, which leaves no capability. Then it checks that this is so, and
//! start-up fails when it is not. Everything after the switch (loading the certificates,
//! opening the logs and the state directory, starting threads) runs as NAME, which is what a
//! SIGHUP reload and a log rotation will find too: a file NAME cannot read fails at start-up,
//! not weeks later. docs/operations.md says which files that is.
//!
//! The system calls come from the `nix` crate: this crate forbids unsafe code.

use std::ffi::CString;

use nix::unistd::{self, Gid, Uid, User};

/// The user `--user` names, looked up when the settings are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    /// The user's own (login) group.
    pub gid: u32,
}

impl RunAs {
    /// Looks `name` up in the user database.
    pub fn lookup(name: &str) -> Result<RunAs, String> {
        match User::from_name(name) {
            Ok(Some(user)) => Ok(RunAs {
                name: user.name,
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            }),
            Ok(None) => Err(format!("--user {name}: no such user")),
            Err(e) => Err(format!("--user {name}: cannot look the user up: {e}")),
        }
    }
}

/// Becomes `user`, when given: call once every listener is bound and before any other thread
/// starts (the switch is made by the calling thread; glibc would carry it to the others, but
/// none should exist to need it). Says on stderr who the process now is, as `who` (the
/// subcommand's prefix). Naming the user the process already is changes nothing; naming
/// another without being root is an error.
pub fn drop_to(user: Option<&RunAs>, who: &str) -> Result<(), String> {
    let Some(user) = user else {
        return Ok(());
    };
    let uid = Uid::from_raw(user.uid);
    let gid = Gid::from_raw(user.gid);
    let name = &user.name;
    let ids = unistd::getresuid().map_err(|e| format!("--user {name}: getresuid: {e}"))?;
    if [ids.real, ids.effective, ids.saved] == [uid; 3] {
        return Ok(());
    }
    if !ids.effective.is_root() {
        return Err(format!(
            "--user {name}: only root can become another user, and this process is uid {} \
             (start it as root, or as {name} without --user)",
            ids.effective
        ));
    }
    let c_name =
        CString::new(name.as_str()).map_err(|_| format!("--user {name}: a NUL in the name"))?;
    unistd::initgroups(&c_name, gid)
        .map_err(|e| format!("--user {name}: cannot take the user's groups: {e}"))?;
    unistd::setresgid(gid, gid, gid)
        .map_err(|e| format!("--user {name}: cannot switch to group {gid}: {e}"))?;
    unistd::setresuid(uid, uid, uid)
        .map_err(|e| format!("--user {name}: cannot switch to uid {uid}: {e}"))?;
    // No exec of a set-user-ID program (journalctl is not one) can give any of it back.
    nix::sys::prctl::set_no_new_privs()
        .map_err(|e| format!("--user {name}: cannot set no_new_privs: {e}"))?;
    check(user)?;
    eprintln!("{who}: running as user {name} (uid {uid}, gid {gid})");
    Ok(())
}

/// Reads the process's credentials back: real, effective and saved ids all `user`'s, and no
/// capability permitted, effective or ambient.
fn check(user: &RunAs) -> Result<(), String> {
    let name = &user.name;
    let uids = unistd::getresuid().map_err(|e| format!("--user {name}: getresuid: {e}"))?;
    let gids = unistd::getresgid().map_err(|e| format!("--user {name}: getresgid: {e}"))?;
    let uid_ok = [uids.real, uids.effective, uids.saved] == [Uid::from_raw(user.uid); 3];
    let gid_ok = [gids.real, gids.effective, gids.saved] == [Gid::from_raw(user.gid); 3];
    if !uid_ok || !gid_ok {
        return Err(format!(
            "--user {name}: after the switch the uids are {}/{}/{} and the gids {}/{}/{}, \
             not all {}/{}",
            uids.real,
            uids.effective,
            uids.saved,
            gids.real,
            gids.effective,
            gids.saved,
            user.uid,
            user.gid
        ));
    }
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("--user {name}: cannot read /proc/self/status: {e}"))?;
    let left =
        capabilities_left(&status).map_err(|e| format!("--user {name}: /proc/self/status: {e}"))?;
    if let Some((field, mask)) = left {
        return Err(format!(
            "--user {name}: capabilities are left after the switch ({field} {mask:016x})"
        ));
    }
    Ok(())
}

/// The first of the permitted, effective and ambient capability sets that is not empty, from
/// the text of /proc/PID/status; `CapAmb` may be missing (kernels before 4.3), the others not.
fn capabilities_left(status: &str) -> Result<Option<(&'static str, u64)>, String> {
    for field in ["CapPrm", "CapEff", "CapAmb"] {
        let value = status.lines().find_map(|l| {
            l.strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        });
        let Some(value) = value else {
            if field == "CapAmb" {
                continue;
            }
            return Err(format!("no {field} line"));
        };
        let mask = u64::from_str_radix(value, 16)
            .map_err(|_| format!("{field} is '{value}', not a hexadecimal mask"))?;
        if mask != 0 {
            return Ok(Some((field, mask)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_masks_are_read_from_proc_status() {
        let none = "Name:\tmtqpd\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
                    CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n";
        assert_eq!(capabilities_left(none), Ok(None));
        let bind = none.replace("CapEff:\t0000000000000000", "CapEff:\t0000000000000400");
        assert_eq!(capabilities_left(&bind), Ok(Some(("CapEff", 0x400))));
        let old_kernel = none.replace("CapAmb:\t0000000000000000\n", "");
        assert_eq!(capabilities_left(&old_kernel), Ok(None));
        let broken = none.replace("CapPrm:\t0000000000000000\n", "");
        assert_eq!(capabilities_left(&broken), Err("no CapPrm line".into()));
        let garbled = none.replace("CapPrm:\t0000000000000000", "CapPrm:\tzz");
        assert_eq!(
            capabilities_left(&garbled),
            Err("CapPrm is 'zz', not a hexadecimal mask".into())
        );
    }

    #[test]
    fn lookup_finds_root_and_names_a_missing_user() {
        let root = RunAs::lookup("root").expect("root exists");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(
            RunAs::lookup("no-such-user-mtqpd"),
            Err("--user no-such-user-mtqpd: no such user".into())
        );
    }
}

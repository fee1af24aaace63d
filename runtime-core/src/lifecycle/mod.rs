//! The OCI lifecycle, once for every backend: one file per verb. The
//! status of a container is derived from what was recorded and from the
//! process itself, so a runtime killed at any point leaves a state that
//! `delete --force` can clean up.

use std::path::PathBuf;

use serde::Serialize;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::state::{Dir, Recorded, State, Store};

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod start;
pub mod state;
pub mod update;

pub use crate::bundle::OCI_VERSION;

/// Everything a verb needs: where state lives and which backend runs it.
pub struct Runtime<'a> {
    pub store: Store,
    pub backend: &'a dyn Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Runtime<'_> {
    /// The state of a locked container, checked by the backend: one made
    /// by another backend (a --root shared by two runtimes) is refused.
    pub fn load(&self, dir: &Dir) -> Result<State> {
        let st = dir.load()?;
        self.backend.check(&st, &dir.path.join(crate::state::STATE_FILE))?;
        Ok(st)
    }

    /// `load` without the lock (a create in progress holds it).
    pub fn peek(&self, id: &str) -> Result<State> {
        let st = self.store.peek(id)?;
        self.backend.check(&st, &self.store.root.join(id).join(crate::state::STATE_FILE))?;
        Ok(st)
    }

    /// The status now. `locked_by_other` is true when a create in
    /// progress holds the lock.
    pub fn status(&self, st: &State, locked_by_other: bool) -> Status {
        if st.status == Recorded::Creating {
            // A create in progress, or one that died before it finished:
            // its init is not ready and dies with it (PDEATHSIG), maybe a
            // moment after the runtime, so it is stopped already.
            return if locked_by_other { Status::Creating } else { Status::Stopped };
        }
        let Some(p) = st.init else { return Status::Stopped };
        if !p.alive() {
            return Status::Stopped;
        }
        if self.backend.parked(st, &self.store.root.join(&st.id)) {
            return Status::Created;
        }
        if self.backend.paused(st) {
            return Status::Paused;
        }
        Status::Running
    }
}

/// The state as the OCI spec (and runc's `state`) shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl OciState {
    pub fn new(st: &State, status: Status) -> OciState {
        OciState {
            oci_version: OCI_VERSION.to_string(),
            id: st.id.clone(),
            pid: if status == Status::Stopped { 0 } else { st.init.map(|p| p.pid).unwrap_or(0) },
            status: status.as_str().to_string(),
            bundle: st.bundle.clone(),
            rootfs: st.rootfs.clone(),
            created: st.created.clone(),
            owner: st.owner.clone(),
            annotations: st.annotations.clone(),
        }
    }

    /// The JSON hooks receive on stdin.
    pub fn hook_json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": self.status,
            "pid": self.pid,
            "bundle": self.bundle,
            "annotations": self.annotations,
        }))
        .unwrap_or_default()
    }
}

/// Kill and reap a child of ours (a process a backend made our child and
/// that the caller cannot be given): its pid cannot be recycled before
/// the reap.
pub(crate) fn kill_and_reap(pid: i32) {
    let p = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(p, None);
}

/// The most `--preserve-fds` (or LISTEN_FDS) may ask for: fds 3..3+N
/// must stay within the fd numbers the kernel can have.
pub const MAX_PRESERVE_FDS: i32 = i32::MAX - 3;

/// `--preserve-fds N`: unsigned, as in runc. A negative count would make
/// the close-on-exec point fall below 3 (closing stdio, or leaking every
/// fd of the caller).
pub fn parse_preserve_fds(s: &str) -> std::result::Result<i32, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if (0..=MAX_PRESERVE_FDS as i64).contains(&n) => Ok(n as i32),
        Ok(_) => Err(format!("{s:?} is out of range: the number of extra fds to pass, from 0 to {MAX_PRESERVE_FDS}")),
        Err(_) => Err(format!("{s:?} is not a number of fds (an unsigned integer)")),
    }
}

/// The same rule for callers of the library (the CLI checks it first).
pub(crate) fn check_preserve_fds(n: i32) -> Result<i32> {
    if !(0..=MAX_PRESERVE_FDS).contains(&n) {
        return Err(Error::Usage(format!("--preserve-fds {n}: must be from 0 to {MAX_PRESERVE_FDS}")));
    }
    Ok(n)
}

/// Parse a signal as runc does: a number, `KILL` or `SIGKILL`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::Usage(format!("invalid signal {s:?}")));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let full = format!("SIG{name}");
    // RTMIN, RTMIN+N and RTMAX-N, N within the real-time range, as runc.
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let rt = |base: i32, rest: &str, sign: char, dir: i32| -> Result<i32> {
        let bad = || Error::Usage(format!("invalid signal {s:?} (real-time signals are RTMIN+N and RTMAX-N, 0 <= N <= {})", max - min));
        if rest.is_empty() {
            return Ok(base);
        }
        let n = rest.strip_prefix(sign).filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())).ok_or_else(bad)?;
        match n.parse::<i32>() {
            Ok(n) if n <= max - min => Ok(base + dir * n),
            _ => Err(bad()),
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(min, rest, '+', 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(max, rest, '-', -1);
    }
    full.parse::<nix::sys::signal::Signal>().map(|s| s as i32).map_err(|_| Error::Usage(format!("invalid signal {s:?}")))
}

/// The owner field: the user name of our uid, as runc shows it.
pub fn owner() -> String {
    // SAFETY: plain call.
    let uid = unsafe { libc::getuid() };
    if uid == 0 {
        return "root".into();
    }
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| crate::linux::passwd::by_uid(&p, uid).map(|e| e.name.to_string()))
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("hup").unwrap(), 1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert_eq!(parse_signal("RTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(parse_signal("RTMIN").unwrap(), libc::SIGRTMIN());
        assert!(parse_signal("RTMIN+-3").is_err());
        assert!(parse_signal("rtmin2147483647").is_err());
        assert!(parse_signal("RTMIN+31").is_err());
    }

    #[test]
    fn real_time_signals_stay_in_their_range() {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        assert_eq!(parse_signal("RTMIN").unwrap(), min);
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), min + 3);
        assert_eq!(parse_signal("RTMAX-2").unwrap(), max - 2);
        assert_eq!(parse_signal("RTMAX").unwrap(), max);
        assert_eq!(parse_signal(&format!("RTMIN+{}", max - min)).unwrap(), max);
        for bad in ["RTMIN+-3", "RTMIN-3", "RTMIN3", "RTMIN+", "RTMIN++1", "RTMAX+1", "RTMAX--1", "RTMIN+99", "RTMIN+ 1"] {
            assert!(parse_signal(bad).is_err(), "{bad} accepted as {:?}", parse_signal(bad));
        }
    }

    #[test]
    fn preserve_fds_is_unsigned() {
        assert_eq!(parse_preserve_fds("0"), Ok(0));
        assert_eq!(parse_preserve_fds("2"), Ok(2));
        for bad in ["-1", "-3", "-5", "x", "", "2147483647", "99999999999"] {
            assert!(parse_preserve_fds(bad).is_err(), "{bad}");
        }
        assert!(check_preserve_fds(-3).is_err());
    }
}

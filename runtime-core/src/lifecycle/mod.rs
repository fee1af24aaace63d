//! The OCI lifecycle, once for every backend: one file per verb. The
//! status of a container is derived from what was recorded and from the
//! process itself, so a runtime killed at any point leaves a state that
//! `delete --force` can clean up.

use std::path::PathBuf;

use serde::Serialize;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::linux::process;
use crate::state::{Recorded, State, Store};

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

pub const OCI_VERSION: &str = "1.2.0";

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
        if !process::alive(p.pid, p.start_time) {
            return Status::Stopped;
        }
        if self.store.root.join(&st.id).join(crate::state::EXEC_FIFO).exists() {
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
    if let Some(rt) = name.strip_prefix("RTMIN") {
        let off: i32 = if rt.is_empty() {
            0
        } else {
            rt.trim_start_matches('+').parse().map_err(|_| Error::Usage(format!("invalid signal {s:?}")))?
        };
        // Within RTMIN..RTMAX, and no overflow on the way (found by
        // tests/fuzz.rs: "rtmin2147483647").
        let (lo, hi) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        return lo.checked_add(off).filter(|n| (lo..=hi).contains(n)).ok_or_else(|| Error::Usage(format!("invalid signal {s:?}")));
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
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
            })
        })
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
}

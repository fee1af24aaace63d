//! AppArmor and SELinux labels: applied when the host has the LSM,
//! otherwise a warning (as the issue and runc's users expect).

use crate::error::{Error, Result};
use crate::linux::procfs;
use crate::log;

pub use crate::host::{apparmor_enabled, selinux_enabled};

/// Write an attr file of /proc/self through the verified procfs handle:
/// neither a fake /proc from the image (CVE-2019-16884) nor another procfs
/// file mounted over the attr file (CVE-2025-52881) can swallow or
/// redirect the label.
fn write_attr(proc: &procfs::Lazy, rel: &str, value: &str) -> std::io::Result<()> {
    let p = proc.get().map_err(|e| std::io::Error::other(e.to_string()))?;
    p.write(rel, value.as_bytes())
}

/// Set the exec label for the next execve.
pub fn apply(proc: &procfs::Lazy, apparmor: Option<&str>, selinux: Option<&str>) -> Result<()> {
    if let Some(p) = apparmor.filter(|p| !p.is_empty()) {
        if apparmor_enabled() {
            write_attr(proc, "self/attr/apparmor/exec", &format!("exec {p}"))
                .or_else(|_| write_attr(proc, "self/attr/exec", &format!("exec {p}")))
                .map_err(|e| Error::Container(format!("process.apparmorProfile {p:?}: {e}")))?;
        } else {
            log::warn(&format!("apparmor profile {p:?} not applied: AppArmor is not enabled on this host"));
        }
    }
    if let Some(l) = selinux.filter(|l| !l.is_empty()) {
        if selinux_enabled() {
            write_attr(proc, "self/attr/exec", l).map_err(|e| Error::Container(format!("process.selinuxLabel {l:?}: {e}")))?;
        } else {
            log::warn(&format!("selinux label {l:?} not applied: SELinux is not enabled on this host"));
        }
    }
    Ok(())
}

//! AppArmor and SELinux labels: applied when the host has the LSM,
//! otherwise a warning (as the issue and runc's users expect).

use crate::error::{Error, Result};
use crate::log;

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").map(|s| s.trim() == "Y").unwrap_or(false)
}

pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Write an attr file of /proc/self, refusing anything but a real procfs
/// (CVE-2019-16884: a fake /proc from the image would swallow the label).
fn write_attr(path: &str, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    // SAFETY: valid fd and buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if st.f_type != libc::PROC_SUPER_MAGIC {
        return Err(std::io::Error::other(format!("{path} is not on procfs")));
    }
    f.write_all(value.as_bytes())
}

/// Set the exec label for the next execve.
pub fn apply(apparmor: Option<&str>, selinux: Option<&str>) -> Result<()> {
    if let Some(p) = apparmor.filter(|p| !p.is_empty()) {
        if apparmor_enabled() {
            write_attr("/proc/self/attr/apparmor/exec", &format!("exec {p}"))
                .or_else(|_| write_attr("/proc/self/attr/exec", &format!("exec {p}")))
                .map_err(|e| Error::Container(format!("process.apparmorProfile {p:?}: {e}")))?;
        } else {
            log::warn(&format!("apparmor profile {p:?} not applied: AppArmor is not enabled on this host"));
        }
    }
    if let Some(l) = selinux.filter(|l| !l.is_empty()) {
        if selinux_enabled() {
            write_attr("/proc/self/attr/exec", l).map_err(|e| Error::Container(format!("process.selinuxLabel {l:?}: {e}")))?;
        } else {
            log::warn(&format!("selinux label {l:?} not applied: SELinux is not enabled on this host"));
        }
    }
    Ok(())
}

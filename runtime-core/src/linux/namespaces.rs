//! Namespaces: which to create, which to join by path, and the uid/gid
//! maps of a new user namespace.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespace, LinuxNamespaceType};

pub use crate::bundle::idmap::check_mappings;
use crate::bundle::idmap::map_text;
use crate::error::{Context, Error, Result};
pub use crate::host::max_map_lines;

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(0x80),
    }
}

/// The namespace's file name under /proc/PID/ns.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Flags of the namespaces to create (no path).
pub fn new_flags(nss: &[LinuxNamespace]) -> CloneFlags {
    nss.iter().filter(|n| n.path().is_none()).fold(CloneFlags::empty(), |f, n| f | flag(n.typ()))
}

/// Open every namespace given by path, user first: opened before any is
/// joined, since joining the mount namespace changes what paths mean.
pub fn open_paths(nss: &[LinuxNamespace]) -> Result<Vec<(LinuxNamespaceType, PathBuf, OwnedFd)>> {
    let mut v = Vec::new();
    for n in nss {
        if let Some(p) = n.path() {
            let f = std::fs::File::open(p).with_ctx(|| format!("linux.namespaces: opening {} namespace {}", n.typ(), p.display()))?;
            v.push((n.typ(), p.clone(), OwnedFd::from(f)));
        }
    }
    v.sort_by_key(|(t, _, _)| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    Ok(v)
}

pub fn join(list: &[(LinuxNamespaceType, PathBuf, OwnedFd)]) -> Result<()> {
    for (t, p, fd) in list {
        // SAFETY: valid fd.
        if unsafe { libc::setns(fd.as_raw_fd(), flag(*t).bits()) } != 0 {
            return Err(Error::Io { context: format!("joining {t} namespace {}", p.display()), source: std::io::Error::last_os_error() });
        }
    }
    Ok(())
}

/// Write the uid/gid maps of `pid`'s new user namespace (from the parent).
/// The kernel's refusal is reported in runc's words with the mapping.
pub fn write_maps(pid: i32, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    for (field, file, m) in [("linux.uidMappings", "uid_map", uids), ("linux.gidMappings", "gid_map", gids)] {
        let text = map_text(m);
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, &text).map_err(|e| {
            let shown: Vec<&str> = text.lines().take(4).collect();
            let more = if m.len() > 4 { format!(" and {} more", m.len() - 4) } else { String::new() };
            Error::Io { context: format!("{field} [{}{more}]: failed to update {path}", shown.join(", ")), source: e }
        })?;
    }
    Ok(())
}

//! `cgroup` and `cgroup2` mounts in the container: the container's own
//! cgroups (or its cgroup namespace's view), never the host's tree. A
//! mount, so it lives with the mounts; what it mounts comes from
//! `cgroups` (the host's hierarchies), which knows nothing of mounting.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::{mount, remount_bind};
use crate::error::{Error, Result};
use crate::linux::cgroups::{Hierarchies, Hierarchy, Kind, Mode};
use crate::linux::path::{proc_fd_path, Create};

/// A `cgroup` mount inside the container. With a cgroup namespace (the
/// config has one: `cgroupns`) the hierarchies are mounted afresh (the
/// namespace makes the container's cgroup their root); otherwise, or where
/// the kernel refuses (a user namespace), the container's own directories
/// are bind-mounted, as runc does. (Telling by comparing our namespace
/// with pid 1's fails where /proc/1/ns is unreadable, as nested in a
/// sandbox, and a fresh mount there showed the host's whole tree.)
pub fn mount_in_container(
    target: &Path,
    resolved: &Path,
    root: &crate::linux::path::Root,
    dirs: &[PathBuf],
    cgroupns: bool,
    typ: &str,
    flags: MsFlags,
) -> Result<()> {
    let hs = Hierarchies::cached();
    let flags = flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let bind_flags = flags & (MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    let host_dir = |h: &Hierarchy| dirs.iter().find(|d| d.starts_with(&h.mountpoint)).cloned();
    if hs.mode() == Mode::V2 || typ == "cgroup2" {
        if cgroupns && mount(Some(Path::new("cgroup2")), target, Some("cgroup2"), flags, None).is_ok() {
            return Ok(());
        }
        let h = hs
            .list
            .iter()
            .find(|h| h.kind == Kind::V2)
            .ok_or_else(|| Error::Unsupported("cgroup2 mount without a cgroup2 hierarchy".into()))?;
        let src = host_dir(h).unwrap_or_else(|| h.mountpoint.clone());
        mount(Some(&src), target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
        return remount_bind(target, bind_flags);
    }
    mount(Some(Path::new("tmpfs")), target, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some("mode=755"))?;
    // The fresh tmpfs is ours alone (nothing in the container runs yet):
    // its directories are made and opened in it directly.
    let tmp = root.open_path(resolved, Create::No)?;
    let sub = |name: &str, make: bool| {
        crate::linux::path::child_dir(std::os::fd::AsRawFd::as_raw_fd(&tmp), name, make)
            .map_err(|e| Error::Io { context: format!("cgroup mount point {}/{name}", resolved.display()), source: e })
    };
    for h in &hs.list {
        let Kind::V1(ctrls) = &h.kind else { continue };
        let name = ctrls.iter().map(|c| c.strip_prefix("name=").unwrap_or(c)).collect::<Vec<_>>().join(",");
        let fd = sub(&name, true)?;
        let t = proc_fd_path(&fd);
        let data = ctrls.join(",");
        if cgroupns && mount(Some(Path::new("cgroup")), &t, Some("cgroup"), flags, Some(&data)).is_ok() {
            continue;
        }
        let Some(src) = host_dir(h) else { continue };
        mount(Some(&src), &t, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
        // The bind now covers the directory: open it again to remount.
        remount_bind(&proc_fd_path(&sub(&name, false)?), bind_flags)?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        remount_bind(&proc_fd_path(&tmp), MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)?;
    }
    Ok(())
}

//! OCI mount options -> mount(2) flags, propagation and data, and the
//! mount of one `mounts[]` entry inside the rootfs (`cgroup` mounts in
//! `cgroup`).

mod cgroup;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::error::{Error, Result};
use crate::linux::path::{self, Create};
use crate::linux::procfs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub flags: MsFlags,
    /// Flags to clear when remounting (e.g. `rw`, `suid`).
    pub clear: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub bind: bool,
    pub recursive: bool,
    pub data: Vec<String>,
}

/// Parse `options`; unknown words become filesystem data, as with mount(8).
pub fn parse_options(opts: &[String]) -> Options {
    let mut o =
        Options { flags: MsFlags::empty(), clear: MsFlags::empty(), propagation: vec![], bind: false, recursive: false, data: vec![] };
    for opt in opts {
        let (set, clear, prop) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty(), None),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY, None),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty(), None),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID, None),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty(), None),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV, None),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty(), None),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC, None),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty(), None),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS, None),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty(), None),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty(), None),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty(), None),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK, None),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME, None),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty(), None),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME, None),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty(), None),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty(), None),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME, None),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty(), None),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME, None),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty(), None),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME, None),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty(), None),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT, None),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            "private" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_PRIVATE)),
            "rprivate" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_PRIVATE | MsFlags::MS_REC)),
            "shared" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_SHARED)),
            "rshared" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_SHARED | MsFlags::MS_REC)),
            "slave" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_SLAVE)),
            "rslave" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)),
            "unbindable" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_UNBINDABLE)),
            "runbindable" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC)),
            "defaults" => continue,
            // runc extensions we accept and ignore: copy-up is a no-op for
            // a fresh tmpfs in our model, "X-" options are for userspace.
            "tmpcopyup" => continue,
            s if s.starts_with("x-") || s.starts_with("X-") => continue,
            _ => {
                o.data.push(opt.clone());
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clear;
        o.clear |= clear;
        if let Some(p) = prop {
            o.propagation.push(p);
        }
    }
    o
}

pub fn mount(src: Option<&Path>, target: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> Result<()> {
    nix::mount::mount(src, target, fstype, flags, data).map_err(|e| Error::Sys {
        context: format!(
            "mount {} on {} (type {}, flags {:?}, data {:?})",
            src.map(|s| s.display().to_string()).unwrap_or_else(|| "none".into()),
            target.display(),
            fstype.unwrap_or("none"),
            flags,
            data.unwrap_or("")
        ),
        source: e,
    })
}

/// Bind-mount what `src` refers to onto what `target` refers to: by fd
/// (open_tree + move_mount) where the kernel can, so neither is looked up
/// by path again; else through their fd links in the verified procfs (for
/// use after pivot_root, where the container's /proc is not to be trusted).
pub fn bind_fd(src: &OwnedFd, target: &OwnedFd, proc: &procfs::Lazy) -> Result<()> {
    match crate::linux::probe::bind_fd(src.as_raw_fd(), target.as_raw_fd()) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(Error::Io {
            context: format!("bind {} on {} (by fd)", fd_name(&path::proc_fd_path(src)), fd_name(&path::proc_fd_path(target))),
            source: e,
        }),
        None => {
            let p = proc.get()?;
            p.at_fd_dir("bind mount", || mount(Some(&procfs::fd_path(src)), &procfs::fd_path(target), None, MsFlags::MS_BIND, None))
        }
    }
}

/// What a /proc/self/fd link names (for messages).
fn fd_name(p: &Path) -> String {
    std::fs::read_link(p).map(|r| r.display().to_string()).unwrap_or_else(|_| p.display().to_string())
}

/// Flags the kernel locked on an existing mount (a remount must keep them).
pub fn locked_flags(target: &Path) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::statvfs(target) else { return MsFlags::empty() };
    let f = st.flags().bits();
    let mut m = MsFlags::empty();
    for (bit, flag) in [
        (libc::ST_RDONLY, MsFlags::MS_RDONLY),
        (libc::ST_NOSUID, MsFlags::MS_NOSUID),
        (libc::ST_NODEV, MsFlags::MS_NODEV),
        (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (libc::ST_NOATIME, MsFlags::MS_NOATIME),
        (libc::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (libc::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f & bit != 0 {
            m |= flag;
        }
    }
    m
}

/// Remount a bind mount with `flags`, keeping flags the kernel locked.
pub fn remount_bind(target: &Path, flags: MsFlags) -> Result<()> {
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match nix::mount::mount(None::<&str>, target, None::<&str>, base | flags, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            let keep = locked_flags(target)
                & (MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NOATIME
                    | MsFlags::MS_NODIRATIME
                    | MsFlags::MS_RELATIME);
            mount(None, target, None, base | flags | keep, None)
        }
        Err(e) => Err(Error::Sys { context: format!("remount {} with {:?}", target.display(), flags), source: e }),
    }
}

/// What mounting an entry needs to know about the container.
pub struct MountCtx<'a> {
    /// The rootfs, opened once (after its bind mount).
    pub root: &'a path::Root,
    /// Resolves relative bind sources.
    pub bundle: &'a Path,
    pub label: Option<&'a str>,
    /// The container's cgroup directories on the host (for `cgroup` mounts).
    pub cgroup_dirs: &'a [PathBuf],
    /// The container has a cgroup namespace (`cgroup` mounts are fresh).
    pub cgroupns: bool,
}

/// Mount one `mounts[]` entry; the destination is resolved inside the rootfs.
pub fn mount_entry(ctx: &MountCtx, m: &oci_spec::runtime::Mount) -> Result<()> {
    let mut over_root = false;
    let r = mount_one(ctx, m, &mut over_root);
    if over_root {
        // It went over the rootfs itself: later lookups start on top of it.
        ctx.root.reopen()?;
    }
    r
}

fn mount_one(ctx: &MountCtx, m: &oci_spec::runtime::Mount, over_root: &mut bool) -> Result<()> {
    let (root, bundle, label) = (ctx.root, ctx.bundle, ctx.label);
    let rootfs = root.path();
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = opts.bind || typ == "bind";
    let dest = m.destination();
    let src = m.source().as_ref().map(|s| if s.is_relative() && bind { bundle.join(s) } else { s.clone() });
    let create = if bind {
        let sp = src.as_ref().ok_or_else(|| Error::Container(format!("bind mount on {} has no source", dest.display())))?;
        match std::fs::metadata(sp) {
            Ok(md) if md.is_dir() => Create::Dir,
            Ok(_) => Create::File,
            Err(e) => return Err(Error::Io { context: format!("bind mount source {}", sp.display()), source: e }),
        }
    } else {
        Create::Dir
    };
    let what = src.as_ref().map(|s| s.display().to_string()).unwrap_or_else(|| typ.to_string());
    let named = |e: Error| Error::Container(format!("mounting {what} on {}: {e}", dest.display()));
    if typ == "proc" || typ == "sysfs" {
        on_ordinary_directory(rootfs, dest, typ).map_err(named)?;
    }
    let (fd, resolved) = root.resolve(dest, create)?;
    *over_root = resolved == Path::new("/");
    if typ != "proc" {
        check_proc_destination(&resolved, bind.then_some(src.as_deref()).flatten()).map_err(named)?;
    }
    let target = path::proc_fd_path(&fd);
    let mut data = opts.data.join(",");
    if let Some(l) = label.filter(|l| !l.is_empty() && !bind) {
        if !data.is_empty() {
            data.push(',');
        }
        data.push_str(&format!("context={l:?}"));
    }
    if bind {
        let mut f = MsFlags::MS_BIND;
        if opts.recursive {
            f |= MsFlags::MS_REC;
        }
        mount(src.as_deref(), &target, None, f, None).map_err(named)?;
        let extra = opts.flags & !(MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_REC);
        if extra.is_empty() && opts.clear.is_empty() && opts.propagation.is_empty() {
            return Ok(());
        }
        // Re-resolve: the bind replaced what the fd pointed at.
        if *over_root {
            root.reopen()?;
        }
        let fd2 = root.open_path(&resolved, Create::No)?;
        let target = path::proc_fd_path(&fd2);
        if !extra.is_empty() || !opts.clear.is_empty() {
            remount_bind(&target, extra).map_err(named)?;
        }
        for p in &opts.propagation {
            mount(None, &target, None, *p, None).map_err(named)?;
        }
        return Ok(());
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return cgroup::mount_in_container(&target, &resolved, root, ctx.cgroup_dirs, ctx.cgroupns, typ, opts.flags).map_err(named);
    }
    let source: PathBuf = src.unwrap_or_else(|| PathBuf::from(typ));
    let fstype = if typ.is_empty() { None } else { Some(typ) };
    mount(Some(&source), &target, fstype, opts.flags, if data.is_empty() { None } else { Some(&data) }).map_err(named)?;
    if !opts.propagation.is_empty() {
        if *over_root {
            root.reopen()?;
        }
        let fd2 = root.open_path(&resolved, Create::No)?;
        for p in &opts.propagation {
            mount(None, &path::proc_fd_path(&fd2), None, *p, None).map_err(named)?;
        }
    }
    Ok(())
}

/// CVE-2019-19921 / CVE-2023-27561: proc and sysfs go on an ordinary
/// directory of the rootfs, never through a symlink (which could send them
/// over another mount, or leave /proc pointing where the image likes).
fn on_ordinary_directory(rootfs: &Path, dest: &Path, typ: &str) -> Result<()> {
    let mut at = rootfs.to_path_buf();
    for c in dest.components() {
        if let std::path::Component::Normal(n) = c {
            at.push(n);
            match std::fs::symlink_metadata(&at) {
                Ok(md) if md.file_type().is_symlink() || (!md.is_dir()) => {
                    return Err(Error::Container(format!(
                        "filesystem {typ:?} must be mounted on an ordinary directory, and {} is {}",
                        Path::new("/").join(at.strip_prefix(rootfs).unwrap_or(&at)).display(),
                        if md.file_type().is_symlink() { "a symlink" } else { "not a directory" }
                    )))
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    Ok(())
}

/// Entries under /proc that may be bind-mounted over (lxcfs's views), as
/// runc allows.
const PROC_BIND_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// CVE-2019-16884 / CVE-2019-19921: nothing but procfs may cover /proc,
/// and nothing may be mounted inside it (where LSM labels and the
/// runtime's own /proc/self writes go) but lxcfs-style file views. The
/// check is on the destination as resolved in the rootfs, so a symlink
/// cannot carry a mount into /proc. `bind_src` is the source of a bind.
fn check_proc_destination(resolved: &Path, bind_src: Option<&Path>) -> Result<()> {
    let Ok(rest) = resolved.strip_prefix("/proc") else { return Ok(()) };
    if rest.as_os_str().is_empty() {
        if bind_src.is_some_and(is_procfs) {
            return Ok(());
        }
        return Err(Error::Container(format!("{} cannot be mounted because it is not of type proc", resolved.display())));
    }
    if bind_src.is_some() && PROC_BIND_ALLOWED.iter().any(|a| Path::new(a) == resolved) {
        return Ok(());
    }
    Err(Error::Container(format!("{} cannot be mounted because it is inside /proc", resolved.display())))
}

/// Whether `p` is on a procfs (statfs), following symlinks.
pub fn is_procfs(p: &Path) -> bool {
    nix::sys::statfs::statfs(p).is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(v: &[&str]) -> Options {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_to_flags() {
        let x = o(&["nosuid", "noexec", "nodev", "ro", "mode=755", "size=65536k"]);
        assert_eq!(x.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RDONLY);
        assert_eq!(x.data, vec!["mode=755", "size=65536k"]);
        let x = o(&["rbind", "rprivate", "ro", "rw"]);
        assert!(x.bind && x.recursive);
        assert_eq!(x.flags, MsFlags::empty());
        assert_eq!(x.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
    }

    #[test]
    fn proc_destinations() {
        let p = Path::new;
        assert!(check_proc_destination(p("/tmp"), None).is_ok());
        assert!(check_proc_destination(p("/procfoo"), None).is_ok());
        let e = check_proc_destination(p("/proc"), None).unwrap_err().to_string();
        assert!(e.contains("/proc cannot be mounted because it is not of type proc"), "{e}");
        assert!(check_proc_destination(p("/proc"), Some(p("/tmp"))).is_err());
        assert!(check_proc_destination(p("/proc"), Some(p("/proc"))).is_ok());
        let e = check_proc_destination(p("/proc/self/attr"), Some(p("/tmp"))).unwrap_err().to_string();
        assert!(e.contains("inside /proc"), "{e}");
        assert!(check_proc_destination(p("/proc/meminfo"), Some(p("/tmp"))).is_ok());
        assert!(check_proc_destination(p("/proc/meminfo"), None).is_err(), "only a bind may cover an lxcfs file");
    }
}

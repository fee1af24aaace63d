//! The container's root filesystem: propagation, the rootfs bind, the
//! mounts in order, /dev, pivot_root (or MS_MOVE + chroot with
//! `--no-pivot`), masked and read-only paths and a read-only root.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::bundle::Bundle;
use crate::error::{Context, Error, Result};
use crate::linux::devices;
use crate::linux::mounts::{self, mount, remount_bind};
use crate::linux::path::{proc_fd_path, Create, Root};
use crate::linux::procfs;

fn propagation(p: Option<&str>) -> MsFlags {
    match p.unwrap_or("") {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    }
}

/// The mount point a path lives on (longest mountinfo prefix), and whether
/// it is shared.
fn mountpoint_of(p: &Path) -> (PathBuf, bool) {
    let info = crate::linux::kfile::read("/proc/self/mountinfo").unwrap_or_default();
    let mut best = (PathBuf::from("/"), false);
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 7 {
            continue;
        }
        let mp = Path::new(f[4]);
        if p.starts_with(mp) && mp.as_os_str().len() >= best.0.as_os_str().len() {
            let shared = f[6..].iter().take_while(|x| **x != "-").any(|x| x.starts_with("shared:"));
            best = (mp.to_path_buf(), shared);
        }
    }
    best
}

/// After pivot_root: a shared rootfsPropagation applies to the new root.
pub fn after_pivot(propagation: Option<&str>) -> Result<()> {
    match propagation {
        Some("shared") => mount(None, Path::new("/"), None, MsFlags::MS_SHARED, None),
        Some("rshared") => mount(None, Path::new("/"), None, MsFlags::MS_SHARED | MsFlags::MS_REC, None),
        _ => Ok(()),
    }
}

/// Everything before the createContainer hooks and pivot_root. Runs in
/// init, in the new mount namespace, with the host's / still visible.
/// Returns the rootfs, opened.
pub fn prepare(b: &Bundle, in_userns: bool, cgroup_dirs: &[PathBuf]) -> Result<Root> {
    let linux = b.spec.linux().as_ref();
    let prop = propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()));
    mount(None, Path::new("/"), None, prop, None)?;
    // pivot_root needs the rootfs's parent mount not to be shared. After a
    // recursive slave, private or unbindable change nothing is shared, and
    // the mount table need not be read.
    if !prop.contains(MsFlags::MS_REC) || prop.contains(MsFlags::MS_SHARED) {
        let (parent, shared) = mountpoint_of(b.rootfs.parent().unwrap_or(Path::new("/")));
        if shared {
            mount(None, &parent, None, MsFlags::MS_PRIVATE, None)?;
        }
    }
    mount(Some(&b.rootfs), &b.rootfs, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    let root = Root::open(&b.rootfs)?;
    let label = linux.and_then(|l| l.mount_label().as_deref());
    let mut dev_is_mounted = false;
    let cgroupns = b.has_ns(oci_spec::runtime::LinuxNamespaceType::Cgroup);
    let ctx = mounts::MountCtx { root: &root, bundle: &b.dir, label, cgroup_dirs, cgroupns };
    for m in b.spec.mounts().iter().flatten() {
        mounts::mount_entry(&ctx, m)?;
        if m.destination() == Path::new("/dev") {
            dev_is_mounted = true;
        }
    }
    // Default devices and links, then the config's devices.
    let bind = in_userns;
    if dev_is_mounted {
        // devpts and shm if the config did not mount them.
        let has = |d: &str| b.spec.mounts().iter().flatten().any(|m| m.destination() == Path::new(d));
        if !has("/dev/pts") {
            let fd = root.open_path(Path::new("/dev/pts"), Create::Dir)?;
            mount(
                Some(Path::new("devpts")),
                &proc_fd_path(&fd),
                Some("devpts"),
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                Some("newinstance,ptmxmode=0666,mode=0620"),
            )?;
        }
        if !has("/dev/shm") {
            let fd = root.open_path(Path::new("/dev/shm"), Create::Dir)?;
            mount(
                Some(Path::new("shm")),
                &proc_fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
                Some("mode=1777,size=65536k"),
            )?;
        }
    }
    let config_devs: Vec<devices::Dev> =
        linux.and_then(|l| l.devices().as_ref()).into_iter().flatten().map(devices::from_spec).collect::<Result<_>>()?;
    let mut devs: Vec<devices::Dev> = devices::defaults().into_iter().filter(|d| !config_devs.iter().any(|c| c.path == d.path)).collect();
    devs.extend(config_devs);
    devices::create_all(&root, &devs, bind)?;
    Ok(root)
}

/// Make the rootfs "/". pivot_root without a temporary directory (the
/// old root is stacked under the new one and detached), or MS_MOVE+chroot.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    if no_pivot {
        std::env::set_current_dir(rootfs).ctx("chdir to rootfs")?;
        mount(Some(rootfs), Path::new("/"), None, MsFlags::MS_MOVE, None)?;
        nix::unistd::chroot(".").ctx("chroot")?;
        return std::env::set_current_dir("/").ctx("chdir /");
    }
    let old = std::fs::File::open("/").ctx("opening old root")?;
    let new = std::fs::File::open(rootfs).with_ctx(|| format!("opening rootfs {}", rootfs.display()))?;
    nix::unistd::fchdir(&new).ctx("fchdir rootfs")?;
    nix::unistd::pivot_root(".", ".").ctx("pivot_root")?;
    nix::unistd::fchdir(&old).ctx("fchdir old root")?;
    // Keep unmount events from reaching the host.
    mount(None, Path::new("."), None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).ctx("detaching the old root")?;
    drop(old);
    std::env::set_current_dir("/").ctx("chdir /")
}

/// A handle on `p` in `root`; None when it does not exist (maskedPaths and
/// readonlyPaths skip what the image lacks).
fn existing(root: &Root, p: &str) -> Result<Option<std::os::fd::OwnedFd>> {
    match root.open_path(Path::new(p), Create::No) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// maskedPaths: /dev/null over files, an empty read-only tmpfs over dirs.
/// `root` is the new "/". Called inside `ProcFs::at_fd_dir` of `proc`.
pub fn mask(root: &Root, paths: &[String], proc: &procfs::Lazy) -> Result<()> {
    let mut null: Option<OwnedFd> = None;
    for p in paths {
        let Some(fd) = existing(root, p)? else { continue };
        let named = |e: Error| Error::Container(format!("linux.maskedPaths {p}: {e}"));
        let is_dir = nix::sys::stat::fstat(&fd).map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR).unwrap_or(false);
        if is_dir {
            mount(Some(Path::new("tmpfs")), &procfs::fd_path(&fd), Some("tmpfs"), MsFlags::MS_RDONLY, None).map_err(named)?;
            continue;
        }
        let null = match null.as_ref() {
            Some(n) => n,
            None => null.insert(verified_dev_null(root)?),
        };
        mounts::bind_fd(null, &fd, proc).map_err(named)?;
    }
    Ok(())
}

/// The container's /dev/null, opened without following a symlink and
/// checked to be the 1:3 character device (CVE-2025-31133): swapped for a
/// symlink or a file, the path "/dev/null" would bind whatever it names
/// (/proc/sys/kernel/core_pattern, a host file through a volume) over the
/// masked paths, writable. Refused as runc 1.2.8 refuses it. The masks are
/// then bound from this fd, so the path is never looked up again.
fn verified_dev_null(root: &Root) -> Result<OwnedFd> {
    let refuse = |what: String| {
        Error::Container(format!("linux.maskedPaths: /dev/null is not the character device 1:3 ({what}): cannot mask with it"))
    };
    let dev = root.open_path(Path::new("/dev"), Create::No).map_err(|e| refuse(e.to_string()))?;
    let flags = if crate::linux::probe::has_o_path() { libc::O_PATH } else { libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY };
    // SAFETY: valid fd and C string; the fd returned is ours.
    let fd = unsafe { libc::openat(dev.as_raw_fd(), c"null".as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(refuse(if e.raw_os_error() == Some(libc::ELOOP) { "a symlink".into() } else { e.to_string() }));
    }
    // SAFETY: just opened.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(&fd).map_err(|e| refuse(e.to_string()))?;
    let kind = st.st_mode & libc::S_IFMT;
    let (ma, mi) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    if kind != libc::S_IFCHR || (ma, mi) != (1, 3) {
        return Err(refuse(match kind {
            libc::S_IFLNK => "a symlink".into(),
            libc::S_IFREG => "a regular file".into(),
            libc::S_IFDIR => "a directory".into(),
            libc::S_IFCHR => format!("the character device {ma}:{mi}"),
            libc::S_IFBLK => format!("the block device {ma}:{mi}"),
            _ => "not a device".into(),
        }));
    }
    Ok(fd)
}

/// readonlyPaths: bind onto itself, then remount read-only. `root` is the
/// new "/". Called inside `ProcFs::at_fd_dir`: the fds are named through
/// the verified procfs, not the container's /proc.
pub fn readonly(root: &Root, paths: &[String]) -> Result<()> {
    for p in paths {
        let Some(fd) = existing(root, p)? else { continue };
        let named = |e: Error| Error::Container(format!("linux.readonlyPaths {p}: {e}"));
        let target = procfs::fd_path(&fd);
        mount(Some(&target), &target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None).map_err(named)?;
        // The bind replaced what the fd pointed at.
        let fd2 = root.open_path(Path::new(p), Create::No)?;
        let target = procfs::fd_path(&fd2);
        remount_bind(&target, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)
            .or_else(|_| remount_bind(&target, MsFlags::MS_RDONLY))
            .map_err(named)?;
    }
    Ok(())
}

/// root.readonly: remount / read-only after everything else is mounted.
pub fn readonly_root() -> Result<()> {
    remount_bind(Path::new("/"), MsFlags::MS_RDONLY).map_err(|e| Error::Container(format!("root.readonly: {e}")))
}

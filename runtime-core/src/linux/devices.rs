//! Device nodes in the container's /dev: the default set, `linux.devices`,
//! and the standard symlinks. In a user namespace mknod is not allowed, so
//! the host's node is bind-mounted instead (as runc does).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

pub use crate::bundle::devices::{check, clean, dev_path, MAX_MAJOR, MAX_MINOR};
use crate::error::{Error, Result};
use crate::linux::mounts::mount;
use crate::linux::path::{proc_fd_path, Create, Root};

#[derive(Debug, Clone)]
pub struct Dev {
    pub path: PathBuf,
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

pub fn defaults() -> Vec<Dev> {
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
        .into_iter()
        .map(|(n, ma, mi)| Dev { path: PathBuf::from("/dev").join(n), kind: 'c', major: ma, minor: mi, mode: 0o666, uid: 0, gid: 0 })
        .collect()
}

pub fn from_spec(d: &LinuxDevice) -> Result<Dev> {
    check(d).map_err(|(f, m)| Error::Container(format!("linux.devices {}: {f} {m}", d.path().display())))?;
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::P => 'p',
        LinuxDeviceType::A => return Err(Error::Container(format!("linux.devices {}: type \"a\" is not a device", d.path().display()))),
    };
    Ok(Dev {
        path: clean(d.path()),
        kind,
        major: d.major(),
        minor: d.minor(),
        mode: d.file_mode().unwrap_or(0o666),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// (`from_spec` checked both fit: no truncation here.)
fn makedev(ma: i64, mi: i64) -> libc::dev_t {
    libc::makedev(ma.clamp(0, MAX_MAJOR) as u32, mi.clamp(0, MAX_MINOR) as u32)
}

/// Create `devs` in the rootfs (by mknod, or bind from the host with
/// `bind`, as in a user namespace), then the standard /dev symlinks. The
/// parent directory is looked up once for a run of devices that share it.
pub fn create_all(root: &Root, devs: &[Dev], bind: bool) -> Result<()> {
    // mknod is subject to the umask: clear it, so the modes come out exact
    // without a chmod per node.
    // SAFETY: plain syscall.
    let old_mask = unsafe { libc::umask(0) };
    // SAFETY: plain syscalls.
    let root_ids = unsafe { libc::geteuid() == 0 && libc::getegid() == 0 };
    // (directory, its fd, whether nodes made in it come out as asked)
    let mut parent: Option<(PathBuf, OwnedFd, bool)> = None;
    let r = (|| -> Result<()> {
        for dev in devs {
            let rel = dev.path.strip_prefix("/").unwrap_or(&dev.path);
            let dir = Path::new("/").join(rel.parent().unwrap_or(Path::new("")));
            let (_, pfd, exact) = match parent.take() {
                Some(p) if p.0 == dir => parent.insert(p),
                _ => {
                    let fd = root.open_path(&dir, Create::Dir)?;
                    let exact = root_ids && nodes_come_out_as_asked(fd.as_raw_fd());
                    parent.insert((dir, fd, exact))
                }
            };
            create(pfd.as_raw_fd(), dev, bind, *exact)?;
        }
        let dev_fd = match parent.take() {
            Some((p, fd, _)) if p == Path::new("/dev") => fd,
            _ => root.open_path(Path::new("/dev"), Create::Dir)?,
        };
        symlinks(dev_fd.as_raw_fd())
    })();
    // SAFETY: plain syscall.
    unsafe { libc::umask(old_mask) };
    r
}

/// Does a node made by root in directory `dfd` get exactly root's ids and
/// the mode asked for (umask 0)? Not under a setgid directory (its group
/// is inherited) nor one with a default ACL (it replaces the umask): an
/// image's own /dev may be either.
fn nodes_come_out_as_asked(dfd: RawFd) -> bool {
    // SAFETY: fstat into a local; a size query of an xattr.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(dfd, &mut st) == 0
            && st.st_mode & libc::S_ISGID == 0
            && libc::fgetxattr(dfd, c"system.posix_acl_default".as_ptr(), std::ptr::null_mut(), 0) < 0
    }
}

/// Create `dev` in directory `pfd`. `exact`: a node made there already has
/// uid 0, gid 0 and the mode asked for.
fn create(pfd: RawFd, dev: &Dev, bind: bool, exact: bool) -> Result<()> {
    let name = dev.path.file_name().ok_or_else(|| Error::Container(format!("device path {} has no name", dev.path.display())))?;
    let cname = CString::new(name.as_bytes()).map_err(|_| Error::Container("device name has a NUL".into()))?;
    let err = |what: &str, e: std::io::Error| Error::Io { context: format!("{what} device {}", dev.path.display()), source: e };
    if bind {
        // Replace what the image put there (runc does the same).
        // SAFETY: valid fd and C string.
        unsafe { libc::unlinkat(pfd, cname.as_ptr(), 0) };
        // SAFETY: as above.
        let f = unsafe { libc::openat(pfd, cname.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW, 0o644) };
        if f < 0 {
            return Err(err("creating", std::io::Error::last_os_error()));
        }
        // SAFETY: the fd just opened is ours; the bind goes onto that file.
        let fd = unsafe { OwnedFd::from_raw_fd(f) };
        return mount(Some(&dev.path), &proc_fd_path(&fd), None, MsFlags::MS_BIND, None);
    }
    let kind = match dev.kind {
        'b' => libc::S_IFBLK,
        'p' => libc::S_IFIFO,
        _ => libc::S_IFCHR,
    };
    let mknod = || {
        // SAFETY: valid fd and C string.
        unsafe { libc::mknodat(pfd, cname.as_ptr(), kind | (dev.mode & 0o7777), makedev(dev.major, dev.minor)) == 0 }
    };
    if !mknod() {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(err("creating", e));
        }
        // Replace what the image put there (runc does the same).
        // SAFETY: valid fd and C string.
        unsafe { libc::unlinkat(pfd, cname.as_ptr(), 0) };
        if !mknod() {
            return Err(err("creating", std::io::Error::last_os_error()));
        }
    }
    if dev.uid != 0 || dev.gid != 0 || !exact {
        // SAFETY: as above.
        if unsafe { libc::fchownat(pfd, cname.as_ptr(), dev.uid, dev.gid, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            return Err(err("chown", std::io::Error::last_os_error()));
        }
    }
    // (after the chown, which clears setuid/setgid bits)
    // SAFETY: as above; the node just made is not a symlink.
    if !exact && unsafe { libc::fchmodat(pfd, cname.as_ptr(), dev.mode & 0o7777, 0) } != 0 {
        return Err(err("chmod", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err}, /dev/core and /dev/ptmx -> pts/ptmx, in
/// the directory `dfd`.
fn symlinks(dfd: RawFd) -> Result<()> {
    let mut links =
        vec![("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr")];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        let t = CString::new(target).map_err(|_| Error::Container("nul".into()))?;
        let n = CString::new(name).map_err(|_| Error::Container("nul".into()))?;
        // SAFETY: valid fd and C strings.
        if unsafe { libc::symlinkat(t.as_ptr(), dfd, n.as_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(Error::Io { context: format!("symlink /dev/{name}"), source: e });
            }
        }
    }
    // /dev/ptmx must be the container's devpts instance.
    let ptmx = CString::new("ptmx").map_err(|_| Error::Container("nul".into()))?;
    let target = CString::new("pts/ptmx").map_err(|_| Error::Container("nul".into()))?;
    // SAFETY: valid fd and C strings.
    unsafe {
        if libc::symlinkat(target.as_ptr(), dfd, ptmx.as_ptr()) != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(Error::Io { context: "symlink /dev/ptmx".into(), source: e });
            }
            libc::unlinkat(dfd, ptmx.as_ptr(), 0);
            if libc::symlinkat(target.as_ptr(), dfd, ptmx.as_ptr()) != 0 {
                return Err(Error::Io { context: "symlink /dev/ptmx".into(), source: std::io::Error::last_os_error() });
            }
        }
    }
    Ok(())
}

//! The runtime's own procfs writes (LSM labels, sysctls, oom_score_adj)
//! and its mounts after pivot_root (which name fds as /proc/self/fd/N) go
//! through one verified procfs handle, never through the path "/proc/...",
//! CVE-2025-52881 class: the container's /proc is a mount tree others may
//! reach (a shared mount propagating into it, a hook, a second container
//! in the same namespaces), and a bind mount of another procfs file over
//! /proc/self/attr/exec or /proc/sys/kernel/x still passes an fstatfs() ==
//! PROC_SUPER_MAGIC check, so the label or the value would land in, say,
//! /proc/sys/kernel/core_pattern.
//!
//! With openat2 (5.6), the handle is the /proc we see, checked to be the
//! root of a procfs, and every file is opened with RESOLVE_BENEATH |
//! RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS: a mount crossed on the way
//! (over the file or a directory above it) is refused with EXDEV, and
//! what we write to or mount through is the fd, so nothing swapped in
//! later matters. (A private procfs instance would do as well but costs a
//! superblock, ~0.2 ms, per container.)
//!
//! Without openat2, a private procfs instance (fsopen/fsmount, 5.2):
//! detached, nobody else can reach it, so nothing is mounted in it. With
//! neither (rpc-runlxc's 2.6.32), the best that kernel allows: the file
//! opened must be on the same procfs instance as /proc.
//!
//! It is opened on first use, once per process (init or exec's child):
//! by init when the config has readonly or masked paths, sysctls or an
//! oomScoreAdj, by either for an LSM label.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};
use crate::linux::probe;

const PROC_ROOT_INO: u64 = 1;

/// A procfs root we trust (see the module documentation).
pub struct ProcFs {
    root: OwnedFd,
    /// Files are opened with openat2 (else openat and a check).
    openat2: bool,
    /// Our /proc/self/fd in it, once opened (see `at_fd_dir`).
    fd_dir: std::cell::OnceCell<OwnedFd>,
}

fn fstatfs_magic(fd: RawFd) -> std::io::Result<libc::c_long> {
    // SAFETY: statfs is plain data, for which all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable buffer; a bad fd is EBADF.
    if unsafe { libc::fstatfs(fd, &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_type as libc::c_long)
}

fn dev_of(fd: RawFd) -> std::io::Result<libc::dev_t> {
    // SAFETY: stat is plain data, for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable buffer; a bad fd is EBADF.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.st_dev)
}

const NO_XDEV: u64 = libc::RESOLVE_NO_XDEV | libc::RESOLVE_NO_MAGICLINKS;

impl ProcFs {
    /// Open the handle (see the module documentation for which).
    pub fn open() -> Result<ProcFs> {
        let checked = Self::checked_proc();
        if let Ok(root) = &checked {
            // Does openat2 work here (kernel, seccomp profile)? One cheap
            // call on the root itself tells.
            if let Some(Ok(_)) = probe::openat2_beneath(root.as_raw_fd(), c".", libc::O_PATH | libc::O_DIRECTORY, NO_XDEV) {
                return checked.map(|root| ProcFs { root, openat2: true, fd_dir: Default::default() });
            }
        }
        match Self::private() {
            Some(Ok(p)) => return Ok(p),
            // A user namespace whose /proc is not fully visible, or a
            // seccomp profile without fsopen.
            Some(Err(e)) => crate::log::debug(&format!("a private procfs instance: {e}; using /proc, checked")),
            None => {}
        }
        checked.map(|root| ProcFs { root, openat2: false, fd_dir: Default::default() })
    }

    /// A private procfs instance, or None without the new mount API.
    fn private() -> Option<std::io::Result<ProcFs>> {
        const MOUNT_ATTR_NOSUID: u32 = 0x2;
        const MOUNT_ATTR_NODEV: u32 = 0x4;
        const MOUNT_ATTR_NOEXEC: u32 = 0x8;
        let root = probe::fsopen_detached(c"proc", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)?;
        Some(root.map(|root| ProcFs { root, openat2: false, fd_dir: Default::default() }))
    }

    /// "/proc", checked to be the root of a procfs.
    fn checked_proc() -> Result<OwnedFd> {
        let err = |e: std::io::Error| Error::Io { context: "opening /proc for the runtime's writes".into(), source: e };
        // SAFETY: valid C string; the fd returned is ours.
        let fd = unsafe { libc::open(c"/proc".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        // SAFETY: just opened.
        let root = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: stat is plain data, for which all zeroes is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `root` is an open fd we own and `st` a writable buffer.
        if unsafe { libc::fstat(root.as_raw_fd(), &mut st) } != 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        if fstatfs_magic(root.as_raw_fd()).map_err(err)? != libc::PROC_SUPER_MAGIC as libc::c_long || st.st_ino != PROC_ROOT_INO {
            return Err(Error::Container(
                "/proc is not the root of a procfs: refusing to write the container's settings through it".into(),
            ));
        }
        Ok(root)
    }

    /// Open `rel` (e.g. "self/attr/exec", "sys/kernel/domainname") in
    /// this procfs with `flags`, refusing any mount crossed on the way.
    pub fn open_file(&self, rel: &str, flags: i32) -> std::io::Result<OwnedFd> {
        let c = CString::new(rel).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // (openat2 refuses O_NOCTTY with O_PATH.)
        let flags = if flags & libc::O_PATH != 0 { flags | libc::O_CLOEXEC } else { flags | libc::O_CLOEXEC | libc::O_NOCTTY };
        if self.openat2 {
            match probe::openat2_beneath(self.root.as_raw_fd(), &c, flags, NO_XDEV) {
                Some(Ok(fd)) => return Ok(fd),
                Some(Err(e)) if e.raw_os_error() == Some(libc::EXDEV) => {
                    return Err(std::io::Error::other(format!("/proc/{rel} is covered by another mount (refused)")))
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        // No openat2: the best this kernel allows.
        // SAFETY: valid fd and C string; the fd returned is ours.
        let fd = unsafe { libc::openat(self.root.as_raw_fd(), c.as_ptr(), flags | libc::O_NOFOLLOW) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: just opened.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Not the same filesystem instance: something is mounted over it
        // (a bind of another file of this very procfs would pass: only
        // openat2 sees that).
        if fstatfs_magic(fd.as_raw_fd())? != libc::PROC_SUPER_MAGIC as libc::c_long
            || dev_of(fd.as_raw_fd())? != dev_of(self.root.as_raw_fd())?
        {
            return Err(std::io::Error::other(format!("/proc/{rel} is covered by another mount (refused)")));
        }
        Ok(fd)
    }

    /// Run `f` with the working directory at this process's fd directory
    /// in this procfs (opened as any file here, so a mount over it or
    /// over /proc/<pid> is refused), where a path from [`fd_path`] is the
    /// fd's magic link and nothing else is traversed. For mount(2), which
    /// takes paths: after pivot_root "/proc/self/fd/N" would go through
    /// the container's /proc, where a mount over /proc/1/fd could send a
    /// bind or a read-only remount elsewhere (and leave, say, /proc/sys
    /// writable).
    /// `what` names the caller's purpose in errors.
    pub fn at_fd_dir<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let dir_flags = if probe::has_o_path() { libc::O_PATH } else { libc::O_RDONLY };
        let dir = match self.fd_dir.get() {
            Some(d) => d,
            None => {
                let d = self
                    .open_file("self/fd", dir_flags | libc::O_DIRECTORY)
                    .map_err(|e| Error::Io { context: format!("{what}: opening /proc/self/fd for the runtime's mounts"), source: e })?;
                self.fd_dir.get_or_init(|| d)
            }
        };
        // SAFETY: valid C string; the fd returned is ours.
        let cwd = unsafe { libc::open(c".".as_ptr(), dir_flags | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if cwd < 0 {
            return Err(Error::Io { context: format!("{what}: saving the working directory"), source: std::io::Error::last_os_error() });
        }
        // SAFETY: just opened.
        let cwd = unsafe { OwnedFd::from_raw_fd(cwd) };
        // SAFETY: fchdir to a directory fd we hold.
        if unsafe { libc::fchdir(dir.as_raw_fd()) } != 0 {
            return Err(Error::Io { context: format!("{what}: entering /proc/self/fd"), source: std::io::Error::last_os_error() });
        }
        let r = f();
        // SAFETY: as above.
        if unsafe { libc::fchdir(cwd.as_raw_fd()) } != 0 {
            return Err(Error::Io { context: format!("{what}: restoring the working directory"), source: std::io::Error::last_os_error() });
        }
        r
    }

    /// Write `data` to `rel` in one write(2), as procfs files want.
    pub fn write(&self, rel: &str, data: &[u8]) -> std::io::Result<()> {
        let fd = self.open_file(rel, libc::O_WRONLY)?;
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr() as *const libc::c_void, data.len()) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if n as usize != data.len() {
            return Err(std::io::Error::other(format!("short write to /proc/{rel} ({n} of {} bytes)", data.len())));
        }
        Ok(())
    }
}

/// The path of `fd` inside [`ProcFs::at_fd_dir`].
pub fn fd_path(fd: &impl AsRawFd) -> std::path::PathBuf {
    std::path::PathBuf::from(fd.as_raw_fd().to_string())
}

/// A [`ProcFs`] opened on first use and kept for the process's other
/// writes.
#[derive(Default)]
pub struct Lazy(std::cell::OnceCell<ProcFs>);

impl Lazy {
    pub fn new() -> Lazy {
        Lazy::default()
    }

    pub fn get(&self) -> Result<&ProcFs> {
        if let Some(p) = self.0.get() {
            return Ok(p);
        }
        let p = ProcFs::open()?;
        Ok(self.0.get_or_init(|| p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_refuses_what_it_should() {
        check(&ProcFs::open().unwrap());
    }

    /// The handle of kernels without openat2: a private instance, files
    /// opened with openat (needs CAP_SYS_ADMIN).
    #[test]
    fn the_private_instance() {
        match ProcFs::private() {
            Some(Ok(p)) => check(&p),
            other => eprintln!("skip: no private procfs instance here: {:?}", other.map(|r| r.err())),
        }
    }

    fn check(p: &ProcFs) {
        let fd = p.open_file("self/status", libc::O_RDONLY).unwrap();
        let mut s = String::new();
        use std::io::Read;
        std::fs::File::from(fd).read_to_string(&mut s).unwrap();
        assert!(s.contains(&format!("Pid:\t{}", std::process::id())), "{s}");
        if p.openat2 {
            // Magic links (fd/N, exe) are refused: they lead out of procfs.
            assert!(p.open_file("self/exe", libc::O_RDONLY).is_err());
            assert!(p.open_file("../etc/passwd", libc::O_RDONLY).is_err());
            assert!(p.open_file("/etc/passwd", libc::O_RDONLY).is_err());
        }
        // Inside at_fd_dir an fd's path is its link, and the working
        // directory comes back.
        let f = std::fs::File::open("/etc/hostname").unwrap();
        let before = std::env::current_dir().unwrap();
        let seen = p.at_fd_dir("test", || Ok(std::fs::read_link(fd_path(&f)).unwrap())).unwrap();
        assert_eq!(seen, std::path::Path::new("/etc/hostname"));
        assert_eq!(std::env::current_dir().unwrap(), before);
    }
}

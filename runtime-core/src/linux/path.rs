//! Resolving a path inside the container's rootfs without ever leaving it
//! (CVE-2021-30465 class): every component is opened relative to its parent
//! with O_NOFOLLOW, symlinks are resolved by us with the rootfs as "/", and
//! the result is an fd, so a symlink swapped in afterwards changes nothing:
//! the mount goes to `/proc/self/fd/N`.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

const MAX_LINKS: usize = 255;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Create {
    No,
    Dir,
    File,
}

fn cstr(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::Container(format!("path {s:?} contains a NUL byte")))
}

#[cfg(test)]
thread_local! {
    /// Tests: walk as on a kernel without O_PATH and openat2 (2.6.32).
    static OLD_KERNEL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn old_kernel_for_test() -> bool {
    #[cfg(test)]
    return OLD_KERNEL.with(|o| o.get());
    #[cfg(not(test))]
    false
}

/// Open flags for a path handle: O_PATH where the kernel has it (2.6.39+).
/// Older kernels ignore the flag (they do not refuse it), so a read-only,
/// non-blocking open that cannot take a controlling terminal stands in: a
/// FIFO or a tty on the way must not block or become ours. A symlink then
/// fails with ELOOP (O_NOFOLLOW) instead of giving a handle on it.
fn handle_flags() -> i32 {
    if crate::linux::probe::has_o_path() && !old_kernel_for_test() {
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC
    } else {
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW | libc::O_CLOEXEC
    }
}

fn openat(dir: RawFd, name: &CString, flags: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: valid C string; the fd returned is owned.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by openat.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Directory `name` right inside the directory handle `dir`, made first
/// when `make` (an existing one is fine), as a path handle that does not
/// follow a symlink. For a directory nothing else can reach yet (a fresh
/// tmpfs of ours): no walk from a root needed.
pub fn child_dir(dir: RawFd, name: &str, make: bool) -> std::io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid fd and C string.
    if make && unsafe { libc::mkdirat(dir, c.as_ptr(), 0o755) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    openat(dir, &c, handle_flags() | libc::O_DIRECTORY)
}

fn is_symlink(fd: RawFd) -> bool {
    // SAFETY: stat is plain data, for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer; a bad fd is EBADF.
    let r = unsafe { libc::fstat(fd, &mut st) };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

fn readlinkat(dir: RawFd, name: &CString) -> std::io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buffer is valid for its length.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsStr::from_bytes(&buf)))
}

/// An open root (the rootfs, or "/" after pivot_root) that every lookup
/// starts from: opened once for all of a container's mounts, devices and
/// paths instead of once per lookup. Open it after anything is mounted
/// over the root itself (the rootfs bind), or `reopen` it after such a
/// mount, or lookups miss that mount.
pub struct Root {
    fd: std::cell::RefCell<OwnedFd>,
    path: PathBuf,
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        Ok(Root { fd: std::cell::RefCell::new(Self::open_fd(path)?), path: path.to_path_buf() })
    }

    fn open_fd(path: &Path) -> Result<OwnedFd> {
        let c = cstr(path.as_os_str())?;
        // SAFETY: valid C string.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(Error::Io { context: format!("opening rootfs {}", path.display()), source: std::io::Error::last_os_error() });
        }
        // SAFETY: just opened.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Open the root again: something was mounted over it.
    pub fn reopen(&self) -> Result<()> {
        *self.fd.borrow_mut() = Self::open_fd(&self.path)?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Resolve `path`, creating what is missing as asked for the last
    /// component (directories on the way). Returns the handle and the
    /// resolved path relative to the root (for the /proc rules and
    /// messages).
    pub fn resolve(&self, path: &Path, create: Create) -> Result<(OwnedFd, PathBuf)> {
        let (fd, real) = self.walk(path, create, true)?;
        Ok((fd, real.unwrap_or_else(|| Path::new("/").join(lexical(path)))))
    }

    /// `resolve` when only the handle is wanted (no readlink).
    pub fn open_path(&self, path: &Path, create: Create) -> Result<OwnedFd> {
        self.walk(path, create, false).map(|(fd, _)| fd)
    }

    fn walk(&self, path: &Path, create: Create, want_real: bool) -> Result<(OwnedFd, Option<PathBuf>)> {
        let root = self.path.as_path();
        let rootfd = &*self.fd.borrow();
        let dup =
            || rootfd.try_clone().map_err(|e| Error::Io { context: format!("duplicating the handle of {}", root.display()), source: e });
        let err = |e: std::io::Error, at: &Path| Error::Io {
            context: format!("resolving {} in the rootfs (at {})", path.display(), at.display()),
            source: e,
        };
        // Fast path: one openat2(RESOLVE_IN_ROOT) where the kernel has it;
        // the component walk below otherwise, or to create what is missing.
        let rel = cstr(path.strip_prefix("/").unwrap_or(path).as_os_str())?;
        if rel.as_bytes().is_empty() {
            return Ok((dup()?, Some(PathBuf::from("/"))));
        }
        let fast = if old_kernel_for_test() { None } else { crate::linux::probe::openat2_in_root(rootfd.as_raw_fd(), &rel, libc::O_PATH) };
        match fast {
            Some(Ok(fd)) => {
                if !want_real {
                    return Ok((fd, None));
                }
                // The kernel followed the symlinks: ask it where we are.
                let real =
                    std::fs::read_link(proc_fd_path(&fd)).ok().and_then(|p| p.strip_prefix(root).ok().map(|r| Path::new("/").join(r)));
                return Ok((fd, real));
            }
            // Missing, and nothing to create: the walk would only agree
            // (which component is missing, it would say; not worth a walk).
            Some(Err(e)) if create == Create::No && e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(Error::Io { context: format!("resolving {} in the rootfs", path.display()), source: e })
            }
            _ => {}
        }
        let mut pending: Vec<PathBuf> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(PathBuf::from(n)),
                Component::ParentDir => Some(PathBuf::from("..")),
                _ => None,
            })
            .rev()
            .collect();
        let mut stack: Vec<(OwnedFd, PathBuf)> = vec![];
        let mut links = 0;
        let cur = |stack: &Vec<(OwnedFd, PathBuf)>| stack.last().map(|s| s.0.as_raw_fd()).unwrap_or(rootfd.as_raw_fd());
        let cur_path = |stack: &Vec<(OwnedFd, PathBuf)>| stack.last().map(|s| s.1.clone()).unwrap_or_else(|| PathBuf::from("/"));
        while let Some(comp) = pending.pop() {
            if comp.as_os_str() == ".." {
                stack.pop();
                continue;
            }
            let name = cstr(comp.as_os_str())?;
            let last = pending.is_empty();
            let fd = match openat(cur(&stack), &name, handle_flags()) {
                Ok(fd) => Some(fd),
                // A symlink, opened without O_PATH.
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => None,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create != Create::No => {
                    let dir = !last || create == Create::Dir;
                    // SAFETY: valid C string and fd.
                    let r = unsafe {
                        if dir {
                            libc::mkdirat(cur(&stack), name.as_ptr(), 0o755)
                        } else {
                            let f = libc::openat(
                                cur(&stack),
                                name.as_ptr(),
                                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                                0o644,
                            );
                            if f >= 0 {
                                libc::close(f);
                                0
                            } else {
                                f
                            }
                        }
                    };
                    if r < 0 {
                        let e = std::io::Error::last_os_error();
                        if e.raw_os_error() != Some(libc::EEXIST) {
                            return Err(err(e, &cur_path(&stack).join(&comp)));
                        }
                    }
                    match openat(cur(&stack), &name, handle_flags()) {
                        Ok(fd) => Some(fd),
                        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => None,
                        Err(e) => return Err(err(e, &cur_path(&stack).join(&comp))),
                    }
                }
                Err(e) => return Err(err(e, &cur_path(&stack).join(&comp))),
            };
            let Some(fd) = fd.filter(|fd| !is_symlink(fd.as_raw_fd())) else {
                links += 1;
                if links > MAX_LINKS {
                    return Err(err(std::io::Error::from_raw_os_error(libc::ELOOP), &cur_path(&stack).join(&comp)));
                }
                let target = readlinkat(cur(&stack), &name).map_err(|e| err(e, &cur_path(&stack).join(&comp)))?;
                if target.is_absolute() {
                    stack.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(PathBuf::from(n)),
                        Component::ParentDir => pending.push(PathBuf::from("..")),
                        _ => {}
                    }
                }
                continue;
            };
            let p = cur_path(&stack).join(&comp);
            stack.push((fd, p));
        }
        match stack.pop() {
            Some((fd, p)) => Ok((fd, Some(p))),
            None => Ok((dup()?, Some(PathBuf::from("/")))),
        }
    }
}

/// Resolve `path` inside `root` (see `Root::resolve`), for a single lookup.
pub fn resolve(root: &Path, path: &Path, create: Create) -> Result<(OwnedFd, PathBuf)> {
    Root::open(root)?.resolve(path, create)
}

/// `path` with `.` and `..` folded (for messages: openat2 resolved it).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The path through which a resolved handle can be used as a mount target.
pub fn proc_fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    /// Lookups in a tree with escaping symlinks, a relative symlink and a
    /// FIFO stay inside the root and do not block.
    fn walk_stays_inside(tag: &str) {
        let root = std::env::temp_dir().join(format!("rpc-path-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("a/up")).unwrap();
        std::os::unix::fs::symlink("b", root.join("a/lb")).unwrap();
        let fifo = std::ffi::CString::new(root.join("a/fifo").into_os_string().into_vec()).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let (_, p) = resolve(&root, Path::new("/evil/passwd"), Create::File).unwrap();
        assert_eq!(p, Path::new("/etc/passwd"));
        assert!(root.join("etc/passwd").exists(), "created inside the root, not on the host");
        let (_, p) = resolve(&root, Path::new("/a/up/x"), Create::Dir).unwrap();
        assert_eq!(p, Path::new("/x"));
        assert!(root.join("x").is_dir());
        let (_, p) = resolve(&root, Path::new("/a/../../a/b"), Create::No).unwrap();
        assert_eq!(p, Path::new("/a/b"));
        let (_, p) = resolve(&root, Path::new("/a/lb"), Create::No).unwrap();
        assert_eq!(p, Path::new("/a/b"));
        let (_, p) = resolve(&root, Path::new("/a/fifo"), Create::No).unwrap();
        assert_eq!(p, Path::new("/a/fifo"));
        assert!(resolve(&root, Path::new("/nope"), Create::No).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn symlinks_stay_inside_root() {
        walk_stays_inside("new");
    }

    /// On a kernel without O_PATH and openat2 (rpc-runlxc's 2.6.32) the
    /// walk opens components read-only: symlinks (ELOOP there) are still
    /// followed inside the root, and a FIFO does not block it.
    #[test]
    fn the_walk_without_o_path_or_openat2() {
        OLD_KERNEL.with(|o| o.set(true));
        assert_eq!(handle_flags() & libc::O_PATH, 0);
        walk_stays_inside("old");
        OLD_KERNEL.with(|o| o.set(false));
    }
}

//! The runtime's own binary, out of a container's reach (CVE-2019-5736
//! with CAP_SYS_PTRACE).
//!
//! init and every `exec`'d process are forks of the runtime: until they
//! exec the trampoline, `/proc/<pid>/exe` in the container's pid namespace
//! names our binary. Non-dumpable keeps ordinary container processes out,
//! but not one holding CAP_SYS_PTRACE in the host's user namespace (a
//! container without a user namespace that was granted it): it can open
//! the link while `exec` runs, keep the handle, and write the host's binary
//! once no runtime is executing it.
//!
//! So the verbs that put a process into a container (create, run, exec)
//! first make sure that the image they run from cannot be written through
//! any handle: if `/proc/self/exe` is not already read-only, the runtime
//! re-executes itself once, before doing anything else, through
//!
//! 1. a private read-only overlayfs of the binary's directory (kernel 5.2+
//!    mount API; no copy: the pages are the installed binary's), as runc
//!    1.2 does. A lower-only overlayfs has a read-only superblock that no
//!    remount can make writable, and its detached mount is in no
//!    namespace a container could reach;
//! 2. or a sealed memfd copy (3.17+): F_SEAL_WRITE forbids writes for good;
//! 3. or, on older kernels, an unlinked private copy in the state root:
//!    writing it spoils nothing but that copy, which nobody runs again.
//!
//! The runtime does not exec again where the kernel lets it take the view
//! as its image in place (`adopt.rs`: its mappings and `/proc/self/exe`
//! moved onto the view; ~0.3 ms CPU where the re-exec cost 0.7-1.3 ms);
//! elsewhere it re-executes through the view, finds its image read-only and
//! goes on. A binary installed on a read-only mount (or one already sealed
//! by a supervisor) is used as it is, at the cost of three system calls.

use std::ffi::{CStr, CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use crate::error::{Error, Result};

mod adopt;

/// Set across the re-exec (and removed at once by the new image), so that a
/// view that is not read-only after all is an error, not an exec loop.
const MARKER: &str = "_RPC_EXE_SEALED";

/// How the running image is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// On a read-only mount or superblock (installed so, or our overlayfs).
    ReadOnlyMount,
    /// A memfd sealed against writes.
    SealedMemfd,
    /// An unlinked copy of our own.
    PrivateCopy,
}

/// How `/proc/self/exe` is protected now, if it is.
pub fn current() -> Result<Option<Seal>> {
    let exe = open_exe()?;
    classify(exe.as_raw_fd())
}

fn open_exe() -> Result<OwnedFd> {
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(c"/proc/self/exe".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io("opening /proc/self/exe"));
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How the file behind `fd` is protected against writes, if it is (an
/// `O_PATH` handle will do).
pub fn protection(fd: RawFd) -> Result<Option<Seal>> {
    classify(fd)
}

/// A handle to `program` through which, and through whose
/// /proc/<pid>/exe once exec'd, nobody can write it: the program itself
/// when it is already protected, else a read-only overlayfs view of it,
/// a sealed memfd copy, or an unlinked private copy in `scratch` (as for
/// the runtime's own image in [`ensure`]). For programs a backend execs
/// into a container (`process::step::ExecStep`).
pub fn seal_program(program: &Path, scratch: &Path) -> Result<OwnedFd> {
    let c = cstr(program.as_os_str().as_bytes(), "program path")?;
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io(&format!("opening {}", program.display())));
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if classify(fd.as_raw_fd())?.is_some() {
        return Ok(fd);
    }
    // (The view opens the last component without following it.)
    let real = std::fs::canonicalize(program).map_err(|e| Error::Io { context: format!("resolving {}", program.display()), source: e })?;
    let view = overlay(&real, scratch).or_else(|o| match memfd_copy(fd.as_raw_fd()) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => private_copy(fd.as_raw_fd(), scratch),
        Err(m) => private_copy(fd.as_raw_fd(), scratch)
            .map_err(|e| Error::Container(format!("sealing {}: overlayfs view: {o}; memfd copy: {m}; {e}", program.display()))),
    })?;
    Ok(view)
}

fn classify(fd: RawFd) -> Result<Option<Seal>> {
    // SAFETY: fstatvfs into a local.
    let mut sfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and buffer.
    if unsafe { libc::fstatvfs(fd, &mut sfs) } != 0 {
        return Err(io("fstatvfs of /proc/self/exe"));
    }
    // The mount's flag or the superblock's: either refuses every write.
    if sfs.f_flag & libc::ST_RDONLY != 0 {
        return Ok(Some(Seal::ReadOnlyMount));
    }
    // SAFETY: plain fcntl; EINVAL where the file cannot be sealed.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    if seals >= 0 && seals & libc::F_SEAL_WRITE != 0 {
        return Ok(Some(Seal::SealedMemfd));
    }
    // SAFETY: fstat into a local.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and buffer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io("fstat of /proc/self/exe"));
    }
    if st.st_nlink == 0 {
        return Ok(Some(Seal::PrivateCopy));
    }
    Ok(None)
}

/// Return when the running image is out of a container's reach; else
/// re-execute through a read-only view (and do not return). `scratch` is a
/// directory of ours (the state root): the overlay's second, unused layer
/// and, on old kernels, where the private copy is made.
pub fn ensure(scratch: &Path) -> Result<()> {
    // How the image was found or made protected; once set, later calls (the
    // verb's dispatch checks again) return at once.
    static SEALED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(how) = SEALED.get() {
        // (The first call may come before the log is open: say it now.)
        crate::log::debug(&format!("runtime image is protected: {how}"));
        return Ok(());
    }
    let again = match std::env::var_os(MARKER) {
        Some(v) => {
            std::env::remove_var(MARKER);
            Some(v.to_string_lossy().into_owned())
        }
        None => None,
    };
    let exe = open_exe()?;
    if let Some(how) = classify(exe.as_raw_fd())? {
        let via = again.map(|h| format!(", re-executed through a {h}")).unwrap_or_default();
        let _ = SEALED.set(format!("{how:?}{via}"));
        crate::log::debug(&format!("runtime image is protected: {how:?}{via}"));
        return Ok(());
    }
    if again.is_some() {
        return Err(Error::Container("re-executed through a sealed view of the runtime binary, yet /proc/self/exe is writable".into()));
    }
    let view = std::fs::read_link("/proc/self/exe")
        .map_err(|e| Error::Io { context: "readlink /proc/self/exe".into(), source: e })
        .and_then(|target| overlay(&target, scratch));
    let (fd, how) = match view {
        Ok(fd) => (fd, "read-only overlayfs"),
        Err(o) => {
            // (The log may not be open yet: the reasons go into the error.)
            let why =
                |e: Error, m: &str| Error::Container(format!("sealing the runtime binary: overlayfs view: {o}; memfd copy: {m}; {e}"));
            match memfd_copy(exe.as_raw_fd()) {
                Ok(Some(fd)) => (fd, "sealed memfd"),
                Ok(None) => (private_copy(exe.as_raw_fd(), scratch).map_err(|e| why(e, "no memfd"))?, "private unlinked copy"),
                Err(m) => (private_copy(exe.as_raw_fd(), scratch).map_err(|e| why(e, &m.to_string()))?, "private unlinked copy"),
            }
        }
    };
    drop(exe);
    // In place where the kernel allows it. The view is checked like any
    // image first: once prctl accepted it, it is what /proc/self/exe names.
    let adopted = match classify(fd.as_raw_fd())? {
        Some(seal) => adopt::adopt(fd.as_raw_fd()).map(|()| seal),
        None => return Err(Error::Container(format!("the {how} of the runtime binary is writable"))),
    };
    match adopted {
        Ok(seal) => {
            let _ = SEALED.set(format!("{seal:?}, a {how} taken as the image in place"));
            Ok(())
        }
        // Why not in place goes with the marker, into the new image's log.
        Err(e) => Err(reexec(fd.as_raw_fd(), &format!("{how} (not taken in place: {e})"))),
    }
}

fn io(context: &str) -> Error {
    Error::Io { context: context.into(), source: std::io::Error::last_os_error() }
}

fn cstr(s: &[u8], what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Container(format!("{what} contains a NUL byte")))
}

/// fsopen + fsconfig + fsmount: a detached, read-only, lower-only overlayfs
/// of the binary's directory (and `scratch`, which overlayfs needs as a
/// second layer and which lies beneath); returns a read-only handle to the
/// binary `target` through it (not O_PATH: `adopt` maps it and names it
/// the image).
fn overlay(target: &Path, scratch: &Path) -> Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
    const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(Error::Container(format!("binary path {}: no directory", target.display())));
    };
    let name = cstr(name.as_bytes(), "runtime binary name")?;
    // SAFETY: valid C string.
    let ctx = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) };
    if ctx < 0 {
        return Err(io("fsopen overlay"));
    }
    // SAFETY: a fresh fd we own.
    let ctx = unsafe { OwnedFd::from_raw_fd(ctx as RawFd) };
    let set = |key: &CStr, value: &CStr| -> Result<()> {
        // SAFETY: valid fd and C strings.
        let r = unsafe { libc::syscall(libc::SYS_fsconfig, ctx.as_raw_fd(), FSCONFIG_SET_STRING, key.as_ptr(), value.as_ptr(), 0) };
        if r < 0 {
            return Err(io(&format!("overlayfs {}={}", key.to_string_lossy(), value.to_string_lossy())));
        }
        Ok(())
    };
    // The binary's layer on top, so that nothing of `scratch` shadows it.
    let upper = cstr(dir.as_os_str().as_bytes(), "runtime binary directory")?;
    let lower = cstr(scratch.as_os_str().as_bytes(), "--root")?;
    if set(c"lowerdir+", &upper).and_then(|()| set(c"lowerdir+", &lower)).is_err() {
        // Before 6.8: one string, with ':' and '\' escaped.
        let esc = |p: &Path| {
            let mut v = Vec::new();
            for &b in p.as_os_str().as_bytes() {
                if b == b':' || b == b'\\' {
                    v.push(b'\\');
                }
                v.push(b);
            }
            v
        };
        let mut both = esc(dir);
        both.push(b':');
        both.extend(esc(scratch));
        set(c"lowerdir", &cstr(&both, "overlayfs lowerdir")?)?;
    }
    // Opportunistic: avoids xino warnings when the layers are on two
    // filesystems.
    let _ = set(c"xino", c"off");
    // SAFETY: valid fd.
    if unsafe { libc::syscall(libc::SYS_fsconfig, ctx.as_raw_fd(), FSCONFIG_CMD_CREATE, 0usize, 0usize, 0) } < 0 {
        return Err(io("creating the overlayfs view of the runtime binary"));
    }
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    // SAFETY: valid fd.
    let mnt = unsafe { libc::syscall(libc::SYS_fsmount, ctx.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if mnt < 0 {
        return Err(io("fsmount of the overlayfs view"));
    }
    // SAFETY: a fresh fd we own.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as RawFd) };
    // SAFETY: valid fd and C string.
    let fd = unsafe { libc::openat(mnt.as_raw_fd(), name.as_ptr(), libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io(&format!("opening {} through the overlayfs view", name.to_string_lossy())));
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A memfd copy of the binary, sealed; None without memfd (before 3.17).
fn memfd_copy(exe: RawFd) -> Result<Option<OwnedFd>> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let mut fd = -1;
    // MFD_EXEC (6.3+) keeps vm.memfd_noexec from making it non-executable.
    for flags in [base | MFD_EXEC, base] {
        // SAFETY: valid C string.
        fd = unsafe { libc::syscall(libc::SYS_memfd_create, c"rpc-runtime".as_ptr(), flags) } as RawFd;
        if fd >= 0 {
            break;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINVAL) => continue,
            Some(libc::ENOSYS | libc::EACCES | libc::EPERM) => return Ok(None),
            _ => return Err(io("memfd_create for the runtime binary")),
        }
    }
    if fd < 0 {
        return Ok(None);
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    copy(exe, fd.as_raw_fd())?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: plain fcntl on our fd.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io("sealing the memfd copy of the runtime binary"));
    }
    Ok(Some(fd))
}

/// An unlinked, read-only copy of the binary in `dir`.
fn private_copy(exe: RawFd, dir: &Path) -> Result<OwnedFd> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io { context: format!("creating {}", dir.display()), source: e })?;
    // SAFETY: plain call.
    let name = dir.join(format!(".rpc-runtime.{}", unsafe { libc::getpid() }));
    let c = cstr(name.as_os_str().as_bytes(), "copy path")?;
    // SAFETY: valid C string.
    let w = unsafe { libc::open(c.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW, 0o500) };
    if w < 0 {
        return Err(io(&format!("creating {}", name.display())));
    }
    // SAFETY: a fresh fd we own.
    let w = unsafe { OwnedFd::from_raw_fd(w) };
    let r = copy(exe, w.as_raw_fd()).map_err(|e| Error::Container(format!("{e} (to {})", name.display()))).and_then(|()| {
        drop(w);
        // SAFETY: valid C string.
        let r = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
        if r < 0 {
            return Err(io(&format!("opening {}", name.display())));
        }
        // SAFETY: a fresh fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(r) })
    });
    // SAFETY: valid C string.
    unsafe { libc::unlink(c.as_ptr()) };
    r
}

/// Copy all of `from` (from its start) to `to`.
fn copy(from: RawFd, to: RawFd) -> Result<()> {
    let mut off: libc::off_t = 0;
    loop {
        // SAFETY: valid fds and offset pointer.
        let n = unsafe { libc::sendfile(to, from, &mut off, 1 << 30) };
        match n {
            0 => return Ok(()),
            n if n > 0 => continue,
            _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
            _ => return Err(io("copying the runtime binary")),
        }
    }
}

/// execveat the handle with our own argv and environment (plus the
/// marker); returns only the error.
fn reexec(fd: RawFd, how: &str) -> Error {
    let args: Vec<CString> = std::env::args_os().filter_map(|a| CString::new(a.into_vec()).ok()).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv: OsString = k;
            kv.push("=");
            kv.push(v);
            CString::new(kv.into_vec()).ok()
        })
        .collect();
    env.extend(CString::new(format!("{MARKER}={how}")));
    let argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    // Through procfs first (execveat came in 3.19), the handle itself
    // where /proc is not mounted.
    let Ok(via_proc) = CString::new(format!("/proc/self/fd/{fd}")) else {
        return Error::Container("fd path".into());
    };
    // SAFETY: NUL-terminated arrays of pointers into live CStrings.
    unsafe {
        libc::execve(via_proc.as_ptr(), argv.as_ptr(), envp.as_ptr());
        if matches!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) {
            libc::syscall(libc::SYS_execveat, fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH);
        }
    }
    io("re-executing the runtime through its sealed view")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind of copy is classified as protected, and an ordinary
    /// writable file is not.
    #[test]
    fn copies_are_protected_and_a_plain_file_is_not() {
        let dir = std::env::temp_dir().join(format!("rpc-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = open_exe().unwrap();
        if let Some(m) = memfd_copy(exe.as_raw_fd()).unwrap() {
            assert_eq!(classify(m.as_raw_fd()).unwrap(), Some(Seal::SealedMemfd));
        }
        let p = private_copy(exe.as_raw_fd(), &dir).unwrap();
        assert_eq!(classify(p.as_raw_fd()).unwrap(), Some(Seal::PrivateCopy));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "the private copy kept a name");
        let plain = dir.join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let f = std::fs::File::open(&plain).unwrap();
        assert_eq!(classify(f.as_raw_fd()).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A writable program is handed over through a protected handle that
    /// execs the same bytes; a program already protected as is.
    #[test]
    fn seal_program_gives_a_protected_handle() {
        let dir = std::env::temp_dir().join(format!("rpc-seal-prog-{}", std::process::id()));
        let scratch = std::env::temp_dir().join(format!("rpc-seal-scratch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        let prog = dir.join("prog");
        std::fs::copy("/bin/true", &prog).unwrap();
        let fd = seal_program(&prog, &scratch).unwrap();
        assert!(protection(fd.as_raw_fd()).unwrap().is_some(), "{:?}", std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())));
        let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
        assert_eq!(std::fs::read(&via).unwrap(), std::fs::read(&prog).unwrap());
        assert!(std::process::Command::new(&via).status().unwrap().success());
        let again = seal_program(Path::new(&via), &scratch).unwrap();
        assert!(protection(again.as_raw_fd()).unwrap().is_some());
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&scratch);
    }
}

//! CVE-2019-5736: the container's program must never be started by a
//! process whose /proc/self/exe is the runtime's binary. init and exec are
//! forks of the runtime, so an image whose program is a script starting
//! `#!/proc/self/exe` (or an ELF whose interpreter is /proc/self/exe)
//! would make the kernel run the host's runtime binary inside the
//! container, where a second process could open it through
//! /proc/<pid>/exe and overwrite it once the runtime has exited.
//!
//! runc and crun re-execute themselves from a sealed memfd copy of their
//! binary. We do not re-execute (the process model forbids it and it
//! costs a copy of the binary per container); instead the last step execs
//! a 441-byte trampoline held in a sealed memfd, which execs the program.
//! Whatever the program's interpreter, /proc/self/exe then names the
//! trampoline, which cannot be written (F_SEAL_WRITE) and holds nothing.
//! Capabilities, no_new_privs, seccomp, personality and fds pass through
//! the extra exec unchanged (exec is idempotent on them).
//!
//! The trampoline runs only when argv[0] is MARKER: started by the kernel
//! as a program's interpreter (`#!/proc/self/exe` or PT_INTERP naming it,
//! since /proc/self/exe is the trampoline while it execs), it would exec
//! the program, which names it again, forever, at 100% CPU as the
//! container's pid 1 (which ignores SIGTERM). It exits 126 with a message.
//!
//! Kernels without memfd (rpc-runlxc's 2.6.32) get the same image in an
//! unlinked private file in the container's state directory: writing it
//! would only spoil that copy.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;

use crate::error::{Error, Result};

/// The machine code of trampoline.S (x86_64, position independent).
#[cfg(target_arch = "x86_64")]
const CODE: [u8; 441] = [
    0x48, 0x8b, 0x0c, 0x24, 0x48, 0x8d, 0x54, 0xcc, 0x10, 0x48, 0x83, 0xf9, 0x02, 0x0f, 0x82, 0x9b, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x7c,
    0x24, 0x08, 0x48, 0x8d, 0x35, 0x86, 0x01, 0x00, 0x00, 0x8a, 0x06, 0x3a, 0x07, 0x0f, 0x85, 0x85, 0x00, 0x00, 0x00, 0x48, 0xff, 0xc6,
    0x48, 0xff, 0xc7, 0x84, 0xc0, 0x75, 0xec, 0x48, 0x8b, 0x5c, 0x24, 0x10, 0x48, 0x8d, 0x74, 0x24, 0x18, 0x48, 0x89, 0xdf, 0xb8, 0x3b,
    0x00, 0x00, 0x00, 0x0f, 0x05, 0xf7, 0xd8, 0x41, 0x89, 0xc4, 0x48, 0x8d, 0x35, 0xd5, 0x00, 0x00, 0x00, 0xba, 0x05, 0x00, 0x00, 0x00,
    0xe8, 0xbe, 0x00, 0x00, 0x00, 0xe8, 0xa3, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x35, 0xc4, 0x00, 0x00, 0x00, 0xba, 0x0f, 0x00, 0x00, 0x00,
    0xe8, 0xa8, 0x00, 0x00, 0x00, 0x48, 0x83, 0xec, 0x20, 0x48, 0x8d, 0x7c, 0x24, 0x1f, 0xc6, 0x07, 0x0a, 0x44, 0x89, 0xe0, 0xb9, 0x0a,
    0x00, 0x00, 0x00, 0x31, 0xd2, 0xf7, 0xf1, 0x80, 0xc2, 0x30, 0x48, 0xff, 0xcf, 0x88, 0x17, 0x85, 0xc0, 0x75, 0xf0, 0x48, 0x89, 0xfe,
    0x48, 0x8d, 0x54, 0x24, 0x20, 0x48, 0x29, 0xfa, 0xe8, 0x74, 0x00, 0x00, 0x00, 0xbf, 0x7f, 0x00, 0x00, 0x00, 0xeb, 0x50, 0x48, 0x8b,
    0x02, 0x48, 0x83, 0xc2, 0x08, 0x48, 0x85, 0xc0, 0x75, 0xf4, 0x31, 0xdb, 0x48, 0x8b, 0x02, 0x48, 0x85, 0xc0, 0x74, 0x0e, 0x48, 0x83,
    0xc2, 0x10, 0x48, 0x83, 0xf8, 0x1f, 0x75, 0xee, 0x48, 0x8b, 0x5a, 0xf8, 0x48, 0x8d, 0x35, 0x4f, 0x00, 0x00, 0x00, 0xba, 0x05, 0x00,
    0x00, 0x00, 0xe8, 0x38, 0x00, 0x00, 0x00, 0xe8, 0x1d, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x35, 0x4d, 0x00, 0x00, 0x00, 0xba, 0x69, 0x00,
    0x00, 0x00, 0xe8, 0x22, 0x00, 0x00, 0x00, 0xbf, 0x7e, 0x00, 0x00, 0x00, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x85, 0xdb,
    0x74, 0x10, 0x48, 0x89, 0xde, 0x31, 0xd2, 0x80, 0x3c, 0x13, 0x00, 0x74, 0x06, 0x48, 0xff, 0xc2, 0xeb, 0xf5, 0xc3, 0xbf, 0x02, 0x00,
    0x00, 0x00, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xc3, 0x65, 0x78, 0x65, 0x63, 0x20, 0x20, 0x66, 0x61, 0x69, 0x6c, 0x65, 0x64,
    0x3a, 0x20, 0x65, 0x72, 0x72, 0x6e, 0x6f, 0x20, 0x20, 0x66, 0x61, 0x69, 0x6c, 0x65, 0x64, 0x3a, 0x20, 0x72, 0x65, 0x66, 0x75, 0x73,
    0x65, 0x64, 0x20, 0x74, 0x6f, 0x20, 0x72, 0x75, 0x6e, 0x20, 0x74, 0x68, 0x65, 0x20, 0x72, 0x75, 0x6e, 0x74, 0x69, 0x6d, 0x65, 0x27,
    0x73, 0x20, 0x65, 0x78, 0x65, 0x63, 0x20, 0x74, 0x72, 0x61, 0x6d, 0x70, 0x6f, 0x6c, 0x69, 0x6e, 0x65, 0x20, 0x61, 0x73, 0x20, 0x69,
    0x74, 0x73, 0x20, 0x69, 0x6e, 0x74, 0x65, 0x72, 0x70, 0x72, 0x65, 0x74, 0x65, 0x72, 0x20, 0x28, 0x23, 0x21, 0x2f, 0x70, 0x72, 0x6f,
    0x63, 0x2f, 0x73, 0x65, 0x6c, 0x66, 0x2f, 0x65, 0x78, 0x65, 0x20, 0x6f, 0x72, 0x20, 0x50, 0x54, 0x5f, 0x49, 0x4e, 0x54, 0x45, 0x52,
    0x50, 0x29, 0x0a, 0x72, 0x70, 0x63, 0x20, 0x65, 0x78, 0x65, 0x63, 0x2d, 0x74, 0x72, 0x61, 0x6d, 0x70, 0x6f, 0x6c, 0x69, 0x6e, 0x65,
    0x00,
];

const EHDR: usize = 64;
const PHDR: usize = 56;
const BASE: u64 = 0x40_0000;

/// A static ELF64 executable: one read+exec PT_LOAD covering the file, and
/// PT_GNU_STACK so the stack is not executable (older kernels would
/// otherwise set READ_IMPLIES_EXEC, which the program would inherit).
#[cfg(target_arch = "x86_64")]
pub fn image() -> Vec<u8> {
    let code_off = EHDR + 2 * PHDR;
    let total = (code_off + CODE.len()) as u64;
    let mut v = Vec::with_capacity(total as usize);
    // e_ident: magic, 64-bit, little endian, version 1, System V.
    v.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    v.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&(BASE + code_off as u64).to_le_bytes()); // e_entry
    v.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    v.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    v.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for h in [EHDR as u16, PHDR as u16, 2, 0, 0, 0] {
        v.extend_from_slice(&h.to_le_bytes()); // ehsize phentsize phnum shentsize shnum shstrndx
    }
    let phdr = |v: &mut Vec<u8>, typ: u32, flags: u32, size: u64, align: u64| {
        v.extend_from_slice(&typ.to_le_bytes());
        v.extend_from_slice(&flags.to_le_bytes());
        let (off, addr) = if typ == 1 { (0, BASE) } else { (0, 0) };
        for x in [off, addr, addr, size, size, align] {
            v.extend_from_slice(&x.to_le_bytes());
        }
    };
    phdr(&mut v, 1, 5, total, 0x1000); // PT_LOAD, R+X
    phdr(&mut v, 0x6474_e551, 6, 0, 16); // PT_GNU_STACK, RW
    v.extend_from_slice(&CODE);
    v
}

/// argv[0] of every run of the trampoline: the kernel never gives an
/// interpreter an argv[0] with a blank in it.
pub const MARKER: &CStr = c"rpc exec-trampoline";

/// The sealed executable image, ready to exec.
pub struct Trampoline(OwnedFd);

fn io(context: &str) -> Error {
    Error::Io { context: context.into(), source: std::io::Error::last_os_error() }
}

impl Trampoline {
    /// Make the trampoline: a sealed memfd, or (no memfd) an unlinked file
    /// in `dir_fd` (/tmp when it is -1). None where we have no trampoline for the architecture.
    pub fn new(dir_fd: RawFd) -> Result<Option<Trampoline>> {
        #[cfg(target_arch = "x86_64")]
        {
            let img = image();
            if let Some(t) = Self::memfd(&img)? {
                return Ok(Some(t));
            }
            Self::file(dir_fd, &img).map(Some)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = dir_fd;
            Ok(None)
        }
    }

    fn memfd(img: &[u8]) -> Result<Option<Trampoline>> {
        const MFD_EXEC: libc::c_uint = 0x10;
        let name = c"rpc-exec";
        let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        // MFD_EXEC (6.3+) keeps vm.memfd_noexec=1 from sealing it
        // non-executable; older kernels refuse the flag with EINVAL.
        let mut fd = -1;
        for flags in [base | MFD_EXEC, base] {
            // SAFETY: valid C string.
            fd = unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) } as RawFd;
            if fd >= 0 {
                break;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINVAL) => continue,
                // No memfd (before 3.17), or memfd execution forbidden.
                Some(e @ (libc::ENOSYS | libc::EACCES | libc::EPERM)) => {
                    crate::log::debug(&format!(
                        "memfd_create: {}: the exec trampoline is an unlinked private file",
                        std::io::Error::from_raw_os_error(e)
                    ));
                    return Ok(None);
                }
                _ => return Err(io("memfd_create for the exec trampoline")),
            }
        }
        if fd < 0 {
            return Ok(None);
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        write_all(fd.as_raw_fd(), img)?;
        let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: plain fcntl on our fd.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(io("sealing the exec trampoline"));
        }
        Ok(Some(Trampoline(fd)))
    }

    fn file(dir_fd: RawFd, img: &[u8]) -> Result<Trampoline> {
        let _tmp;
        let dir_fd = if dir_fd >= 0 {
            dir_fd
        } else {
            _tmp =
                std::fs::File::open("/tmp").map_err(|e| Error::Io { context: "opening /tmp for the exec trampoline".into(), source: e })?;
            _tmp.as_raw_fd()
        };
        // SAFETY: plain call.
        let name = CString::new(format!(".exec-trampoline.{}", unsafe { libc::getpid() })).map_err(|_| io("trampoline name"))?;
        // Executable by any user (the process may switch to one before
        // it execs us), as a memfd is; read-only, and unlinked below.
        // SAFETY: valid C string and dir fd.
        let w = unsafe { libc::openat(dir_fd, name.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC, 0o555) };
        if w < 0 {
            return Err(io("creating the exec trampoline"));
        }
        // SAFETY: a fresh fd we own.
        let w = unsafe { OwnedFd::from_raw_fd(w) };
        // (whatever the caller's umask)
        // SAFETY: plain call on our fd.
        let mode = unsafe { libc::fchmod(w.as_raw_fd(), 0o555) };
        let r = if mode != 0 { Err(io("chmod of the exec trampoline")) } else { Ok(()) };
        let r = r.and_then(|_| write_all(w.as_raw_fd(), img)).and_then(|_| {
            drop(w);
            // SAFETY: valid C string and dir fd.
            let r = unsafe { libc::openat(dir_fd, name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if r < 0 {
                return Err(io("opening the exec trampoline"));
            }
            // SAFETY: a fresh fd we own.
            Ok(Trampoline(unsafe { OwnedFd::from_raw_fd(r) }))
        });
        // SAFETY: valid C string and dir fd.
        unsafe { libc::unlinkat(dir_fd, name.as_ptr(), 0) };
        r
    }

    /// Its path through procfs: exec it with argv [MARKER, program path,
    /// program argv...].
    pub fn proc_path(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }

    /// Exec `path` with `argv` and `envp` through the trampoline. Returns
    /// only on failure. execveat of the handle first, execve of
    /// /proc/self/fd/N where that is missing or refused.
    pub fn exec(&self, path: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> std::io::Error {
        let mut targv: Vec<*const libc::c_char> = Vec::with_capacity(argv.len() + 2);
        targv.push(MARKER.as_ptr());
        targv.push(path.as_ptr());
        targv.extend_from_slice(argv);
        let Ok(via_proc) = CString::new(self.proc_path().into_os_string().into_vec()) else {
            return std::io::Error::from_raw_os_error(libc::EINVAL);
        };
        // SAFETY: NUL-terminated pointer arrays into live CStrings.
        unsafe {
            // The handle itself: a path through the container's /proc
            // could be overmounted to name something else (the runtime's
            // own binary, CVE-2025-52881's class).
            libc::syscall(libc::SYS_execveat, self.0.as_raw_fd(), c"".as_ptr(), targv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH);
            let e = std::io::Error::last_os_error();
            // No execveat (before 3.19), or a profile that allows only
            // execve: through procfs.
            if !matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM | libc::EACCES)) {
                return e;
            }
            libc::execve(via_proc.as_ptr(), targv.as_ptr(), envp.as_ptr());
        }
        std::io::Error::last_os_error()
    }
}

fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        // SAFETY: valid buffer.
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const _, buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(io("writing the exec trampoline"));
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// The embedded bytes are what trampoline.S assembles to.
    #[test]
    fn code_matches_the_assembly_source() {
        let dir = std::env::temp_dir().join(format!("rpc-tramp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src/linux/process/trampoline.S");
        let obj = dir.join("t.o");
        let bin = dir.join("t.bin");
        let ok = Command::new("as").arg(src).arg("-o").arg(&obj).status().is_ok_and(|s| s.success())
            && Command::new("objcopy").args(["-O", "binary", "-j", ".text"]).arg(&obj).arg(&bin).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skip: no `as`/`objcopy` to assemble trampoline.S");
            return;
        }
        assert_eq!(std::fs::read(&bin).unwrap(), CODE, "trampoline.S and CODE differ: re-embed the bytes");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Run a trampoline from a sealed memfd: it execs the program with the
    /// argv after the path, reports a failed exec, and cannot be written.
    #[test]
    fn execs_the_program_and_is_sealed() {
        let t = Trampoline::new(libc::AT_FDCWD).unwrap().unwrap();
        let fd = t.0.as_raw_fd();
        let path = format!("/proc/self/fd/{fd}");
        use std::io::Write;
        let w = std::fs::OpenOptions::new().write(true).open(&path).and_then(|mut f| f.write_all(b"x"));
        assert!(w.is_err(), "wrote to a sealed trampoline");
        // A child runs the trampoline, as init does.
        let marker = MARKER.to_str().unwrap();
        let out = Command::new(&path).arg0(marker).args(["/bin/echo", "ARGV0", "hello", "there"]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello there\n");
        let out = Command::new(&path).arg0(marker).args(["/nonexistent", "x"]).output().unwrap();
        assert_eq!(out.status.code(), Some(127));
        assert_eq!(String::from_utf8_lossy(&out.stderr), "exec /nonexistent failed: errno 2\n");
        // Without the marker (as the kernel runs an interpreter): refused,
        // naming the program the kernel was asked to run.
        for argv0 in ["/proc/self/exe", "rpc", "rpc exec-trampolinX", "rpc exec-trampoline "] {
            let out = Command::new(&path).arg0(argv0).args(["/bin/echo", "x"]).output().unwrap();
            assert_eq!(out.status.code(), Some(126), "{argv0:?}");
            assert!(out.stdout.is_empty(), "{argv0:?} ran the program");
            assert_eq!(
                String::from_utf8_lossy(&out.stderr),
                format!(
                    "exec {path} failed: refused to run the runtime's exec trampoline as its interpreter (#!/proc/self/exe or PT_INTERP)\n"
                )
            );
        }
        // The marker alone (no program) is refused too.
        let out = Command::new(&path).arg0(marker).output().unwrap();
        assert_eq!(out.status.code(), Some(126));
    }

    /// Without memfd: an unlinked file, executable by any user whatever
    /// the umask (a process switches user before it execs the trampoline).
    #[test]
    fn the_file_fallback_is_unlinked_and_executable_by_anyone() {
        let dir = std::env::temp_dir().join(format!("rpc-tramp-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = std::fs::File::open(&dir).unwrap();
        // SAFETY: plain calls.
        let old = unsafe { libc::umask(0o077) };
        let t = Trampoline::file(d.as_raw_fd(), &image());
        // SAFETY: umask only sets this process's file mode mask.
        unsafe { libc::umask(old) };
        let t = t.unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "left a name behind");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.proc_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o555);
        // (ETXTBSY while a parallel test's fork still holds our write fd)
        let mut tries = 0;
        let out = loop {
            match Command::new(t.proc_path()).arg0(MARKER.to_str().unwrap()).args(["/bin/echo", "ARGV0", "ok"]).output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => break r.unwrap(),
            }
        };
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

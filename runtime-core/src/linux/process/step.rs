//! The exec step: a backend's own program as the container's process, in
//! place of `process.args` (crun's krun handler, youki's executor). init
//! does all the container's setup as usual (namespaces, cgroups, rootfs,
//! pivot_root, user, capabilities, no_new_privs, rlimits, LSM label,
//! cwd), parks until `start`, then execs the step instead of the user's
//! program; its exit status is the container's. rpc-runv runs its VMM so:
//! the cgroup limits bound the whole VM, and the container's network
//! namespace holds its tap.
//!
//! - The program is a handle opened on the host before create and exec'd
//!   by handle (execveat), so it need not be in the rootfs. Its ELF
//!   interpreter and libraries are looked up in the container's root, as
//!   for any exec after pivot_root: a step program must be static (or the
//!   rootfs must hold what it loads).
//! - It must be read-only through every handle ([`ExecStep::new`] refuses
//!   one that is not): the container's processes can open it through
//!   /proc/<pid>/exe, as they could the runtime's binary (issue 19).
//!   [`exe_seal::seal_program`](crate::linux::exe_seal::seal_program)
//!   gives such a handle to an installed binary.
//! - Its argv and environment are the step's alone: `process.args`,
//!   `process.env` and LISTEN_FDS are not used.
//! - The spec's seccomp filter is not installed: it describes the
//!   workload's system calls (in a VM, the guest applies it), not the
//!   step's, and a NOTIFY agent would wait for a listener in vain.
//! - fds given with [`ExecStep::keep_fd`] reach the program at the number
//!   they have in the runtime (the step's argv names them); every other
//!   fd above the preserved ones is closed at the exec, as for a program.
//! - [`ExecStep::at_ready`] execs it without parking for `start`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};
use crate::linux::exe_seal;

/// What init execs in place of `process.args`.
pub struct ExecStep {
    program: OwnedFd,
    argv: Vec<CString>,
    env: Vec<CString>,
    fds: Vec<OwnedFd>,
    at_ready: bool,
}

fn cstrings(v: &[String], what: &str) -> Result<Vec<CString>> {
    v.iter()
        .enumerate()
        .map(|(i, s)| CString::new(s.as_bytes()).map_err(|_| Error::Container(format!("exec step: {what}[{i}] {s:?} contains a NUL byte"))))
        .collect()
}

impl ExecStep {
    /// `program` (a handle to a static executable that no handle can
    /// write: see the module's notes) run with `argv` (argv[0] included)
    /// and exactly the environment `env`.
    pub fn new(program: OwnedFd, argv: &[String], env: &[String]) -> Result<ExecStep> {
        if argv.is_empty() {
            return Err(Error::Container("exec step: argv is empty (argv[0] is the program's name)".into()));
        }
        if exe_seal::protection(program.as_raw_fd())?.is_none() {
            return Err(Error::Container(format!(
                "exec step {:?}: the program's file is writable: a container process could change it through /proc/<pid>/exe \
                 (open it with exe_seal::seal_program)",
                argv[0]
            )));
        }
        Ok(ExecStep { program, argv: cstrings(argv, "argv")?, env: cstrings(env, "env")?, fds: vec![], at_ready: false })
    }

    /// Hand `fd` to the program; returns the number it will have there.
    pub fn keep_fd(&mut self, fd: OwnedFd) -> RawFd {
        let n = fd.as_raw_fd();
        self.fds.push(fd);
        n
    }

    /// Exec the program as soon as init is ready, without parking for
    /// `start`: the container's process then runs during create (rpc-runv
    /// boots its VM there, so create fails if the guest does), and the
    /// backend decides what `start` means and what `state` says. No exec
    /// socket is made and no startContainer hook runs on the host.
    pub fn at_ready(mut self) -> ExecStep {
        self.at_ready = true;
        self
    }

    /// Whether init execs the program at once (see [`ExecStep::at_ready`]).
    pub fn is_at_ready(&self) -> bool {
        self.at_ready
    }

    /// argv[0], for messages.
    pub fn name(&self) -> String {
        self.argv[0].to_string_lossy().into_owned()
    }

    pub(crate) fn argv(&self) -> &[CString] {
        &self.argv
    }

    pub(crate) fn env(&self) -> &[CString] {
        &self.env
    }

    /// In init, last thing: keep the step's fds open across the exec, and
    /// exec the program by handle. Returns only the error.
    pub(crate) fn exec(&self, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> std::io::Error {
        for fd in &self.fds {
            // SAFETY: plain fcntl on a fd of ours.
            if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
                return std::io::Error::last_os_error();
            }
        }
        let fd = self.program.as_raw_fd();
        // SAFETY: NUL-terminated pointer arrays into live CStrings.
        unsafe {
            libc::syscall(libc::SYS_execveat, fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return e;
        }
        // Before 3.19: through the container's procfs (the magic link
        // reaches the handle's file, wherever it is).
        let Ok(path) = CString::new(format!("/proc/self/fd/{fd}")) else { return e };
        // SAFETY: as above, with a valid C string.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        std::io::Error::last_os_error()
    }
}

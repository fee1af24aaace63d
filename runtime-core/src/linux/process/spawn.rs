//! The parent side of create: fork stage-1, answer its requests, and
//! return once init is parked before exec.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxNamespaceType;

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::linux::process::sync::{Chan, Msg};
use crate::linux::process::trampoline::Trampoline;
use crate::linux::{cgroups, init, namespaces};

/// `exec`: join a running container instead of making one.
pub struct ExecTarget {
    /// The container's namespaces, as /proc/<init>/ns/<type> paths.
    pub namespaces: Vec<oci_spec::runtime::LinuxNamespace>,
}

/// What the container side needs; copied into the children by fork.
pub struct InitSpec<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    /// The process to run: the bundle's, or the one `exec` was given.
    pub process: &'a oci_spec::runtime::Process,
    pub caps: Option<&'a crate::linux::caps::CapSets>,
    /// Set for `exec`.
    pub exec: Option<ExecTarget>,
    /// The locked state directory (the exec fifo lives there).
    pub state_dir_fd: RawFd,
    /// The state lock's fd, closed first thing in the children.
    pub lock_fd: RawFd,
    pub cgroup_dirs: &'a [PathBuf],
    /// Connected console socket, when `terminal` is set.
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    /// fds 3..3+n are passed to the process (`--preserve-fds`, LISTEN_FDS).
    pub preserve_fds: i32,
    /// Extra environment (LISTEN_FDS/LISTEN_PID).
    pub extra_env: Vec<String>,
    /// The compiled seccomp filter, if any.
    pub seccomp: Option<&'a crate::linux::seccomp::Program>,
    /// Connected socket to the seccomp agent (listenerPath).
    pub seccomp_listener: Option<OwnedFd>,
    /// Keep the caller's session keyring (`--no-new-keyring`).
    pub no_new_keyring: bool,
}

/// Callbacks into the lifecycle, which owns state and hooks.
pub trait Parent {
    /// init's pid is known: record it (write-ahead) before anything else.
    fn on_pid(&mut self, pid: i32) -> Result<()>;
    /// Mounts are done: run prestart and createRuntime hooks; return the
    /// state JSON for the container-side hooks.
    fn on_hooks(&mut self, pid: i32) -> Result<(String, String)>;
}

fn fork() -> Result<i32> {
    // SAFETY: the runtime is single-threaded here.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::Io { context: "fork".into(), source: std::io::Error::last_os_error() });
    }
    Ok(pid)
}

/// Start the container's init; returns its pid once it is parked.
pub fn spawn(spec: &InitSpec, parent: &mut dyn Parent) -> Result<i32> {
    let (mine, theirs) = Chan::pair()?;
    let tramp = Trampoline::new(spec.state_dir_fd)?;
    if let Some(flags) = direct_flags(spec) {
        return spawn_direct(spec, parent, flags, mine, theirs, tramp.as_ref());
    }
    // SAFETY: plain call.
    let me = unsafe { libc::getpid() };
    let stage1 = fork()?;
    if stage1 == 0 {
        // SAFETY: closing our copy of the lock's fd.
        unsafe { libc::close(spec.lock_fd) };
        drop(mine);
        // SAFETY: plain calls. PDEATHSIG then a parent check: no window in
        // which a killed runtime leaves stage-1 running.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != me {
                libc::_exit(1);
            }
        }
        let code = match stage_one(spec, &theirs, tramp.as_ref()) {
            Ok(()) => 0,
            Err(e) => {
                let _ = theirs.send(&Msg::Error(e.to_string()));
                1
            }
        };
        // SAFETY: leave without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    drop(theirs);
    let mut init_pid = 0;
    let r = drive(spec, parent, &mine, stage1, &mut init_pid);
    // stage-1 is our child: reap it.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(stage1), None);
    if let Err(e) = r {
        if init_pid > 0 {
            // init is our child too (CLONE_PARENT): kill and reap it.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(init_pid), nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(init_pid), None);
        }
        return Err(e);
    }
    Ok(init_pid)
}

/// The namespaces init can be cloned into straight from the runtime, or
/// None when a stage-1 process is needed: to join namespaces by path (a
/// pid namespace joined applies to children only), for a user namespace
/// (mapped before the others are made, so they belong to it) or a time
/// namespace (children only, and no clone(2) flag), and for exec.
fn direct_flags(spec: &InitSpec) -> Option<CloneFlags> {
    let nss = spec.bundle.namespaces();
    let stage1 = spec.exec.is_some()
        || nss.iter().any(|n| n.path().is_some() || matches!(n.typ(), LinuxNamespaceType::User | LinuxNamespaceType::Time));
    (!stage1).then(|| namespaces::new_flags(nss))
}

/// create without stage-1: one clone(2) makes init in its new namespaces
/// (one fork and exit fewer per container). The runtime puts it in its
/// cgroups and records its pid while it waits on a pipe; then init makes
/// its cgroup namespace (after the join, so that it is rooted at the
/// container's cgroup) and carries on as from stage-1.
fn spawn_direct(
    spec: &InitSpec,
    parent: &mut dyn Parent,
    flags: CloneFlags,
    mine: Chan,
    theirs: Chan,
    tramp: Option<&Trampoline>,
) -> Result<i32> {
    let cgroupns = flags.contains(CloneFlags::CLONE_NEWCGROUP);
    let clone_flags = flags - CloneFlags::CLONE_NEWCGROUP;
    let mut go = [0; 2];
    // SAFETY: valid array.
    if unsafe { libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::Io { context: "pipe".into(), source: std::io::Error::last_os_error() });
    }
    // SAFETY: raw clone with fork semantics; the runtime is single-threaded.
    let pid =
        unsafe { libc::syscall(libc::SYS_clone, (clone_flags.bits() | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: our pipe.
        unsafe {
            libc::close(go[0]);
            libc::close(go[1]);
        }
        return Err(Error::Io { context: format!("clone init into new namespaces {flags:?}"), source: e });
    }
    if pid == 0 {
        // SAFETY: closing our copies of the lock, the runtime's channel
        // end and the pipe's write end; then wait for the go (EOF without
        // it: the runtime died).
        unsafe {
            libc::close(spec.lock_fd);
            libc::close(mine.fd().as_raw_fd());
            libc::close(go[1]);
            let mut b = 0u8;
            let n = loop {
                let n = libc::read(go[0], &mut b as *mut u8 as *mut _, 1);
                if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break n;
                }
            };
            libc::close(go[0]);
            if n != 1 {
                libc::_exit(1);
            }
        }
        if cgroupns {
            if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP) {
                let _ = theirs.send(&Msg::Error(format!("unshare cgroup namespace: {e}")));
                // SAFETY: leave at once.
                unsafe { libc::_exit(1) };
            }
        }
        init::run(spec, &theirs, false, tramp);
    }
    let pid = pid as i32;
    drop(theirs);
    // SAFETY: our read end.
    unsafe { libc::close(go[0]) };
    // Writing a byte releases init; closing without one tells it to exit.
    let mut go_w = Some(go[1]);
    let mut init_pid = pid;
    let r = (|| -> Result<()> {
        cgroups::join(spec.cgroup_dirs, pid)?;
        parent.on_pid(pid)?;
        if let Some(w) = go_w.take() {
            // SAFETY: our write end.
            unsafe {
                libc::write(w, b"1".as_ptr() as *const _, 1);
                libc::close(w);
            }
        }
        drive(spec, parent, &mine, pid, &mut init_pid)
    })();
    if let Err(e) = r {
        if let Some(w) = go_w.take() {
            // SAFETY: our write end.
            unsafe { libc::close(w) };
        }
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(e);
    }
    Ok(pid)
}

fn drive(spec: &InitSpec, parent: &mut dyn Parent, ch: &Chan, stage1: i32, init_pid: &mut i32) -> Result<()> {
    let linux = spec.bundle.spec.linux().as_ref();
    loop {
        match ch.recv()? {
            Some(Msg::Pid(p)) => {
                *init_pid = p;
                parent.on_pid(p)?;
            }
            Some(Msg::MapIds) => {
                let u = linux.and_then(|l| l.uid_mappings().as_deref()).unwrap_or(&[]);
                let g = linux.and_then(|l| l.gid_mappings().as_deref()).unwrap_or(&[]);
                namespaces::write_maps(stage1, u, g)?;
                ch.send(&Msg::MapDone)?;
            }
            Some(Msg::Hooks) => {
                let (creating, created) = parent.on_hooks(*init_pid)?;
                ch.send(&Msg::HooksDone(creating, created))?;
            }
            Some(Msg::Ready) if *init_pid > 0 => return Ok(()),
            Some(Msg::Ready) => return Err(Error::Container("container process ready before its pid was known".into())),
            Some(Msg::Error(m)) => return Err(Error::Container(m)),
            Some(m) => return Err(Error::Container(format!("unexpected message from the container: {m:?}"))),
            None => return Err(Error::Container("container init exited before it was ready".into())),
        }
    }
}

/// stage-1: cgroups, namespaces, then clone init.
fn stage_one(spec: &InitSpec, ch: &Chan, tramp: Option<&Trampoline>) -> Result<()> {
    // SAFETY: prctl with plain arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if spec.exec.is_some() {
        // execCPUAffinity.initial: before entering the container's cgroup.
        if let Some(i) = spec.process.exec_cpu_affinity().as_ref().and_then(|a| a.initial().clone()) {
            crate::linux::sched::set_affinity(&i)?;
        }
    }
    cgroups::join(spec.cgroup_dirs, 0)?;
    let nss = match &spec.exec {
        Some(x) => &x.namespaces[..],
        None => spec.bundle.namespaces(),
    };
    let joins = namespaces::open_paths(nss)?;
    namespaces::join(&joins)?;
    let mut flags = namespaces::new_flags(nss);
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| Error::Sys { context: "unshare user namespace".into(), source: e })?;
        ch.send(&Msg::MapIds)?;
        match ch.recv()? {
            Some(Msg::MapDone) => {}
            _ => return Err(Error::Container("parent did not map the user namespace".into())),
        }
        flags.remove(CloneFlags::CLONE_NEWUSER);
        // Become root of the new namespace (if mapped).
        let _ = nix::unistd::setresgid(0.into(), 0.into(), 0.into());
        let _ = nix::unistd::setresuid(0.into(), 0.into(), 0.into());
    }
    nix::sched::unshare(flags).map_err(|e| Error::Sys { context: format!("unshare {flags:?}"), source: e })?;
    if flags.bits() & 0x80 != 0 && spec.exec.is_none() {
        if let Some(offs) = spec.bundle.spec.linux().as_ref().and_then(|l| l.time_offsets().as_ref()) {
            let mut text = String::new();
            for (clock, o) in offs {
                text.push_str(&format!("{clock} {} {}\n", o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0)));
            }
            std::fs::write("/proc/self/timens_offsets", text).map_err(|e| Error::Io { context: "linux.timeOffsets".into(), source: e })?;
        }
    }
    // init waits on this pipe until its pid has been sent, so the runtime
    // always learns the pid before anything init says.
    let mut go = [0; 2];
    // SAFETY: valid array.
    if unsafe { libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::Io { context: "pipe".into(), source: std::io::Error::last_os_error() });
    }
    // SAFETY: raw clone with fork semantics; single-threaded process.
    let pid =
        unsafe { libc::syscall(libc::SYS_clone, (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        return Err(Error::Io { context: "clone init".into(), source: std::io::Error::last_os_error() });
    }
    if pid == 0 {
        // SAFETY: our pipe ends; a 0-byte read means stage-1 died first.
        unsafe {
            libc::close(go[1]);
            let mut b = 0u8;
            while libc::read(go[0], &mut b as *mut u8 as *mut _, 1) < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
            libc::close(go[0]);
        }
        let userns = nss.iter().any(|n| n.typ() == LinuxNamespaceType::User);
        init::run(spec, ch, userns, tramp);
    }
    // SAFETY: closing our read end.
    unsafe { libc::close(go[0]) };
    let sent = ch.send(&Msg::Pid(pid as i32));
    // SAFETY: release init (write then close; close alone also wakes it).
    unsafe {
        libc::write(go[1], b"1".as_ptr() as *const _, 1);
        libc::close(go[1]);
    }
    sent?;
    let _ = ch.fd().as_raw_fd();
    Ok(())
}

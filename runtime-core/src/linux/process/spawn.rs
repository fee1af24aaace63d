//! The parent side of create: fork stage-1, answer its requests, and
//! return once init is parked before exec.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxNamespaceType;

use crate::backend::CreateHooks;
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
    /// The state directory, for the parent's trampoline fallback only:
    /// the children close it at once (a parked init holding a directory of
    /// the host would hand it to a container process with CAP_SYS_PTRACE).
    pub state_dir_fd: RawFd,
    /// create: the listening exec socket init parks on (see init.rs).
    pub exec_listener: Option<OwnedFd>,
    /// Other host fds of the runtime the children close first thing.
    pub host_fds: Vec<RawFd>,
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
    /// create: exec this instead of `process.args` (see step.rs).
    pub exec_step: Option<&'a super::step::ExecStep>,
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
pub fn spawn(spec: &InitSpec, parent: &mut dyn CreateHooks) -> Result<i32> {
    let (mine, theirs) = Chan::pair()?;
    let tramp = Trampoline::new(spec.state_dir_fd)?;
    if let Some(flags) = direct_flags(spec) {
        return spawn_direct(spec, parent, flags, mine, theirs, tramp.as_ref());
    }
    // SAFETY: plain call.
    let me = unsafe { libc::getpid() };
    let stage1 = fork()?;
    if stage1 == 0 {
        close_host_dirs(spec);
        drop(mine);
        // SAFETY: plain calls. PDEATHSIG then a parent check: no window in
        // which a killed runtime leaves stage-1 running.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != me {
                libc::_exit(1);
            }
        }
        if let Err(e) = stage_one(spec, &theirs, tramp.as_ref()) {
            init::fail(&theirs, &e);
        }
        // SAFETY: leave without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    drop(theirs);
    crate::fault!(if spec.exec.is_some() { "exec:after-fork" } else { "create:after-fork" });
    let mut init_pid = 0;
    let r = drive(spec, parent, &mine, stage1, &mut init_pid);
    // stage-1 is our child: reap it. After a failure it may be waiting
    // for an answer that will never come (a refused uid_map write): kill
    // it first, or this wait is forever.
    if r.is_err() {
        kill_and_reap(stage1);
    } else {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(stage1), None);
    }
    if let Err(e) = r {
        if init_pid > 0 {
            // init is our child too (CLONE_PARENT).
            kill_and_reap(init_pid);
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
    parent: &mut dyn CreateHooks,
    flags: CloneFlags,
    mine: Chan,
    theirs: Chan,
    tramp: Option<&Trampoline>,
) -> Result<i32> {
    let cgroupns = flags.contains(CloneFlags::CLONE_NEWCGROUP);
    let clone_flags = flags - CloneFlags::CLONE_NEWCGROUP;
    let (pid, go) = match clone_parked(clone_flags.bits() as libc::c_ulong) {
        Err(e) => return Err(Error::Io { context: format!("clone init into new namespaces {flags:?}"), source: e }),
        Ok(Parked::Child(go)) => {
            // SAFETY: plain calls. It holds the runtime's channel and
            // sockets from here on: nothing may read it (init::run says
            // the same again for the stage-1 path).
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
            close_host_dirs(spec);
            drop(mine);
            // EOF without the go byte: the runtime failed or died.
            if !wait_go(go) {
                // SAFETY: leave at once.
                unsafe { libc::_exit(1) };
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
        Ok(Parked::Parent(pid, go)) => (pid, go),
    };
    drop(theirs);
    crate::fault!("create:after-clone");
    let mut init_pid = pid;
    let r = cgroups::join(spec.cgroup_dirs, pid).and_then(|()| parent.on_pid(pid)).and_then(|()| {
        release(go);
        drive(spec, parent, &mine, pid, &mut init_pid)
    });
    if let Err(e) = r {
        // (A failure before the release dropped `go`: init sees EOF.)
        kill_and_reap(pid);
        return Err(e);
    }
    Ok(pid)
}

/// In a child: close the state directory's handles (the lock and the
/// trampoline's) and the other host fds, first thing.
fn close_host_dirs(spec: &InitSpec) {
    for &fd in [spec.lock_fd, spec.state_dir_fd].iter().chain(&spec.host_fds) {
        if fd >= 0 {
            // SAFETY: closing our copies of the parent's fds.
            unsafe { libc::close(fd) };
        }
    }
}

/// Kill a child of ours that must not run on, and reap it.
pub fn kill_and_reap(pid: i32) {
    let p = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(p, None);
}

/// Both sides of `clone_parked`.
enum Parked {
    /// In the child: the pipe's read end, for `wait_go`.
    Child(OwnedFd),
    /// In the parent: the child's pid and the write end, for `release`
    /// (dropping it unreleased tells the child to give up).
    Parent(i32, OwnedFd),
}

/// clone(2) with fork semantics and `flags`, the child held on a pipe until
/// the parent releases it. The caller must be single-threaded.
fn clone_parked(flags: libc::c_ulong) -> std::io::Result<Parked> {
    let mut go = [0; 2];
    // SAFETY: valid array.
    if unsafe { libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the pipe's fresh fds are ours alone.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(go[0]), OwnedFd::from_raw_fd(go[1])) };
    // SAFETY: raw clone with fork semantics in a single-threaded process.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    match pid {
        ..=-1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Parked::Child(r)),
        pid => Ok(Parked::Parent(pid as i32, w)),
    }
}

/// In a parked child: wait for the go byte; false on EOF without one.
fn wait_go(go: OwnedFd) -> bool {
    let mut b = 0u8;
    loop {
        // SAFETY: a one-byte read into a local.
        let n = unsafe { libc::read(go.as_raw_fd(), &mut b as *mut u8 as *mut _, 1) };
        if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return n == 1;
        }
    }
}

/// Release a parked child.
fn release(go: OwnedFd) {
    // SAFETY: a one-byte write to our pipe; EOF follows as `go` drops.
    unsafe { libc::write(go.as_raw_fd(), b"1".as_ptr() as *const _, 1) };
}

fn drive(spec: &InitSpec, parent: &mut dyn CreateHooks, ch: &Chan, stage1: i32, init_pid: &mut i32) -> Result<()> {
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
            None => return Err(why_gone(spec, stage1, *init_pid)),
        }
    }
}

/// The exit status of a setup process that reports its error by exit
/// status alone, because sending it failed: this plus the errno of the
/// failure (what a seccomp profile returned, most likely).
pub const SILENT_EXIT_BASE: i32 = 100;

/// The channel closed before Ready: init (or stage-1, before init was
/// cloned) died without a word. Say how, from its wait status (peeked, not
/// reaped: the caller still kills and reaps by pid) and the cgroup's OOM
/// counter, rather than "exited before it was ready".
fn why_gone(spec: &InitSpec, stage1: i32, init_pid: i32) -> Error {
    let (pid, who) = match (init_pid > 0, spec.exec.is_some()) {
        (true, false) => (init_pid, "container init"),
        (false, false) => (stage1, "container init (stage-1)"),
        (true, true) => (init_pid, "exec process"),
        (false, true) => (stage1, "exec process (stage-1)"),
    };
    // SAFETY: siginfo_t is plain data; waitid fills it. EOF on the channel
    // means every process holding its other end is exiting (none closes it
    // before Ready), so this wait is short.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = loop {
        // SAFETY: valid out-pointer; pid is our child.
        let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut si, libc::WEXITED | libc::WNOWAIT) };
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break r;
    };
    let seccomp = spec.seccomp.is_some();
    let hint = "linux.seccomp denies a system call the runtime makes in the container after installing the filter \
                (the profile must allow them up to the program's execve)";
    if r != 0 {
        return Error::Container(format!("{who} exited before it was ready"));
    }
    // SAFETY: waitid filled a CLD_* record: si_status is valid.
    let (code, status) = (si.si_code, unsafe { si.si_status() });
    match code {
        libc::CLD_EXITED if status > SILENT_EXIT_BASE && status < 256 => {
            let errno = std::io::Error::from_raw_os_error(status - SILENT_EXIT_BASE);
            let why = if seccomp { format!(": {hint}?") } else { String::new() };
            Error::Container(format!("{who} failed before it was ready and could not report why (a call failed with: {errno}){why}"))
        }
        libc::CLD_EXITED => Error::Container(format!("{who} exited with status {status} before it was ready")),
        // A new container's cgroup starts with no OOM kill: any is this
        // one. (An exec's cgroup may count older ones: not proof there.)
        _ if status == libc::SIGKILL
            && spec.exec.is_none()
            && crate::linux::cgroups::oom::kill_count(spec.cgroup_dirs).is_some_and(|n| n > 0) =>
        {
            let limit = spec
                .bundle
                .spec
                .linux()
                .as_ref()
                .and_then(|l| l.resources().as_ref())
                .and_then(|r| r.memory().as_ref())
                .and_then(|m| m.limit())
                .map(|l| format!(": linux.resources.memory.limit is {l} bytes"))
                .unwrap_or_default();
            Error::Container(format!("{who} was OOM-killed (memory limit too low?){limit}"))
        }
        _ if status == libc::SIGSYS && seccomp => Error::Container(format!("{who} was killed by SIGSYS before it was ready: {hint}")),
        _ => Error::Container(format!("{who} was killed by signal {} before it was ready", signal_name(status))),
    }
}

/// SIGKILL for 9, or the number when it has no name.
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str().to_string()).unwrap_or_else(|_| sig.to_string())
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
    // init waits until its pid has been sent, so the runtime always learns
    // the pid before anything init says. (On EOF, stage-1 died: init goes
    // on to find the runtime gone too, or to be killed by it.)
    match clone_parked(libc::CLONE_PARENT as libc::c_ulong).map_err(|e| Error::Io { context: "clone init".into(), source: e })? {
        Parked::Child(go) => {
            wait_go(go);
            let userns = nss.iter().any(|n| n.typ() == LinuxNamespaceType::User);
            init::run(spec, ch, userns, tramp);
        }
        Parked::Parent(pid, go) => {
            let sent = ch.send(&Msg::Pid(pid));
            release(go);
            sent
        }
    }
}

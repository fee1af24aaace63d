//! The container side: init sets up the rootfs and the process, tells the
//! runtime it is ready, parks on the exec socket until `start`, then execs
//! the user's program. It never returns.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;

use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::linux::process::spawn::InitSpec;
use crate::linux::process::sync::{Chan, Msg};
use crate::linux::process::trampoline::Trampoline;
use crate::linux::{lsm, probe, procfs, rlimits, rootfs, seccomp, sysctl, tty};
use crate::log;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Entry of the init process; never returns.
pub fn run(spec: &InitSpec, ch: &Chan, userns: bool, tramp: Option<&Trampoline>) -> ! {
    let r = setup(spec, ch, userns);
    match r {
        Ok(prog) => {
            // After Ready: failures can only be logged, and shown on the
            // container's stderr (`run` and `create` hand it theirs).
            let e = park_and_exec(spec, prog, tramp);
            log::error(&e.to_string());
            let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("container init: {e}\n").as_bytes());
            // SAFETY: leave at once.
            unsafe { libc::_exit(127) }
        }
        Err(e) => fail(ch, &e),
    }
}

/// Report a setup failure to the runtime and leave. When even the report
/// cannot be sent (a seccomp profile denying sendto), the exit status
/// carries the errno: the runtime reads it from the wait status.
pub fn fail(ch: &Chan, e: &Error) -> ! {
    let code = match ch.send(&Msg::Error(e.to_string())) {
        Ok(()) => 1,
        Err(send) => {
            let errno = e.errno().or(send.errno()).filter(|n| (1..256 - crate::linux::process::spawn::SILENT_EXIT_BASE).contains(n));
            errno.map_or(1, |n| crate::linux::process::spawn::SILENT_EXIT_BASE + n)
        }
    };
    // SAFETY: leave at once.
    unsafe { libc::_exit(code) }
}

pub struct Prog {
    path: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    state_json: String,
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Container(format!("{what} contains a NUL byte")))
}

/// Find args[0] in the container (after pivot_root): a path is checked
/// as is, a name is searched in $PATH like execvp.
pub fn lookup(arg0: &str, path_var: &str) -> Result<PathBuf> {
    let check = |p: &Path| -> std::result::Result<(), std::io::Error> {
        let c = CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let md = std::fs::metadata(p)?;
        if md.is_dir() {
            return Err(std::io::Error::from_raw_os_error(libc::EACCES));
        }
        // SAFETY: valid C string.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match check(&p) {
            Ok(()) => Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::Container(format!("exec: \"{arg0}\": stat {arg0}: no such file or directory")))
            }
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => Err(Error::Container(format!("exec: \"{arg0}\": permission denied"))),
            Err(e) => Err(Error::Container(format!("exec: \"{arg0}\": {e}"))),
        };
    }
    let mut denied = false;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(arg0);
        match check(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => denied = true,
            Err(_) => {}
        }
    }
    if denied {
        return Err(Error::Container(format!("exec: \"{arg0}\": permission denied")));
    }
    Err(Error::Container(format!("exec: \"{arg0}\": executable file not found in $PATH")))
}

fn setup(spec: &InitSpec, ch: &Chan, userns: bool) -> Result<Prog> {
    // SAFETY: plain calls. Our parent is the runtime (CLONE_PARENT):
    // until it says Ready, a dead runtime means a dead process.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::setsid();
    }
    // One verified procfs handle for all of this process's procfs writes.
    let proc = procfs::Lazy::new();
    let state_json = match spec.exec {
        None => container(spec, ch, userns, &proc)?,
        Some(_) => {
            if let Some(sock) = spec.console.as_ref() {
                let size = spec.process.console_size().map(|b| (b.height() as u16, b.width() as u16));
                tty::setup_console(sock.as_raw_fd(), size, false, &proc)?;
            }
            String::new()
        }
    };
    finish(spec, ch, userns, state_json, &proc)
}

/// The container's own setup (create only): rootfs, hooks, pivot_root,
/// sysctl, masked/read-only paths, hostname, console, oom_score_adj.
/// Returns the state JSON for startContainer hooks.
fn container(spec: &InitSpec, ch: &Chan, userns: bool, proc: &procfs::Lazy) -> Result<String> {
    let b = spec.bundle;
    let s = &b.spec;
    let process = spec.process;
    if !spec.no_new_keyring {
        join_session_keyring(spec.id);
    }
    let root = if b.has_ns(LinuxNamespaceType::Mount) { Some(rootfs::prepare(b, userns, spec.cgroup_dirs)?) } else { None };
    let needs_state = seccomp_of(spec).is_some_and(|p| p.notify)
        || !hooks::list(s, "prestart").is_empty()
        || !hooks::list(s, "createRuntime").is_empty()
        || !hooks::list(s, "createContainer").is_empty()
        || !hooks::list(s, "startContainer").is_empty();
    let mut state_json = String::new();
    if needs_state {
        ch.send(&Msg::Hooks)?;
        match ch.recv()? {
            Some(Msg::HooksDone(creating, created)) => {
                hooks::run_all("createContainer", hooks::list(s, "createContainer"), hooks::with_own_pid(&creating).as_bytes())?;
                state_json = hooks::with_own_pid(&created);
            }
            _ => return Err(Error::Container("the runtime stopped while hooks ran".into())),
        }
    }
    // A missing cwd is created, as runc does (as root, before pivot_root).
    let _ = match &root {
        Some(r) => r.open_path(process.cwd(), crate::linux::path::Create::Dir),
        None => crate::linux::path::resolve(&b.rootfs, process.cwd(), crate::linux::path::Create::Dir).map(|(fd, _)| fd),
    };
    drop(root);
    rootfs::pivot(&b.rootfs, spec.no_pivot)?;
    let linux = s.linux().as_ref();
    rootfs::after_pivot(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    if let Some(l) = linux {
        // sysctls before /proc/sys becomes read-only.
        if let Some(sc) = l.sysctl() {
            sysctl::apply(proc, sc)?;
        }
        let (ro, masked) = (l.readonly_paths().as_deref().unwrap_or(&[]), l.masked_paths().as_deref().unwrap_or(&[]));
        if !ro.is_empty() || !masked.is_empty() {
            let slash = crate::linux::path::Root::open(Path::new("/"))?;
            // Mounts name fds as paths: through the verified procfs.
            proc.get()?.at_fd_dir("linux.readonlyPaths and linux.maskedPaths", || {
                rootfs::readonly(&slash, ro)?;
                rootfs::mask(&slash, masked, proc)
            })?;
        }
    }
    if let Some(h) = s.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx("setting hostname")?;
    }
    if let Some(d) = s.domainname().as_deref().filter(|h| !h.is_empty()) {
        let c = cstring(d, "domainname")?;
        // SAFETY: valid buffer.
        if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } != 0 {
            return Err(Error::Io { context: "setting domainname".into(), source: std::io::Error::last_os_error() });
        }
    }
    if s.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        rootfs::readonly_root()?;
    }
    if let Some(sock) = spec.console.as_ref() {
        let size = process.console_size().map(|b| (b.height() as u16, b.width() as u16));
        tty::setup_console(sock.as_raw_fd(), size, true, proc)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        proc.get()?.write("self/oom_score_adj", adj.to_string().as_bytes()).map_err(|e| {
            Error::Container(format!(
                "process.oomScoreAdj {adj}: {e}{}",
                if adj < 0 { " (lowering it needs CAP_SYS_RESOURCE)" } else { "" }
            ))
        })?;
    }
    Ok(state_json)
}

/// What create and exec share: rlimits, labels, user, capabilities,
/// no_new_privs, umask, cwd, and the program lookup.
fn finish(spec: &InitSpec, ch: &Chan, userns: bool, state_json: String, proc: &procfs::Lazy) -> Result<Prog> {
    let process = spec.process;
    rlimits::apply(process.rlimits().as_deref().unwrap_or(&[]))?;
    // Scheduling before the capabilities go (an RT policy needs CAP_SYS_NICE).
    if let Some(sc) = process.scheduler() {
        crate::linux::sched::apply_scheduler(sc)?;
    }
    if let Some(io) = process.io_priority() {
        crate::linux::sched::apply_io_priority(io)?;
    }
    if spec.exec.is_some() {
        if let Some(f) = process.exec_cpu_affinity().as_ref().and_then(|a| a.cpu_affinity_final().clone()) {
            crate::linux::sched::set_affinity(&f)?;
        }
    }
    // Once, before either seccomp install point.
    reset_signals();
    let nnp = process.no_new_privileges().unwrap_or(false);
    if seccomp_of(spec).is_some() && (process.apparmor_profile().is_some() || process.selinux_label().is_some()) {
        // The label is written after the filter is in: open the procfs
        // handle before the profile can refuse fsopen or openat2 (an
        // error here is reported by the write, if it comes to one).
        let _ = proc.get();
    }
    if let (Some(p), false) = (seccomp_of(spec), nnp) {
        // Without no_new_privs, installing needs CAP_SYS_ADMIN: do it
        // before the capabilities and the user change. The agent gets the
        // listener at once: our own calls from here on may be notified.
        let listener = seccomp::install(p)?;
        send_listener(spec, listener, p, &state_json)?;
    }
    lsm::apply(proc, process.apparmor_profile().as_deref(), process.selinux_label().as_deref())?;
    // The environment and the program.
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    env.extend(spec.extra_env.iter().cloned());
    let user = process.user();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(user.uid()).unwrap_or_else(|| "/".into())));
    }
    let path_var = env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH).to_string();
    let args = process.args().as_deref().unwrap_or(&[]);
    // Capabilities and user: bounding set first (needs CAP_SETPCAP), keep
    // the permitted set across setuid, then the final sets.
    if let Some(c) = spec.caps {
        c.apply_bounding()?;
    }
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let gids: Vec<nix::unistd::Gid> = user.additional_gids().iter().flatten().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    if !(userns && gids.is_empty()) {
        nix::unistd::setgroups(&gids).ctx("process.user.additionalGids: setgroups")?;
    }
    nix::unistd::setresgid(user.gid().into(), user.gid().into(), user.gid().into())
        .with_ctx(|| format!("process.user.gid {}", user.gid()))?;
    nix::unistd::setresuid(user.uid().into(), user.uid().into(), user.uid().into())
        .with_ctx(|| format!("process.user.uid {}", user.uid()))?;
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    match spec.caps {
        Some(c) => c.apply_final()?,
        None => {
            if user.uid() != 0 {
                // No capabilities section: a non-root user keeps none.
                crate::linux::caps::CapSets::default().apply_final()?;
            }
        }
    }
    if process.no_new_privileges().unwrap_or(false) {
        // SAFETY: plain prctl.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(Error::Io { context: "process.noNewPrivileges".into(), source: std::io::Error::last_os_error() });
        }
    }
    if let Some(m) = user.umask() {
        // SAFETY: plain call.
        unsafe { libc::umask(m as libc::mode_t) };
    }
    std::env::set_current_dir(process.cwd()).map_err(|e| Error::Container(format!("process.cwd {}: {e}", process.cwd().display())))?;
    // CVE-2024-21626: the cwd must be inside the container's root.
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() && !p.as_os_str().as_bytes().starts_with(b"(unreachable)") => {}
        _ => {
            return Err(Error::Container(format!(
                "process.cwd {}: current working directory is outside of the container's root",
                process.cwd().display()
            )))
        }
    }
    let prog = match spec.exec_step.filter(|_| spec.exec.is_none()) {
        // Its own argv and environment; the program is its handle.
        Some(step) => Prog {
            path: cstring(&format!("exec step {}", step.name()), "exec step")?,
            argv: step.argv().to_vec(),
            env: step.env().to_vec(),
            state_json,
        },
        None => {
            let exe = lookup(&args[0], &path_var)?;
            Prog {
                path: CString::new(exe.as_os_str().as_bytes()).map_err(|_| Error::Container("exe path has a NUL".into()))?,
                argv: args.iter().map(|a| cstring(a, "process.args")).collect::<Result<_>>()?,
                env: env.iter().map(|a| cstring(a, "process.env")).collect::<Result<_>>()?,
                state_json,
            }
        }
    };
    if spec.exec.is_none() {
        if let Some(p) = spec.bundle.spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
            set_personality(p)?;
        }
    }
    // From here on init outlives the runtime.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    if let (Some(p), true, None) = (seccomp_of(spec), nnp, &spec.exec_listener) {
        // exec, with no_new_privs: as late as we can still report an error.
        let listener = seccomp::install(p)?;
        send_listener(spec, listener, p, &prog.state_json)?;
    }
    ch.send(&Msg::Ready)?;
    Ok(prog)
}

/// A session keyring of the container's own, so keys do not leak between
/// containers (runc's default; `--no-new-keyring` keeps the caller's).
fn join_session_keyring(id: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let Ok(name) = CString::new(format!("_ses.{id}")) else { return };
    // SAFETY: plain syscall with a valid C string.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            log::warn(&format!("joining a new session keyring: {e}"));
        }
    }
}

/// linux.personality: the execution domain (LINUX or LINUX32).
fn set_personality(p: &oci_spec::runtime::LinuxPersonality) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    let dom: libc::c_ulong = match p.domain() {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    };
    // SAFETY: plain syscall.
    if unsafe { libc::personality(dom) } < 0 {
        return Err(Error::Io { context: format!("linux.personality {:?}", p.domain()), source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// Default dispositions and an empty mask for the program (the runtime
/// ignores SIGPIPE and `run` blocks signals; both are inherited by exec).
/// Done before seccomp is installed, so profiles need not allow it.
fn reset_signals() {
    // SAFETY: plain signal calls.
    unsafe {
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// The seccomp filter to install: none under an exec step (the spec's
/// filter is the workload's; see process::step).
fn seccomp_of<'a>(spec: &InitSpec<'a>) -> Option<&'a seccomp::Program> {
    spec.seccomp.filter(|_| spec.exec_step.is_none())
}

/// Hand a NOTIFY filter's listener to the seccomp agent (listenerPath)
/// with the state: the created state from the runtime, `{}` for exec.
fn send_listener(spec: &InitSpec, listener: Option<OwnedFd>, p: &seccomp::Program, state_json: &str) -> Result<()> {
    let Some(fd) = listener else { return Ok(()) };
    let sock = spec.seccomp_listener.as_ref().ok_or_else(|| Error::Container("linux.seccomp.listenerPath: not connected".into()))?;
    let st = if state_json.is_empty() { "{}" } else { state_json };
    let pid = serde_json::from_str::<serde_json::Value>(st).ok().and_then(|v| v["pid"].as_i64()).unwrap_or(0) as i32;
    seccomp::send_listener(sock.as_raw_fd(), fd.as_raw_fd(), p, st, pid)
}

/// $HOME from the container's /etc/passwd.
fn home_of(uid: u32) -> Option<String> {
    let pw = std::fs::read_to_string("/etc/passwd").ok()?;
    crate::linux::passwd::by_uid(&pw, uid).map(|e| e.home.to_string())
}

/// Park until `start` connects to the exec socket, and answer it. The
/// connection stays open (close-on-exec), so `start` sees EOF exactly when
/// the program has been exec'd (or init died), and runs poststart hooks
/// only then. A failure here means init must not go on: `start` sees EOF
/// without the byte and says so.
fn wait_for_start(listener: RawFd) -> Result<()> {
    let conn = loop {
        // SAFETY: accept4 on our listening socket, no address wanted.
        let c = unsafe { libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
        if c >= 0 {
            break c;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::Io { context: "waiting for start on the exec socket".into(), source: e });
        }
    };
    // SAFETY: closing the listener: no second start may connect.
    unsafe { libc::close(listener) };
    loop {
        // SAFETY: one byte from a static buffer to our connection.
        let n = unsafe { libc::write(conn, b"0".as_ptr() as *const _, 1) };
        if n == 1 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if n < 0 && e.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return Err(Error::Io { context: "answering start on the exec socket".into(), source: e });
    }
}

fn park_and_exec(spec: &InitSpec, prog: Prog, tramp: Option<&Trampoline>) -> Error {
    // No fd but stdio and the preserved ones may reach the program.
    probe::cloexec_from(3 + spec.preserve_fds);
    if let Some(l) = &spec.exec_listener {
        if let Err(e) = wait_for_start(l.as_raw_fd()) {
            return e;
        }
    }
    let at_ready = spec.exec_step.is_some_and(|s| s.is_at_ready());
    let start_hooks = if spec.exec.is_some() || at_ready { &[][..] } else { hooks::list(&spec.bundle.spec, "startContainer") };
    if !start_hooks.is_empty() {
        // Their paths are the image's: through the trampoline, as the program.
        let via = tramp.map(|t| t.proc_path()).filter(|p| p.exists());
        if let Err(e) = hooks::run_all_via("startContainer", start_hooks, prog.state_json.as_bytes(), via.as_deref()) {
            return e;
        }
    }
    if let (Some(p), true, Some(_)) = (seccomp_of(spec), spec.process.no_new_privileges().unwrap_or(false), &spec.exec_listener) {
        // create, with no_new_privs: after `start` released us, right
        // before the exec, as runc does; the profile then need not allow
        // our wait for start (accept4) nor the startContainer hooks.
        let listener = match seccomp::install(p) {
            Ok(l) => l,
            Err(e) => return e,
        };
        if let Err(e) = send_listener(spec, listener, p, &prog.state_json) {
            return e;
        }
    }
    // SAFETY: exec with pointers into owned CStrings.
    unsafe {
        let argv: Vec<*const libc::c_char> = prog.argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        let envp: Vec<*const libc::c_char> = prog.env.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        let e = match (spec.exec_step.filter(|_| spec.exec.is_none()), tramp) {
            // Not the runtime's image, and sealed: no trampoline needed.
            (Some(step), _) => step.exec(&argv, &envp),
            (None, Some(t)) => t.exec(&prog.path, &argv, &envp),
            (None, None) => {
                libc::execve(prog.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                std::io::Error::last_os_error()
            }
        };
        Error::Container(format!("exec {:?}: {e}", prog.path))
    }
}

//! The host side's process: the program the exec step runs as the
//! container's process, inside its namespaces and cgroups. It starts the
//! VM (virtiofsd, vhost-device-vsock, QEMU), has the guest agent create
//! the container, tells `create` it is ready, then relays the container's
//! stdio and signals (runtime-core's proxy over the agent's streams) and
//! ends with the guest container's exit status, powering the VM off.
//!
//! It is pid 1 of the host side's pid namespace: when it ends, the kernel
//! kills QEMU and the helpers with it.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rpc_proto::msg::{Request, Role};
use rpc_proto::remote::{open_stdio, RemoteProcess};
use runtime_core::proxy::{self, LOST};

use crate::agent;
use crate::error::{Error, Result};
use crate::hostspec::{FILES, SHARED, VM_DIR};
use crate::hypervisor::binaries::Binaries;
use crate::hypervisor::launch::{self as hv, Running};
use crate::hypervisor::{Accel, LaunchSpec};
use crate::launch::Launch;

/// The supervisor's argv[0]: `rpc-runv` runs as it when exec'd so.
pub const ARGV0: &str = "rpc-runv-vm";
/// The supervisor's own log in the VM's directory: each step, for a
/// failed boot's message and for `--debug`.
fn note(msg: &str) {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed();
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(format!("{VM_DIR}/supervisor.log")) {
        let _ = writeln!(f, "{:>8.3} {msg}", t.as_secs_f64());
    }
}

/// How long the agent has to power the VM off after the container ended.
const SHUTDOWN: Duration = Duration::from_secs(5);

/// The files the host side binds at [`FILES`]`/<name>`.
pub fn files_inside() -> Binaries {
    let f = |n: &str| PathBuf::from(format!("{FILES}/{n}"));
    Binaries { qemu: f("qemu"), virtiofsd: f("virtiofsd"), vhost_vsock: f("vhost-device-vsock"), kernel: f("kernel"), initrd: f("initrd") }
}

/// `rpc-runv-vm LAUNCH READY_FD`: returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let set = match proxy::block_all() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rpc-runv-vm: {e}");
            return LOST;
        }
    };
    let (Some(launch), Some(fd)) = (args.get(1), args.get(2).and_then(|s| s.parse::<RawFd>().ok())) else {
        eprintln!("usage: {ARGV0} LAUNCH READY_FD (run by rpc-runv create)");
        return 2;
    };
    // SAFETY: F_GETFD only looks at the number.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        eprintln!("{ARGV0}: fd {fd} is not open");
        return 2;
    }
    // SAFETY: create handed us this fd (checked open above) and nothing
    // else in this process owns it.
    let mut ready = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    // Not for QEMU and the helpers: create reads it to its end.
    // SAFETY: plain fcntl on our own fd.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let booted = Launch::read(Path::new(launch)).and_then(|l| boot(&l).map(|b| (l, b)));
    let (l, (running, mut inner)) = match booted {
        Ok(b) => b,
        Err(e) => {
            note(&format!("failed: {e}"));
            let _ = writeln!(ready, "{e}");
            return 1;
        }
    };
    note("ready");
    let _ = ready.write_all(b"ok\n");
    drop(ready);
    let status = match proxy::relay(&mut inner, &set) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{ARGV0}: container {}: {e}", l.id);
            LOST
        }
    };
    note(&format!("the container ended with status {status}; powering off"));
    drop(inner);
    power_off(&l, running);
    status
}

/// The VM up, the agent's container created, its stdio and wait
/// connections open.
fn boot(l: &Launch) -> Result<(Running, RemoteProcess)> {
    let mut bins = files_inside();
    bins.qemu = PathBuf::from(&l.qemu);
    let accel = if l.accel == "kvm" { Accel::Kvm } else { Accel::Tcg };
    let spec = LaunchSpec {
        vcpus: l.vcpus,
        mem_mib: l.mem_mib,
        kernel: bins.kernel.clone(),
        initrd: bins.initrd.clone(),
        cmdline: l.cmdline.clone(),
        accel,
        vm_dir: PathBuf::from(VM_DIR),
        shared_dir: PathBuf::from(SHARED),
        tap: None,
    };
    let mut opts = hv::Opts::new(&bins, &spec);
    // The host side is a sandbox already (its own mount namespace holds
    // nothing but the VM's files); virtiofsd's namespace sandbox dies of
    // its own seccomp filter in it, a chroot into the shared tree does not.
    opts.virtiofsd.sandbox = crate::hypervisor::virtiofsd::Sandbox::Chroot;
    opts.virtiofsd.seccomp = "log";
    note("starting virtiofsd, vhost-device-vsock and qemu");
    let running = hv::start(&spec, &opts).map_err(|e| Error::Boot { id: l.id.clone(), msg: e.to_string() })?;
    let deadline = Instant::now() + Duration::from_millis(l.boot_timeout_ms);
    let uds = spec.vsock_uds();
    let id = l.id.as_str();
    let mut running = running;
    note("waiting for the agent on the console");
    if !running.vm.wait_serial(rpc_proto::guest::LISTENING, deadline.saturating_duration_since(Instant::now())) {
        return Err(Error::Boot { id: l.id.clone(), msg: "the guest agent did not come up (see the console below)".into() });
    }
    note("dialling the agent");
    let mut control = agent::dial(id, &uds, Role::Control, deadline)?;
    note("agent up; create");
    let create = Request::Create {
        id: id.to_string(),
        config: l.guest_config.clone(),
        sandbox: false,
        ns_from_sandbox: vec![],
        sandbox_id: None,
        terminal: l.terminal,
    };
    control.call(&create, agent::CALL_TIMEOUT).map_err(agent::guest(id))?;
    note("created; opening the stdio streams");
    let stdio = open_stdio(&mut |role| agent::connect(&uds, role, deadline), id, None, l.terminal).map_err(agent::guest(id))?;
    note("streams open; wait connection");
    let wait = agent::dial(id, &uds, Role::Wait { container: id.to_string(), exec: None }, deadline)?;
    let inner = RemoteProcess::new(id, None, stdio, wait, agent::redial(uds.clone())).map_err(agent::guest(id))?;
    Ok((running, inner))
}

/// Asks the agent to power off, waits a little for QEMU, then stops what
/// is left.
fn power_off(l: &Launch, mut running: Running) {
    let uds = PathBuf::from(VM_DIR).join("vsock.sock");
    if let Ok(mut c) = agent::dial(&l.id, &uds, Role::Control, Instant::now() + SHUTDOWN) {
        let _ = c.send(&Request::Shutdown { status: 0 }, Instant::now() + SHUTDOWN);
    }
    let _ = running.vm.wait_timeout(SHUTDOWN);
    let _ = running.stop();
}

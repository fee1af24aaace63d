//! `MicroVm`: runtime-core's `Backend` for containers in micro-VMs. The
//! host side of each container is a native container (the `Native`
//! backend, on a config derived by [`crate::hostspec`]) whose process is
//! the [`crate::supervisor`]; everything about the container's own
//! processes goes to the guest agent.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rpc_proto::msg::{Reply, Request};
use runtime_core::backend::{Backend, CreateHooks, CreateOpts, ExecOpts, OomEvents, Stats};
use runtime_core::bundle::Bundle;
use runtime_core::linux::caps::CapSets;
use runtime_core::linux::cgroups::resources::Res;
use runtime_core::linux::exe_seal;
use runtime_core::linux::process::step::ExecStep;
use runtime_core::native::Native;
use runtime_core::state::{Dir, State};
use serde_json::{json, Value};

use crate::agent;
use crate::error::{io, Error, Result};
use crate::hostspec::{self, HostFile};
use crate::hypervisor::{binaries, choose};
use crate::launch::Launch;
use crate::record::{self, Vm};
use crate::{guestspec, sizing, supervisor};

/// The kernel command line of every guest (`RPC_RUNV_CMDLINE` replaces
/// it, e.g. without `quiet` to see the guest's boot).
const CMDLINE: &str = "console=ttyS0 reboot=k panic=-1";
/// How long a guest has to answer once its VM runs; the
/// `io.rpc-runv.boot-timeout` annotation (seconds) overrides.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
pub const ANN_BOOT_TIMEOUT: &str = "io.rpc-runv.boot-timeout";

pub struct MicroVm {
    native: Native,
}

impl MicroVm {
    pub fn new() -> MicroVm {
        MicroVm { native: Native }
    }
}

impl Default for MicroVm {
    fn default() -> Self {
        MicroVm::new()
    }
}

fn config_of(bundle: &Bundle) -> Result<Value> {
    serde_json::from_slice(&bundle.raw).map_err(|e| Error::Invalid(format!("{}: {e}", bundle.dir.join("config.json").display())))
}

fn annotation<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config.pointer("/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

fn boot_timeout(config: &Value) -> Result<Duration> {
    match annotation(config, ANN_BOOT_TIMEOUT) {
        None => Ok(BOOT_TIMEOUT),
        Some(v) => match v.parse::<u64>() {
            Ok(s) if (1..=600).contains(&s) => Ok(Duration::from_secs(s)),
            _ => Err(Error::Invalid(format!("annotation {ANN_BOOT_TIMEOUT}={v:?}: want seconds from 1 to 600"))),
        },
    }
}

fn host_cpus() -> u64 {
    std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1)
}

/// `res` as OCI LinuxResources, for the guest's `rpc-runc update`.
fn resources_json(res: &Res) -> Value {
    let mut r = json!({});
    let mut memory = json!({});
    for (k, v) in [("limit", res.mem_limit), ("reservation", res.mem_reservation), ("swap", res.mem_swap)] {
        if let Some(v) = v {
            memory[k] = json!(v);
        }
    }
    if memory.as_object().is_some_and(|m| !m.is_empty()) {
        r["memory"] = memory;
    }
    let mut cpu = json!({});
    if let Some(v) = res.cpu_shares {
        cpu["shares"] = json!(v);
    }
    if let Some(v) = res.cpu_quota {
        cpu["quota"] = json!(v);
    }
    if let Some(v) = res.cpu_period {
        cpu["period"] = json!(v);
    }
    if let Some(v) = &res.cpus {
        cpu["cpus"] = json!(v);
    }
    if let Some(v) = &res.mems {
        cpu["mems"] = json!(v);
    }
    if cpu.as_object().is_some_and(|m| !m.is_empty()) {
        r["cpu"] = cpu;
    }
    if let Some(v) = res.pids_limit {
        r["pids"] = json!({ "limit": v });
    }
    r
}

/// Reads the supervisor's word on the ready pipe: "ok", or its error.
fn wait_ready(id: &str, r: OwnedFd, deadline: Instant, serial: &Path) -> Result<()> {
    let mut f = std::fs::File::from(r);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n == 0 {
            return Err(boot_failed(id, "no word from the VM's supervisor in time", serial));
        }
        if n < 0 {
            continue;
        }
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                got.extend_from_slice(&buf[..k]);
                if got == b"ok\n" || got.len() > 64 << 10 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io { context: format!("container {id}: reading the supervisor's ready pipe"), source: e }),
        }
    }
    let text = String::from_utf8_lossy(&got);
    if text.trim() == "ok" {
        return Ok(());
    }
    let why = if text.trim().is_empty() { "the VM's supervisor ended without a word" } else { text.trim() };
    Err(boot_failed(id, why, serial))
}

/// A boot failure, with the end of the guest's console and of what the
/// hypervisor and its helpers said.
fn boot_failed(id: &str, why: &str, serial: &Path) -> Error {
    let mut msg = why.to_string();
    let dir = serial.parent().unwrap_or(Path::new("/"));
    for (what, file) in [
        ("the supervisor", "supervisor.log"),
        ("the guest's console", "serial.log"),
        ("qemu", "qemu.log"),
        ("virtiofsd", "virtiofsd.log"),
        ("vhost-device-vsock", "vhost-device-vsock.log"),
    ] {
        let log = crate::hypervisor::qemu::tail(&dir.join(file), 2048);
        if !log.trim().is_empty() {
            msg.push_str(&format!("\n{what} ended with:\n{}", log.trim_end()));
        }
    }
    Error::Boot { id: id.to_string(), msg }
}

impl MicroVm {
    fn call(&self, st: &State, req: &Request) -> Result<Reply> {
        agent::call(&st.id, &record::agent_socket(&st.dir), req)
    }

    fn do_create(
        &self,
        st: &State,
        bundle: &Bundle,
        dir: &Dir,
        held: Vec<OwnedFd>,
        mut opts: CreateOpts,
        hooks: &mut dyn CreateHooks,
    ) -> Result<i32> {
        let vm = Vm::of(st)?;
        let config = config_of(bundle)?;
        let guest_config = guestspec::rewrite(&st.id, &config, rpc_proto::guest::SHARED_DIR)?;
        let bins = binaries::Binaries {
            qemu: binaries::qemu()?,
            virtiofsd: binaries::virtiofsd()?,
            vhost_vsock: binaries::vhost_vsock()?,
            kernel: binaries::kernel()?,
            initrd: binaries::agent_initrd()?,
        };
        let kvm = vm.accel == "kvm";
        // QEMU finds its firmware relative to its own path: one under /usr
        // keeps its path (/usr is bound as it is).
        let qemu_inside =
            if bins.qemu.starts_with("/usr/") { bins.qemu.clone() } else { std::path::PathBuf::from(format!("{}/qemu", hostspec::FILES)) };
        let mut files = vec![
            HostFile { name: "virtiofsd", path: bins.virtiofsd.clone() },
            HostFile { name: "vhost-device-vsock", path: bins.vhost_vsock.clone() },
            HostFile { name: "kernel", path: bins.kernel.clone() },
            HostFile { name: "initrd", path: bins.initrd.clone() },
        ];
        if !bins.qemu.starts_with("/usr/") {
            files.push(HostFile { name: "qemu", path: bins.qemu.clone() });
        }
        let vm_dir = dir.path.join(record::VM);
        std::fs::create_dir_all(&vm_dir).map_err(io(format!("creating {}", vm_dir.display())))?;
        hostspec::make_root(&dir.path)?;
        let timeout = boot_timeout(&config)?;
        let launch = Launch {
            id: st.id.clone(),
            vcpus: vm.size.vcpus,
            mem_mib: vm.size.mem_mib,
            accel: vm.accel.clone(),
            cmdline: format!(
                "{} {}={}",
                std::env::var("RPC_RUNV_CMDLINE").unwrap_or_else(|_| CMDLINE.to_string()),
                rpc_proto::guest::CMDLINE_PROTO,
                rpc_proto::msg::PROTO
            ),
            guest_config,
            terminal: config.pointer("/process/terminal").and_then(Value::as_bool).unwrap_or(false),
            boot_timeout_ms: timeout.as_millis() as u64,
            qemu: qemu_inside.to_string_lossy().into_owned(),
        };
        launch.write(&vm_dir.join(record::LAUNCH))?;
        let host = hostspec::derive(&st.id, bundle, &dir.path, &vm.size, &files, kvm)?;

        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("the supervisor's ready pipe")(e.into()))?;
        let program = exe_seal::seal_program(Path::new("/proc/self/exe"), &vm_dir)?;
        let n = w.as_raw_fd();
        let argv = [supervisor::ARGV0.to_string(), format!("{}/{}", hostspec::VM_DIR, record::LAUNCH), n.to_string()];
        let mut step = ExecStep::new(program, &argv, &[])?.at_ready();
        step.keep_fd(w);
        opts.exec_step = Some(step);
        let pid = self.native.create(st, &host, dir, held, opts, hooks)?;
        // Our copy of the write end went with the step: EOF comes when
        // the supervisor has said its word or died.
        wait_ready(&st.id, r, Instant::now() + timeout + Duration::from_secs(30), &vm_dir.join("serial.log"))?;
        Ok(pid)
    }
}

impl Backend for MicroVm {
    fn name(&self) -> &'static str {
        "rpc-runv"
    }

    fn features(&self, doc: &mut Value) {
        self.native.features(doc);
        if let Some(a) = doc.get_mut("annotations").and_then(Value::as_object_mut) {
            let choice = choose::choose(None, None);
            let said = match choice {
                Ok(c) => format!("{} ({}): {}", c.hypervisor, c.accel, c.reason),
                Err(e) => format!("none: {e}"),
            };
            a.insert("io.rpc-runv.hypervisor.auto".into(), Value::String(said));
        }
    }

    fn check(&self, st: &State, path: &Path) -> runtime_core::Result<()> {
        if st.backend != self.name() {
            return Err(runtime_core::Error::ForeignState {
                id: st.id.clone(),
                path: path.to_path_buf(),
                recorded: st.backend.clone(),
                ours: self.name(),
            });
        }
        self.native.check_record(st, path)?;
        Vm::of(st)?;
        Ok(())
    }

    fn plan(&self, id: &str, bundle: &Bundle) -> runtime_core::Result<Value> {
        let config = config_of(bundle)?;
        let choice = choose::choose(None, annotation(&config, choose::ANNOTATION)).map_err(Error::from)?;
        if choice.hypervisor == choose::Hypervisor::RpcVmm {
            return Err(Error::Invalid(format!(
                "container {id}: hypervisor rpc-vmm ({}): containers run on qemu only so far; set {}=qemu",
                choice.reason,
                choose::ENV
            ))
            .into());
        }
        // Everything the config can be refused for, before anything is made.
        guestspec::rewrite(id, &config, rpc_proto::guest::SHARED_DIR)?;
        boot_timeout(&config)?;
        let size = sizing::of(&config, host_cpus())?;
        let mut v = self.native.plan(id, bundle)?;
        v["private_pid_ns"] = Value::Bool(true);
        let vm = Vm { hypervisor: choice.hypervisor.as_str().into(), accel: choice.accel.as_str().into(), reason: choice.reason, size };
        v["vm"] = serde_json::to_value(vm).map_err(|e| Error::Invalid(format!("container {id}: encoding its record: {e}")))?;
        Ok(v)
    }

    fn reserve(&self, st: &State, dir: &Dir) -> runtime_core::Result<Vec<OwnedFd>> {
        self.native.reserve(st, dir)
    }

    fn forget(&self, dir: &Path) {
        self.native.forget(dir)
    }

    fn create(
        &self,
        st: &State,
        bundle: &Bundle,
        dir: &Dir,
        held: Vec<OwnedFd>,
        opts: CreateOpts,
        hooks: &mut dyn CreateHooks,
    ) -> runtime_core::Result<i32> {
        Ok(self.do_create(st, bundle, dir, held, opts, hooks)?)
    }

    fn parked(&self, st: &State, dir: &Path) -> bool {
        let _ = st;
        !dir.join(record::STARTED).exists()
    }

    fn start(&self, st: &State, dir: &Dir) -> runtime_core::Result<()> {
        self.call(st, &Request::Start { id: st.id.clone() })?;
        let p = dir.path.join(record::STARTED);
        std::fs::write(&p, b"").map_err(io(format!("writing {}", p.display())))?;
        Ok(())
    }

    fn exec(
        &self,
        st: &State,
        _bundle: &Bundle,
        process: &oci_spec::runtime::Process,
        _caps: Option<&CapSets>,
        opts: ExecOpts,
    ) -> runtime_core::Result<i32> {
        if opts.preserve_fds > 0 {
            return Err(Error::Invalid(format!("container {}: exec --preserve-fds: host fds cannot reach a process in a VM", st.id)).into());
        }
        Ok(crate::exec::exec(st, process, opts)?)
    }

    fn signal(&self, st: &State, sig: i32, all: bool) -> runtime_core::Result<()> {
        // SIGKILL of the container ends its VM from the host, whatever the
        // guest does: the supervisor is the host side's pid 1.
        if sig == libc::SIGKILL && !all {
            return self.native.signal(st, sig, false);
        }
        self.call(st, &Request::Signal { id: st.id.clone(), exec_id: None, sig, all })?;
        Ok(())
    }

    fn kill_and_wait(&self, st: &State, _paused: bool) -> runtime_core::Result<()> {
        // The host side is never frozen: the guest's freezer holds a pause.
        self.native.kill_and_wait(st, false)
    }

    fn pids(&self, st: &State) -> runtime_core::Result<Vec<i32>> {
        self.native.pids(st)
    }

    fn update(&self, st: &State, res: &Res) -> runtime_core::Result<()> {
        let vm = Vm::of(st)?;
        sizing::check_update(&st.id, &vm.size, res.mem_limit, res.cpu_quota, res.cpu_period)?;
        self.call(st, &Request::Update { id: st.id.clone(), resources: resources_json(res) })?;
        Ok(())
    }

    fn stats(&self, st: &State) -> runtime_core::Result<Stats> {
        match self.call(st, &Request::Stats { id: st.id.clone() })? {
            Reply::Stats { stats } => Ok(stats),
            other => Err(Error::Guest { id: st.id.clone(), msg: format!("stats answered with {other:?}") }.into()),
        }
    }

    fn oom_events(&self, _st: &State) -> runtime_core::Result<Option<Box<dyn OomEvents>>> {
        Ok(None)
    }

    fn pause(&self, st: &State, frozen: bool) -> runtime_core::Result<()> {
        let req = if frozen { Request::Pause { id: st.id.clone() } } else { Request::Resume { id: st.id.clone() } };
        self.call(st, &req)?;
        let p = st.dir.join(record::PAUSED);
        if frozen {
            std::fs::write(&p, b"").map_err(io(format!("writing {}", p.display())))?;
        } else {
            let _ = std::fs::remove_file(&p);
        }
        Ok(())
    }

    fn paused(&self, st: &State) -> bool {
        st.dir.join(record::PAUSED).exists()
    }

    fn destroy(&self, st: &State) -> runtime_core::Result<()> {
        self.native.destroy(st)
    }

    fn destroy_if_empty(&self, st: &State) -> bool {
        self.native.destroy_if_empty(st)
    }
}

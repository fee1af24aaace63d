//! Building a VM from a [`VmConfig`] and running it: KVM setup, memory,
//! boot, devices, vCPU threads and the event loop (epoll over host
//! signals, stdin, the vCPUs' stop event and the devices' host sockets
//! and tap). Nothing in it sleeps: it waits on fds, and stopping waits
//! for the vCPU threads to end.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};

use crate::lock;
use std::thread::JoinHandle;

use kvm_bindings::{kvm_pit_config, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use linux_loader::cmdline::Cmdline;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::timerfd::TimerFd;

use crate::config::{SerialOutput, VmConfig};
use crate::devices::serial::{SerialConsole, StdoutUntilStop};
use crate::devices::virtio::block::Block;
use crate::devices::virtio::console::{Console, ConsoleHost, MAX_PORTS, PORT_TOKEN_BASE};
use crate::devices::virtio::fs::Fs;
use crate::devices::virtio::mmio::MmioTransport;
use crate::devices::virtio::net::{open_tap, Net, NetHost};
use crate::devices::virtio::vsock::{Vsock, VsockHost, CONN_TOKEN, LISTEN_TOKEN};
use crate::devices::virtio::VirtioDevice;
use crate::devices::Devices;
use crate::layout::*;
use crate::memory::{self, GuestMemoryMmap};
use crate::report::Reporter;
use crate::vcpu::{self, Shared};
use crate::x86::{boot, cpuid, mptable, msr, regs};
use crate::{Error, Result};

/// Exit status: the guest powered off, reset or halted.
pub const EXIT_OK: i32 = 0;
/// Exit status: VMM error (setup failed, a KVM call failed while running).
pub const EXIT_VMM_ERROR: i32 = 125;
/// Exit status: the guest crashed (KVM could not run it: emulation
/// failure, internal error, failed entry, unhandled exit).
pub const EXIT_GUEST_CRASH: i32 = 126;
/// Exit status: the guest triple-faulted.
pub const EXIT_TRIPLE_FAULT: i32 = 127;

/// Why a VM stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// KVM_SYSTEM_EVENT_SHUTDOWN (e.g. PSCI/ACPI poweroff).
    PowerOff,
    /// The guest reset the machine (i8042 0xFE, `reboot=k`); a micro-VM
    /// does not reboot: it stops, as Firecracker's do.
    Reset,
    /// A vCPU halted with nothing to wake it (no in-kernel HLT handling).
    Halted,
    /// The guest wrote this status to the exit port (0x510).
    Status(u8),
    /// A vCPU triple-faulted (KVM_EXIT_SHUTDOWN).
    TripleFault,
    /// The guest could not be run further.
    GuestCrash(String),
    /// A host signal (SIGTERM, SIGINT, SIGHUP) stopped the VM.
    Signal(i32),
    /// The VMM failed while running the guest.
    VmmError(String),
}

impl VmExit {
    /// The exit status of rpc-vmm for this stop (see README.md).
    pub fn exit_code(&self) -> i32 {
        match self {
            VmExit::PowerOff | VmExit::Reset | VmExit::Halted => EXIT_OK,
            VmExit::Status(s) => i32::from(*s),
            VmExit::TripleFault => EXIT_TRIPLE_FAULT,
            VmExit::GuestCrash(_) => EXIT_GUEST_CRASH,
            VmExit::Signal(sig) => 128 + sig,
            VmExit::VmmError(_) => EXIT_VMM_ERROR,
        }
    }
}

impl std::fmt::Display for VmExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmExit::PowerOff => write!(f, "guest powered off"),
            VmExit::Reset => write!(f, "guest reset"),
            VmExit::Halted => write!(f, "guest halted"),
            VmExit::Status(s) => write!(f, "guest exit status {s}"),
            VmExit::TripleFault => write!(f, "guest triple fault"),
            VmExit::GuestCrash(why) => write!(f, "guest crash: {why}"),
            VmExit::Signal(s) => write!(f, "stopped by signal {s}"),
            VmExit::VmmError(e) => write!(f, "VMM error: {e}"),
        }
    }
}

/// How long a listener that ran out of file descriptors stays out of the
/// event loop before it is tried again.
const LISTEN_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Stop signals the event loop turns into [`VmExit::Signal`].
const STOP_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The console's ports (host ends) and transport.
type ConsoleParts = (Vec<Arc<Mutex<ConsoleHost>>>, Arc<Mutex<MmioTransport>>);

fn listen(path: &std::path::Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|source| Error::File { path: path.to_owned(), source })?;
    listener.set_nonblocking(true).map_err(Error::io("console socket"))?;
    Ok(listener)
}

/// The tap's host side and the net transport.
type NetParts = (Arc<Mutex<NetHost>>, Arc<Mutex<MmioTransport>>);

/// The vsock's host side and transport.
type VsockParts = (Arc<Mutex<VsockHost>>, Arc<Mutex<MmioTransport>>);

/// A VM ready to run.
pub struct Vm {
    _kvm: Kvm,
    _vm: VmFd,
    _mem: GuestMemoryMmap,
    vcpus: Vec<VcpuFd>,
    devices: Arc<Devices>,
    reporter: Arc<Reporter>,
    console: Option<ConsoleParts>,
    net: Option<NetParts>,
    vsock: Option<VsockParts>,
    epoll: Epoll,
    serial_input: bool,
    /// Written when the VM stops (see [`Shared`]).
    stop_evt: EventFd,
}

fn check_caps(kvm: &Kvm) -> Result<()> {
    let v = kvm.get_api_version();
    if v != 12 {
        return Err(Error::KvmApiVersion(v));
    }
    for (cap, name) in [
        (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
        (Cap::Irqfd, "KVM_CAP_IRQFD"),
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::Pit2, "KVM_CAP_PIT2"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(Error::KvmCapability(name));
        }
    }
    Ok(())
}

impl Vm {
    /// Builds the VM: nothing runs until [`Vm::run`].
    pub fn new(config: &VmConfig, reporter: Arc<Reporter>) -> Result<Vm> {
        if config.vcpus == 0 || config.vcpus > 8 {
            return Err(Error::Config(format!("vcpus: {}, need 1..=8", config.vcpus)));
        }
        let kvm = Kvm::new().map_err(Error::Kvm)?;
        check_caps(&kvm)?;
        let vm = kvm.create_vm().map_err(Error::kvm("KVM_CREATE_VM"))?;
        vm.set_tss_address(KVM_TSS_ADDRESS).map_err(Error::kvm("KVM_SET_TSS_ADDR"))?;
        vm.create_irq_chip().map_err(Error::kvm("KVM_CREATE_IRQCHIP"))?;
        let pit = kvm_pit_config { flags: KVM_PIT_SPEAKER_DUMMY, ..Default::default() };
        vm.create_pit2(pit).map_err(Error::kvm("KVM_CREATE_PIT2"))?;

        let mem = memory::create(config.mem_mib, !config.fs.is_empty())?;
        memory::register(&vm, &mem)?;

        // Devices, each with an irqfd on its IOAPIC pin.
        let irq = |gsi: u32| -> Result<EventFd> {
            let fd = EventFd::new(EFD_NONBLOCK).map_err(Error::io("eventfd"))?;
            vm.register_irqfd(&fd, gsi).map_err(Error::kvm("KVM_IRQFD"))?;
            Ok(fd)
        };
        let stop_evt = EventFd::new(EFD_NONBLOCK).map_err(Error::io("eventfd"))?;
        let out: Box<dyn Write + Send> = match &config.serial_output {
            SerialOutput::Stdout => Box::new(StdoutUntilStop::new(stop_evt.try_clone().map_err(Error::io("eventfd"))?)),
            SerialOutput::Sink => Box::new(std::io::sink()),
            SerialOutput::File(p) => Box::new(File::create(p).map_err(|source| Error::File { path: p.clone(), source })?),
        };
        let serial = SerialConsole::new(irq(SERIAL_IRQ)?, out);

        let mut cmdline = Cmdline::new(CMDLINE_MAX_SIZE)?;
        if !config.cmdline.is_empty() {
            cmdline.insert_str(&config.cmdline)?;
        }
        let mut virtio: Vec<Arc<Mutex<MmioTransport>>> = Vec::new();
        let mut add = |dev: Box<dyn VirtioDevice>, cmdline: &mut Cmdline| -> Result<Arc<Mutex<MmioTransport>>> {
            let slot = virtio.len() as u64;
            let gsi = VIRTIO_IRQ_BASE + slot as u32;
            if gsi > IRQ_MAX {
                return Err(Error::Config("too many virtio devices".into()));
            }
            let base = VIRTIO_MMIO_BASE + slot * VIRTIO_MMIO_SIZE;
            cmdline.add_virtio_mmio_device(VIRTIO_MMIO_SIZE, vm_memory::GuestAddress(base), gsi, None)?;
            let t = Arc::new(Mutex::new(MmioTransport::new(dev, mem.clone(), irq(gsi)?, reporter.clone())?));
            virtio.push(t.clone());
            Ok(t)
        };
        for (i, b) in config.block.iter().enumerate() {
            add(Box::new(Block::new(&b.path, b.read_only, i)?), &mut cmdline)?;
        }
        let epoll = Epoll::new().map_err(Error::io("epoll"))?;
        let console = if config.console_socket.is_some() || !config.console_ports.is_empty() {
            if config.console_ports.len() >= MAX_PORTS {
                return Err(Error::Config(format!("at most {} console ports", MAX_PORTS - 1)));
            }
            let new_port = |index: usize, path: Option<&std::path::Path>| -> Result<Arc<Mutex<ConsoleHost>>> {
                let listener = path.map(listen).transpose()?;
                Ok(Arc::new(Mutex::new(ConsoleHost::new(listener, epoll.as_raw_fd(), index))))
            };
            let mut ports = vec![new_port(0, config.console_socket.as_deref())?];
            let mut named = Vec::new();
            for (i, (name, path)) in config.console_ports.iter().enumerate() {
                let port = new_port(i + 1, Some(path))?;
                named.push((name.clone(), port.clone()));
                ports.push(port);
            }
            let t = add(Box::new(Console::with_ports(ports[0].clone(), named)), &mut cmdline)?;
            Some((ports, t))
        } else {
            None
        };

        let net = match &config.net {
            Some(n) => {
                let host = Arc::new(Mutex::new(NetHost::new(open_tap(&n.tap)?)));
                let t = add(Box::new(Net::new(host.clone(), n.mac)), &mut cmdline)?;
                Some((host, t))
            }
            None => None,
        };

        let vsock = match &config.vsock {
            Some((cid, uds)) => {
                if *cid < 3 || *cid > u64::from(u32::MAX) {
                    return Err(Error::Config(format!("vsock guest CID {cid}: need 3..2^32")));
                }
                let host = Arc::new(Mutex::new(VsockHost::new(uds.clone(), *cid, epoll.as_raw_fd(), reporter.clone())?));
                let t = add(Box::new(Vsock::new(host.clone(), *cid)), &mut cmdline)?;
                Some((host, t))
            }
            None => None,
        };

        let mut fs_devices = Vec::new();
        for f in &config.fs {
            let (dev, host) = Fs::new(&f.tag, &f.socket, &mem, reporter.clone())?;
            fs_devices.push((add(Box::new(dev), &mut cmdline)?, host));
        }
        for (t, host) in fs_devices {
            let slot = virtio.iter().position(|v| Arc::ptr_eq(v, &t)).ok_or_else(|| Error::Config("virtio-fs slot".into()))?;
            let base = VIRTIO_MMIO_BASE + slot as u64 * VIRTIO_MMIO_SIZE;
            host.start(&vm, base, Arc::downgrade(&t))?;
        }

        let entry = boot::load(&mem, &config.kernel.path, config.initrd.as_deref(), &cmdline, config.pvh)?;
        mptable::setup(&mem, config.vcpus)?;

        let base_cpuid = cpuid::supported(&kvm)?;
        let tsc_deadline = kvm.check_extension(Cap::TscDeadlineTimer);
        let mut vcpus = Vec::new();
        for id in 0..config.vcpus {
            let vcpu = vm.create_vcpu(u64::from(id)).map_err(Error::kvm("KVM_CREATE_VCPU"))?;
            vcpu.set_cpuid2(&cpuid::for_vcpu(&base_cpuid, id, config.vcpus, tsc_deadline)).map_err(Error::kvm("KVM_SET_CPUID2"))?;
            msr::setup(&vcpu)?;
            regs::setup_fpu(&vcpu)?;
            regs::setup_lapic(&vcpu)?;
            if id == 0 {
                regs::setup_sregs(&mem, &vcpu, entry.mode)?;
                regs::setup_regs(&vcpu, entry.entry, entry.mode, entry.boot_info)?;
            }
            vcpus.push(vcpu);
        }

        let devices = Arc::new(Devices { serial: Mutex::new(serial), virtio, reporter: reporter.clone() });
        Ok(Vm {
            _kvm: kvm,
            _vm: vm,
            _mem: mem,
            vcpus,
            devices,
            reporter,
            console,
            net,
            vsock,
            epoll,
            serial_input: config.serial_input,
            stop_evt,
        })
    }

    /// Runs the VM until it stops; returns why. Blocks SIGTERM, SIGINT
    /// and SIGHUP in the calling thread (they stop the VM).
    pub fn run(mut self) -> Result<VmExit> {
        let sigfd = block_stop_signals()?;
        install_kick_handler()?;
        let stop_evt = self.stop_evt.try_clone().map_err(Error::io("eventfd"))?;
        let shared = Arc::new(Shared::new(stop_evt));

        let verbose = self.reporter.verbose();
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        for (id, vcpu) in self.vcpus.drain(..).enumerate() {
            let devices = self.devices.clone();
            let shared2 = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("vcpu{id}"))
                .spawn(move || {
                    unblock_kick_signal();
                    vcpu::run(id as u8, vcpu, devices, shared2, verbose)
                })
                .map_err(|e| Error::Thread(e.to_string()))?;
            threads.push(t);
        }

        let result = self.event_loop(&sigfd, &shared);
        if let Err(e) = &result {
            shared.stop(VmExit::VmmError(e.to_string()));
        }
        shared.stop(VmExit::VmmError("event loop ended".into()));
        kick_threads(&threads);
        for t in threads {
            if t.join().is_err() {
                return Err(Error::Thread("a vCPU thread panicked".into()));
            }
        }
        if let Ok(mut s) = self.devices.serial.lock() {
            s.flush();
        }
        // Output the clients have room for still reaches them; the rest
        // goes with the VM.
        if let Some((ports, _)) = &self.console {
            for p in ports {
                lock(p).flush();
            }
        }
        result?;
        let exit = shared.take_exit().unwrap_or_else(|| VmExit::VmmError("no exit reason".into()));
        let summary = self.reporter.summary();
        if !summary.is_empty() {
            eprintln!("rpc-vmm: guest faults: {summary}");
        }
        let host = self.reporter.host_summary();
        if !host.is_empty() {
            eprintln!("rpc-vmm: host errors: {host}");
        }
        Ok(exit)
    }

    fn event_loop(&mut self, sigfd: &File, shared: &Shared) -> Result<()> {
        const EXIT: u64 = 0;
        const SIGNAL: u64 = 1;
        const STDIN: u64 = 2;
        const TAP: u64 = 5;
        const LISTEN_AGAIN: u64 = 7;
        let epoll = &self.epoll;
        let add = |fd: i32, token: u64| {
            epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN, token)).map_err(Error::io("epoll_ctl"))
        };
        add(shared.exit_evt.as_raw_fd(), EXIT)?;
        add(sigfd.as_raw_fd(), SIGNAL)?;
        let mut stdin_open = false;
        if self.serial_input {
            stdin_open = add(libc::STDIN_FILENO, STDIN).is_ok();
        }
        // The console ports' and vsock's listeners and sockets are in the
        // set already (each watches its own).
        // A listener out of file descriptors leaves the set (it would be
        // ready again at once: a busy loop) until this timer fires.
        let mut listen_again = TimerFd::new().map_err(|e| Error::Io { what: "timerfd", source: e.into() })?;
        add(listen_again.as_raw_fd(), LISTEN_AGAIN)?;
        let paused = |what: &str, e: std::io::Error, timer: &mut TimerFd| {
            self.reporter.host_error("accept paused (out of file descriptors)", format_args!("{what}: {e}"));
            if !timer.is_armed().unwrap_or(false) {
                if let Err(e) = timer.reset(LISTEN_PAUSE, None) {
                    self.reporter.host_error("timerfd failed", format_args!("{e}"));
                }
            }
        };
        if let Some((host, _)) = &self.net {
            // Edge-triggered: a frame the guest has no buffer for waits in
            // the device, which reads on when the guest adds buffers.
            let fd = lock(host).tap.as_raw_fd();
            epoll
                .ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN | EventSet::EDGE_TRIGGERED, TAP))
                .map_err(Error::io("epoll_ctl"))?;
        }
        let mut events = vec![EpollEvent::default(); 16];
        loop {
            if shared.stopping() {
                return Ok(());
            }
            let n = match epoll.wait(-1, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io { what: "epoll_wait", source: e }),
            };
            for ev in &events[..n] {
                match ev.data() {
                    EXIT => return Ok(()),
                    SIGNAL => {
                        let mut info = [0u8; 128];
                        let sig = match (&*sigfd).read(&mut info) {
                            Ok(128) => i32::from_ne_bytes([info[0], info[1], info[2], info[3]]),
                            _ => libc::SIGTERM,
                        };
                        shared.stop(VmExit::Signal(sig));
                        return Ok(());
                    }
                    STDIN => {
                        let mut buf = [0u8; 64];
                        match std::io::stdin().lock().read(&mut buf) {
                            Ok(0) | Err(_) => {
                                if stdin_open {
                                    let _ = epoll.ctl(ControlOperation::Delete, libc::STDIN_FILENO, EpollEvent::default());
                                    stdin_open = false;
                                }
                            }
                            Ok(k) => {
                                lock(&self.devices.serial).input(&buf[..k]);
                            }
                        }
                    }
                    t if (PORT_TOKEN_BASE..PORT_TOKEN_BASE + 2 * MAX_PORTS as u64).contains(&t) => {
                        let Some((ports, transport)) = &self.console else { continue };
                        let index = ((t - PORT_TOKEN_BASE) / 2) as usize;
                        let Some(port) = ports.get(index) else { continue };
                        if (t - PORT_TOKEN_BASE).is_multiple_of(2) {
                            let e = lock(port).accept();
                            if let Some(e) = e {
                                paused("virtio-console", e, &mut listen_again);
                            }
                        } else {
                            // Room in the client's socket, or input: the
                            // device writes and reads as far as it can.
                            lock(port).flush();
                        }
                        lock(transport).host_event(index);
                    }
                    LISTEN_TOKEN => {
                        if let Some((host, _)) = &self.vsock {
                            let e = lock(host).accept();
                            if let Some(e) = e {
                                paused("vsock", e, &mut listen_again);
                            }
                        }
                    }
                    t if t & CONN_TOKEN != 0 => {
                        if let Some((host, transport)) = &self.vsock {
                            lock(host).host_event((t & !CONN_TOKEN) as i32);
                            lock(transport).host_event(0);
                        }
                    }
                    TAP => {
                        if let Some((_, transport)) = &self.net {
                            lock(transport).host_event(0);
                        }
                    }
                    LISTEN_AGAIN => {
                        let _ = listen_again.wait();
                        // Each listener ready again is accepted from (or
                        // paused again) as usual.
                        for p in self.console.iter().flat_map(|(ports, _)| ports) {
                            lock(p).resume_listening();
                        }
                        if let Some((host, _)) = &self.vsock {
                            lock(host).resume_listening();
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// Blocks the stop signals in this thread (vCPU threads inherit it) and
/// returns a signalfd for them.
fn block_stop_signals() -> Result<File> {
    let set = sigset(&STOP_SIGNALS);
    // SAFETY: plain libc calls on a valid signal set; the fd returned by
    // signalfd is owned by the File.
    unsafe {
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(Error::Io { what: "pthread_sigmask", source: std::io::Error::from_raw_os_error(rc) });
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(Error::io("signalfd")(std::io::Error::last_os_error()));
        }
        use std::os::fd::FromRawFd;
        Ok(File::from_raw_fd(fd))
    }
}

extern "C" fn kick_handler(_: libc::c_int) {
    vcpu::kicked();
}

fn install_kick_handler() -> Result<()> {
    // SAFETY: installs an async-signal-safe no-op handler, without
    // SA_RESTART so KVM_RUN returns EINTR.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = kick_handler as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(vcpu::kick_signal(), &sa, std::ptr::null_mut()) != 0 {
            return Err(Error::io("sigaction")(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn unblock_kick_signal() {
    let set = sigset(&[vcpu::kick_signal()]);
    // SAFETY: plain libc call on a valid set.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Kicks every vCPU thread out of KVM_RUN once: the kick handler sets the
/// thread's `immediate_exit`, so a thread about to enter KVM_RUN leaves it
/// at once, and every thread sees the VM stopping. The caller joins them.
fn kick_threads(threads: &[JoinHandle<()>]) {
    use std::os::unix::thread::JoinHandleExt;
    for t in threads {
        if !t.is_finished() {
            // SAFETY: the thread has not been joined, so its pthread_t is
            // valid; the kick signal's handler is async-signal-safe.
            unsafe {
                libc::pthread_kill(t.as_pthread_t(), vcpu::kick_signal());
            }
        }
    }
}

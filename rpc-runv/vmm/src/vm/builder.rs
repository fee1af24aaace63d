//! [`Vm::new`]: a [`VmConfig`] to a VM ready to run. KVM and its
//! capabilities, guest memory, the devices (serial, virtio-mmio block,
//! console, net, vsock, fs) with their irqfds and kernel command line
//! entries, the kernel loaded, and the vCPUs set up to boot it.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};

use kvm_bindings::{kvm_pit_config, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm};
use linux_loader::cmdline::Cmdline;
use vmm_sys_util::epoll::Epoll;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::Vm;
use crate::config::{SerialOutput, VmConfig};
use crate::devices::serial::{SerialConsole, StdoutUntilStop};
use crate::devices::virtio::block::Block;
use crate::devices::virtio::console::{Console, ConsoleHost, MAX_PORTS};
use crate::devices::virtio::fs::Fs;
use crate::devices::virtio::mmio::MmioTransport;
use crate::devices::virtio::net::{open_tap, Net, NetHost};
use crate::devices::virtio::vsock::{Vsock, VsockHost};
use crate::devices::virtio::VirtioDevice;
use crate::devices::Devices;
use crate::layout::*;
use crate::memory;
use crate::report::Reporter;
use crate::x86::{boot, cpuid, mptable, msr, regs};
use crate::{Error, Result};

fn listen(path: &std::path::Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|source| Error::File { path: path.to_owned(), source })?;
    listener.set_nonblocking(true).map_err(Error::io("console socket"))?;
    Ok(listener)
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
}

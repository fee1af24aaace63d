//! vCPU threads: each runs KVM_RUN in a loop and hands port and MMIO
//! exits to the devices, until the guest stops the VM or the VM is
//! stopping (the event loop kicks the thread out of KVM_RUN with a
//! signal whose handler sets the thread's `immediate_exit`, so a kick that
//! comes just before KVM_RUN is not lost).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kvm_ioctls::{VcpuExit, VcpuFd};
use vmm_sys_util::eventfd::EventFd;

use crate::devices::Devices;
use crate::vm::VmExit;

/// The signal that kicks a vCPU thread out of KVM_RUN.
pub fn kick_signal() -> i32 {
    libc::SIGRTMIN()
}

thread_local! {
    /// This vCPU thread's `kvm_run` (null outside [`run`]).
    static KVM_RUN: Cell<*mut kvm_bindings::kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The kick signal's handler body: makes this thread's next (or current)
/// KVM_RUN return EINTR at once. Async-signal-safe: a const thread-local
/// without destructor and one volatile store.
pub(crate) fn kicked() {
    let _ = KVM_RUN.try_with(|p| {
        let p = p.get();
        if !p.is_null() {
            // SAFETY: set by `run` to its vCPU's kvm_run mapping, which
            // lives until `run` clears the pointer (on this same thread).
            unsafe { std::ptr::write_volatile(std::ptr::addr_of_mut!((*p).immediate_exit), 1) };
        }
    });
}

/// State shared by the vCPU threads and the event loop.
pub struct Shared {
    stopping: AtomicBool,
    exit: Mutex<Option<VmExit>>,
    /// Written when a vCPU stops the VM, to wake the event loop.
    pub exit_evt: EventFd,
}

impl Shared {
    pub fn new(exit_evt: EventFd) -> Self {
        Shared { stopping: AtomicBool::new(false), exit: Mutex::new(None), exit_evt }
    }

    /// Records why the VM stops (the first reason wins) and wakes the
    /// event loop.
    pub fn stop(&self, why: VmExit) {
        {
            let mut exit = crate::lock(&self.exit);
            if exit.is_none() {
                *exit = Some(why);
            }
        }
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.exit_evt.write(1);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn take_exit(&self) -> Option<VmExit> {
        crate::lock(&self.exit).take()
    }
}

enum Next {
    Continue,
    Stop(VmExit),
    Crash(String),
}

fn crash_detail(vcpu: &VcpuFd, what: &str) -> String {
    match vcpu.get_regs() {
        Ok(r) => format!("{what} at rip {:#x} (rsp {:#x}, rax {:#x})", r.rip, r.rsp, r.rax),
        Err(_) => what.to_string(),
    }
}

/// The body of vCPU thread `id`.
pub fn run(id: u8, mut vcpu: VcpuFd, devices: Arc<Devices>, shared: Arc<Shared>, verbose: bool) {
    KVM_RUN.with(|p| p.set(vcpu.get_kvm_run()));
    // Once a kick set immediate_exit every KVM_RUN returns EINTR: the
    // kick only comes after `stopping` is set, so the loop ends.
    while !shared.stopping() {
        let next = match vcpu.run() {
            Ok(exit) => match exit {
                VcpuExit::IoIn(port, data) => {
                    devices.pio_read(port, data);
                    Next::Continue
                }
                VcpuExit::IoOut(port, data) => match devices.pio_write(port, data) {
                    Some(why) => Next::Stop(why),
                    None => Next::Continue,
                },
                VcpuExit::MmioRead(addr, data) => {
                    devices.mmio_read(addr, data);
                    Next::Continue
                }
                VcpuExit::MmioWrite(addr, data) => {
                    devices.mmio_write(addr, data);
                    Next::Continue
                }
                VcpuExit::Hlt => Next::Stop(VmExit::Halted),
                VcpuExit::Shutdown => Next::Stop(VmExit::TripleFault),
                VcpuExit::SystemEvent(kind, _) => match kind {
                    kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => Next::Stop(VmExit::PowerOff),
                    kvm_bindings::KVM_SYSTEM_EVENT_RESET => Next::Stop(VmExit::Reset),
                    other => Next::Crash(format!("system event {other}")),
                },
                VcpuExit::Intr | VcpuExit::IrqWindowOpen => Next::Continue,
                VcpuExit::FailEntry(reason, cpu) => Next::Crash(format!("VM entry failed on cpu {cpu}: reason {reason:#x}")),
                VcpuExit::InternalError => Next::Crash("KVM internal error (emulation failure)".into()),
                other => Next::Crash(format!("unhandled exit {other:?}")),
            },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Next::Continue,
            Err(e) => Next::Stop(VmExit::VmmError(format!("vCPU {id}: KVM_RUN: {e}"))),
        };
        match next {
            Next::Continue => {}
            Next::Stop(why) => {
                shared.stop(why);
                break;
            }
            Next::Crash(what) => {
                shared.stop(VmExit::GuestCrash(format!("vCPU {id}: {}", crash_detail(&vcpu, &what))));
                break;
            }
        }
    }
    KVM_RUN.with(|p| p.set(std::ptr::null_mut()));
    if verbose {
        if let Ok(r) = vcpu.get_regs() {
            eprintln!("rpc-vmm: vCPU {id} stopped at rip {:#x} rsp {:#x}", r.rip, r.rsp);
        }
    }
}

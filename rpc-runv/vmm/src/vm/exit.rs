//! Why a VM stopped, and the exit status of `rpc-vmm` for it (part of
//! the contract with rpc-runv, see README.md).

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

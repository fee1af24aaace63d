//! What a VM is made of: the input of [`crate::Vm::new`].

use std::path::PathBuf;

/// The kernel to boot. Either format is loaded by linux-loader: an ELF
/// (`vmlinux`, entered at its PVH entry when it has one and PVH is
/// allowed, otherwise at its ELF entry in 64-bit mode with a Linux zero
/// page in `%rsi`; the test guests are such ELFs) or a bzImage (64-bit
/// entry at load address + 0x200).
#[derive(Clone, Debug)]
pub struct KernelImage {
    pub path: PathBuf,
}

/// A virtio-blk disk backed by a host file.
#[derive(Clone, Debug)]
pub struct BlockConfig {
    pub path: PathBuf,
    pub read_only: bool,
}

/// A virtio-net interface on a host tap device.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The tap's name; rpc-vmm attaches to it (creating it if missing).
    pub tap: String,
    pub mac: [u8; 6],
}

/// A virtio-fs device served by a vhost-user backend (virtiofsd).
#[derive(Clone, Debug)]
pub struct FsConfig {
    /// The tag the guest mounts (`mount -t virtiofs TAG /mnt`), 1..=36 bytes.
    pub tag: String,
    /// The backend's vhost-user socket (virtiofsd `--socket-path`).
    pub socket: PathBuf,
}

/// Where the 8250 serial console goes.
#[derive(Clone, Debug, Default)]
pub enum SerialOutput {
    /// rpc-vmm's stdout (the default).
    #[default]
    Stdout,
    /// Discarded.
    Sink,
    /// A file, created or truncated.
    File(PathBuf),
}

/// A VM's configuration.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// Number of vCPUs, 1..=8.
    pub vcpus: u8,
    /// Guest RAM in MiB (at least 8).
    pub mem_mib: u64,
    pub kernel: KernelImage,
    pub initrd: Option<PathBuf>,
    /// The kernel command line; the VMM appends the virtio-mmio device
    /// declarations (`virtio_mmio.device=4K@ADDR:IRQ`).
    pub cmdline: String,
    /// Enter ELF kernels at their PVH entry point when they have one.
    pub pvh: bool,
    pub serial_output: SerialOutput,
    /// Feed rpc-vmm's stdin to the serial port.
    pub serial_input: bool,
    /// virtio-blk disks, in the order the guest sees them (vda, vdb, ...).
    pub block: Vec<BlockConfig>,
    /// virtio-console (the agent channel): a unix socket rpc-vmm listens
    /// on; one client at a time is the other end of the guest's hvc0.
    pub console_socket: Option<PathBuf>,
    /// Named virtio-console ports 1.. (multiport), each with the unix
    /// socket rpc-vmm listens on for its host end.
    pub console_ports: Vec<(String, PathBuf)>,
    /// virtio-vsock: the guest's CID and the host unix socket path (see
    /// `devices::virtio::vsock`).
    pub vsock: Option<(u64, PathBuf)>,
    /// virtio-net on a tap.
    pub net: Option<NetConfig>,
    /// virtio-fs devices (vhost-user); any of them makes guest memory
    /// shared (memfd-backed) so the backends can map it.
    pub fs: Vec<FsConfig>,
}

impl VmConfig {
    /// A configuration with one vCPU, 128 MiB and nothing attached.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        VmConfig {
            vcpus: 1,
            mem_mib: 128,
            kernel: KernelImage { path: kernel.into() },
            initrd: None,
            cmdline: String::new(),
            pvh: true,
            serial_output: SerialOutput::Stdout,
            serial_input: false,
            block: Vec::new(),
            console_socket: None,
            console_ports: Vec::new(),
            net: None,
            vsock: None,
            fs: Vec::new(),
        }
    }
}

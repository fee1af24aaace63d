//! rpc-vmm: boots a kernel (or a test guest) in a KVM micro-VM and exits
//! with the VM's exit status (see the crate README for the codes).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use vmm::config::SerialOutput;
use vmm::report::Reporter;
use vmm::vm::EXIT_VMM_ERROR;
use vmm::{BlockConfig, FsConfig, NetConfig, Vm, VmConfig};

/// Boot a kernel in a KVM micro-VM.
#[derive(Parser, Debug)]
#[command(name = "rpc-vmm", version)]
struct Args {
    /// Kernel: ELF vmlinux (PVH entry if present) or bzImage.
    #[arg(long)]
    kernel: PathBuf,
    /// Initrd / initramfs (uncompressed is fastest).
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// Kernel command line (virtio-mmio devices are appended).
    #[arg(long, default_value = "console=ttyS0 reboot=k panic=-1")]
    cmdline: String,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    vcpus: u8,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 128)]
    mem: u64,
    /// Enter ELF kernels at their 64-bit entry even if they have a PVH one.
    #[arg(long)]
    no_pvh: bool,
    /// virtio-blk disk, read-write: --disk PATH, read-only: --disk PATH,ro
    #[arg(long = "disk")]
    disks: Vec<String>,
    /// virtio-console: unix socket to listen on for the host end.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Named virtio-console port (multiport): --port NAME=SOCKET, repeatable.
    #[arg(long = "port")]
    ports: Vec<String>,
    /// virtio-vsock: CID,SOCKET (guest connects to port P reach SOCKET_P;
    /// host clients of SOCKET say "CONNECT P\n").
    #[arg(long)]
    vsock: Option<String>,
    /// virtio-net on this tap device (created if missing).
    #[arg(long)]
    net_tap: Option<String>,
    /// MAC address of the virtio-net interface.
    #[arg(long, default_value = "52:54:00:12:34:56")]
    mac: String,
    /// virtio-fs over vhost-user: --fs TAG=SOCKET, the socket of a running
    /// backend (virtiofsd --socket-path); repeatable. Makes guest memory
    /// shared (memfd).
    #[arg(long = "fs")]
    fs: Vec<String>,
    /// Serial output to a file instead of stdout ("-" for stdout, "none" to drop it).
    #[arg(long, default_value = "-")]
    serial: String,
    /// Feed stdin to the serial port.
    #[arg(long)]
    stdin: bool,
    /// Print every guest fault and ignored access.
    #[arg(long, short)]
    verbose: bool,
}

fn config(args: &Args) -> anyhow::Result<VmConfig> {
    let mut c = VmConfig::new(&args.kernel);
    c.initrd = args.initrd.clone();
    c.cmdline = args.cmdline.clone();
    c.vcpus = args.vcpus;
    c.mem_mib = args.mem;
    c.pvh = !args.no_pvh;
    c.serial_input = args.stdin;
    c.serial_output = match args.serial.as_str() {
        "-" => SerialOutput::Stdout,
        "none" => SerialOutput::Sink,
        p => SerialOutput::File(p.into()),
    };
    for d in &args.disks {
        let (path, read_only) = match d.strip_suffix(",ro") {
            Some(p) => (p, true),
            None => (d.strip_suffix(",rw").unwrap_or(d), false),
        };
        c.block.push(BlockConfig { path: path.into(), read_only });
    }
    c.console_socket = args.console_socket.clone();
    for p in &args.ports {
        let (name, path) = p.split_once('=').with_context(|| format!("--port {p}: want NAME=SOCKET"))?;
        c.console_ports.push((name.to_string(), path.into()));
    }
    if let Some(v) = &args.vsock {
        let (cid, path) = v.split_once(',').with_context(|| format!("--vsock {v}: want CID,SOCKET"))?;
        let cid = cid.parse().with_context(|| format!("--vsock {v}: bad CID"))?;
        c.vsock = Some((cid, path.into()));
    }
    for f in &args.fs {
        let (tag, path) = f.split_once('=').with_context(|| format!("--fs {f}: want TAG=SOCKET"))?;
        c.fs.push(FsConfig { tag: tag.to_string(), socket: path.into() });
    }
    if let Some(tap) = &args.net_tap {
        let mac = vmm::devices::virtio::net::parse_mac(&args.mac).with_context(|| format!("--mac {}: not a MAC address", args.mac))?;
        c.net = Some(NetConfig { tap: tap.clone(), mac });
    }
    Ok(c)
}

fn run(args: &Args) -> anyhow::Result<vmm::VmExit> {
    let config = config(args)?;
    let reporter = Arc::new(Reporter::new(args.verbose));
    let vm = Vm::new(&config, reporter).context("building the VM")?;
    vm.run().context("running the VM")
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(exit) => {
            if args.verbose || exit.exit_code() >= EXIT_VMM_ERROR {
                eprintln!("rpc-vmm: {exit}");
            }
            ExitCode::from(exit.exit_code().clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("rpc-vmm: {e:#}");
            ExitCode::from(EXIT_VMM_ERROR as u8)
        }
    }
}

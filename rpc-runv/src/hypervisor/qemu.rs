//! QEMU `-M microvm` for a [`LaunchSpec`]: its command line ([`argv`],
//! what a supervisor inside the container execs) and QEMU as a child
//! process of the caller ([`spawn`], for tests and direct use).

use super::spec::{Accel, LaunchSpec, FS_TAG};
use super::{Error, Result};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// QEMU's command line for `spec`, `qemu` being argv[0].
///
/// The machine: microvm with its firmware's MP table (so `-smp` works
/// without ACPI), `acpi=off` because our kernel has no ACPI and only then
/// does QEMU put the virtio-mmio devices on the kernel command line
/// (`virtio_mmio.device=`), no RTC and no option ROMs (boot time). An
/// `i8042` because guests reboot with `reboot=k` (what rpc-vmm takes as
/// power-off) and microvm has no keyboard controller: without it the
/// reset never happens and the VM spins. `-no-reboot` turns the reset into
/// QEMU's exit. Guest RAM is a shared memfd: vhost-user backends map it.
pub fn argv(spec: &LaunchSpec, qemu: &Path) -> Vec<String> {
    let mut a: Vec<String> = Vec::with_capacity(48);
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    let (accel, cpu) = match spec.accel {
        Accel::Tcg => ("tcg", "max"),
        Accel::Kvm => ("kvm", "host"),
    };
    let mem = format!("{}", spec.mem_mib);
    let memfd = format!("memory-backend-memfd,id=mem,size={}M,share=on", spec.mem_mib);
    let smp = spec.vcpus.to_string();
    push(&[&qemu.to_string_lossy()]);
    push(&["-M", "microvm,x-option-roms=off,rtc=off,acpi=off", "-accel", accel, "-cpu", cpu]);
    push(&["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]);
    push(&["-m", &mem, "-smp", &smp]);
    push(&["-object", &memfd, "-machine", "memory-backend=mem"]);
    push(&["-kernel", &spec.kernel.to_string_lossy(), "-initrd", &spec.initrd.to_string_lossy()]);
    push(&["-append", &spec.cmdline]);
    push(&["-device", "i8042", "-global", "virtio-mmio.force-legacy=false"]);
    let fs = format!("socket,id=fs,path={}", escape(&spec.fs_socket()));
    push(&["-chardev", &fs, "-device", &format!("vhost-user-fs-device,chardev=fs,tag={FS_TAG}")]);
    let vs = format!("socket,id=vsock,path={}", escape(&spec.vsock_vhost_socket()));
    push(&["-chardev", &vs, "-device", "vhost-user-vsock-device,chardev=vsock"]);
    if let Some(t) = spec.tap {
        // vhost=off: this host has no /dev/vhost-net, and QEMU's own
        // virtio-net backend is what the tap fd needs anyway.
        push(&["-netdev", &format!("tap,id=net,fd={},vhost=off", t.fd)]);
        push(&["-device", &format!("virtio-net-device,netdev=net,mac={}", t.mac_string())]);
    }
    let serial = format!("file,id=serial,path={}", escape(&spec.serial_log()));
    push(&["-chardev", &serial, "-serial", "chardev:serial"]);
    a
}

/// A path as the value of a QEMU `key=value,...` option: commas doubled
/// (QEMU's escape), so a directory named `a,b` cannot add options.
fn escape(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

/// QEMU running as our child. Dropping it kills and reaps it.
#[derive(Debug)]
pub struct Vm {
    child: Option<Child>,
    pid: i32,
    started: Instant,
    serial_log: PathBuf,
    /// QEMU's own stderr (its errors), next to the serial log.
    stderr_log: PathBuf,
}

/// Starts QEMU for `spec` (validated first: a bad spec starts nothing).
/// The helpers must already listen: QEMU connects to their sockets at
/// once and fails when they are missing. Its stdout is discarded, its
/// stderr goes to `<vm_dir>/qemu.log` (read by [`Vm::stderr`]).
pub fn spawn(spec: &LaunchSpec, qemu: &Path) -> Result<Vm> {
    spec.validate()?;
    let args = argv(spec, qemu);
    let stderr_log = spec.vm_dir.join("qemu.log");
    let log = std::fs::File::create(&stderr_log).map_err(|e| Error::io("creating", &stderr_log, e))?;
    let mut cmd = Command::new(qemu);
    cmd.args(&args[1..]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    if let Some(t) = spec.tap {
        let fd = t.fd;
        // SAFETY: fcntl on an inherited fd number in the forked child is
        // async-signal-safe; it only clears close-on-exec so QEMU gets the
        // tap at the number its command line names.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = cmd.spawn().map_err(|e| Error::Spawn { program: "qemu-system-x86_64", path: qemu.to_path_buf(), source: e })?;
    Ok(Vm { pid: child.id() as i32, child: Some(child), started: Instant::now(), serial_log: spec.serial_log(), stderr_log })
}

impl Vm {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// When QEMU was started (for boot times).
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn serial_log(&self) -> &Path {
        &self.serial_log
    }

    /// What the guest printed on its serial console so far: its last
    /// [`SERIAL_TAIL`] bytes (the guest decides how much it writes).
    pub fn serial(&self) -> String {
        read_tail(&self.serial_log, SERIAL_TAIL)
    }

    /// What QEMU printed on stderr so far (its own errors), the last
    /// [`SERIAL_TAIL`] bytes.
    pub fn stderr(&self) -> String {
        read_tail(&self.stderr_log, SERIAL_TAIL)
    }

    /// Its exit status if it has exited (reaped then), without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            None => Ok(None),
            Some(c) => c.try_wait().map_err(|e| Error::io("waiting for qemu pid", format!("{}", self.pid), e)),
        }
    }

    /// Waits at most `timeout` for QEMU to exit (the guest powering off or
    /// rebooting); None if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let Some(c) = self.child.as_mut() else { return Ok(None) };
        let pidfd = runtime_core::linux::probe::pidfd_open(self.pid).and_then(|r| r.ok());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = c.try_wait().map_err(|e| Error::io("waiting for qemu pid", format!("{}", self.pid), e))? {
                return Ok(Some(st));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match &pidfd {
                Some(fd) => {
                    runtime_core::linux::probe::poll_fd(fd.as_raw_fd(), Some(left));
                }
                None => std::thread::sleep(left.min(Duration::from_millis(10))),
            }
        }
    }

    /// Waits until the serial log holds `needle`, QEMU exits, or
    /// `timeout` passes; true if it holds it. The log is read on from
    /// where the last look ended, so a chatty guest costs its output once.
    pub fn wait_serial(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut scan = Scan::new(needle.as_bytes());
        let mut f = None;
        loop {
            if f.is_none() {
                f = std::fs::File::open(&self.serial_log).ok();
            }
            if let Some(f) = f.as_mut() {
                if scan.feed(f) {
                    return true;
                }
            }
            let exited = matches!(self.try_wait(), Ok(Some(_)));
            if exited || Instant::now() >= deadline {
                // One last look: QEMU may have written it just before.
                return f.as_mut().is_some_and(|f| scan.feed(f));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills QEMU (SIGKILL: the guest's state is worth nothing once we
    /// stop it) and reaps it. Idempotent.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
            }
            c.wait().map_err(|e| Error::io("reaping qemu pid", format!("{}", self.pid), e))?;
        }
        Ok(())
    }
}

/// How much of a log [`Vm::serial`] and [`Vm::stderr`] return.
pub const SERIAL_TAIL: u64 = 1 << 20;

/// The last `max` bytes of a log (empty when there is none).
pub fn tail(path: &Path, max: u64) -> String {
    read_tail(path, max)
}

fn read_tail(path: &Path, max: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if f.seek(SeekFrom::Start(len.saturating_sub(max))).is_err() {
        return String::new();
    }
    let mut b = Vec::new();
    let _ = f.take(max).read_to_end(&mut b);
    String::from_utf8_lossy(&b).into_owned()
}

/// A search for a byte string in a growing file, read in chunks: keeps
/// only the last `needle.len() - 1` bytes between reads.
struct Scan<'a> {
    needle: &'a [u8],
    carry: Vec<u8>,
}

impl<'a> Scan<'a> {
    fn new(needle: &'a [u8]) -> Scan<'a> {
        Scan { needle, carry: Vec::new() }
    }

    /// Reads what `f` has now (up to its current end); true once found.
    fn feed(&mut self, f: &mut impl std::io::Read) -> bool {
        let mut buf = [0u8; 16384];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) | Err(_) => return self.needle.is_empty(),
                Ok(n) => n,
            };
            self.carry.extend_from_slice(&buf[..n]);
            if self.carry.windows(self.needle.len().max(1)).any(|w| w == self.needle) {
                return true;
            }
            let keep = self.needle.len().saturating_sub(1);
            let cut = self.carry.len().saturating_sub(keep);
            self.carry.drain(..cut);
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::spec::Tap;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            vcpus: 2,
            mem_mib: 256,
            kernel: "/vm/guest/bzImage".into(),
            initrd: "/vm/guest/initramfs.cpio".into(),
            cmdline: "console=ttyS0 quiet reboot=k panic=-1".into(),
            accel: Accel::Tcg,
            vm_dir: "/vm".into(),
            shared_dir: "/shared".into(),
            tap: None,
        }
    }

    fn after<'a>(a: &'a [String], flag: &str) -> Vec<&'a str> {
        a.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
    }

    #[test]
    fn argv_of_a_tcg_vm() {
        let a = argv(&spec(), Path::new("/usr/bin/qemu-system-x86_64"));
        assert_eq!(a[0], "/usr/bin/qemu-system-x86_64");
        assert_eq!(after(&a, "-accel"), ["tcg"]);
        assert_eq!(after(&a, "-cpu"), ["max"]);
        assert_eq!(after(&a, "-m"), ["256"]);
        assert_eq!(after(&a, "-smp"), ["2"]);
        assert_eq!(after(&a, "-kernel"), ["/vm/guest/bzImage"]);
        assert_eq!(after(&a, "-append"), ["console=ttyS0 quiet reboot=k panic=-1"]);
        assert_eq!(
            after(&a, "-chardev"),
            ["socket,id=fs,path=/vm/fs.sock", "socket,id=vsock,path=/vm/vsock.vhost", "file,id=serial,path=/vm/serial.log"]
        );
        assert!(after(&a, "-device").contains(&"vhost-user-fs-device,chardev=fs,tag=rpcfs"));
        assert!(after(&a, "-object").contains(&"memory-backend-memfd,id=mem,size=256M,share=on"));
        assert!(after(&a, "-netdev").is_empty());
    }

    #[test]
    fn argv_of_a_kvm_vm_with_a_nic() {
        let s = LaunchSpec { accel: Accel::Kvm, tap: Some(Tap { fd: 7, mac: [0x02, 0, 0xa, 0xb, 0xc, 0xff] }), ..spec() };
        let a = argv(&s, Path::new("qemu"));
        assert_eq!(after(&a, "-accel"), ["kvm"]);
        assert_eq!(after(&a, "-cpu"), ["host"]);
        assert_eq!(after(&a, "-netdev"), ["tap,id=net,fd=7,vhost=off"]);
        assert!(after(&a, "-device").contains(&"virtio-net-device,netdev=net,mac=02:00:0a:0b:0c:ff"));
    }

    #[test]
    fn scan_finds_a_needle_split_across_reads() {
        let mut s = Scan::new(b"RPC-GUEST-INIT-OK");
        assert!(!s.feed(&mut &b"boot... RPC-GUEST-"[..]));
        assert!(!s.feed(&mut &b""[..]));
        assert!(s.feed(&mut &b"INIT-OK\n"[..]));
        let mut s = Scan::new(b"OK");
        assert!(!s.feed(&mut &b"O K"[..]));
        let big = vec![b'x'; 100_000];
        assert!(!s.feed(&mut &big[..]));
        assert!(s.carry.len() <= 1);
    }

    #[test]
    fn commas_in_paths_cannot_add_options() {
        let s = LaunchSpec { vm_dir: "/run/a,server=on".into(), ..spec() };
        let a = argv(&s, Path::new("qemu"));
        assert_eq!(after(&a, "-chardev")[0], "socket,id=fs,path=/run/a,,server=on/fs.sock");
    }
}

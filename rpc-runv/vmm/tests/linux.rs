//! Linux boot: the guest kernel and initramfs of rpc-runv/guest/ (built
//! and cached by rpc-runv/guest/build.sh, outside the clone) boot under
//! rpc-vmm to an init that prints a marker and resets the VM.
//!
//! Expected duration: < 1 s on hardware KVM; 20-40 s on the development
//! VM, whose KVM emulates guest ring 0 instruction by instruction.
//! Skipped (with the reason) when the cached build is missing, except
//! under CI (`CI` set), where a missing kernel is a failure.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// Boot options for hosts that emulate guest ring 0 (see the crate
/// README); harmless on hardware KVM.
const EMULATION_OPTS: &str = "noxsave nofsgsbase clearcpuid=308,295,298,145,151,158,306,534,515,141 \
                              tsc=reliable no_timer_check";
const MARKER: &str = "RPC-GUEST-INIT-OK";
const T: Duration = Duration::from_secs(600);

/// The cached guest build matching the checked-in sources, if any.
fn guest_dir(test: &str) -> Option<PathBuf> {
    if skip(test) {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest/build.sh");
    let out = Command::new("bash").arg(&script).arg("--check").output().expect("run build.sh --check");
    if out.status.success() {
        let cache = std::env::var("RPC_GUEST_CACHE").unwrap_or_else(|_| "/var/cache/rpc-runtimes".into());
        return Some(Path::new(&cache).join("guest/current"));
    }
    let why = format!("no cached guest kernel for the current rpc-runv/guest sources (run {})", script.display());
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}");
    }
    testkit::skip!("{test}: {why}");
    None
}

fn boot(kernel: &Path, initrd: &Path, extra: &[&str]) -> Run {
    let cmdline = format!("console=ttyS0 reboot=k panic=-1 quiet {EMULATION_OPTS}");
    let mut args = vec!["--kernel", kernel.to_str().unwrap(), "--initrd", initrd.to_str().unwrap(), "--cmdline", &cmdline];
    args.extend_from_slice(extra);
    run(&args, T)
}

/// Linux's own virtio drivers on our devices: init prints the first line
/// of /dev/vda (virtio-blk, read-only), writes a marker to /dev/hvc0
/// (virtio-console), which the host reads from the console socket, and
/// mounts the virtio-fs tag `rpcfs` (virtiofsd on a temp dir), prints
/// the first line of its hello.txt and writes fromlinux.txt, which the
/// host reads back. One boot for all: each costs ~30 s here.
#[test]
fn linux_vmlinux_pvh_boots_to_init_with_virtio_disk_console_and_fs() {
    let test = "linux_vmlinux_pvh_boots_to_init_with_virtio_disk_console_and_fs";
    let Some(g) = guest_dir(test) else { return };
    let virtiofsd = virtiofsd(test);
    let d = TempDir::new("linux");
    let shared = d.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("hello.txt"), "shared by the linux test\n").unwrap();
    let fs_sock = d.path().join("fs.sock");
    let backend = virtiofsd.as_ref().map(|bin| Backend::start(bin, &shared, &fs_sock, d.path()));
    let fs_arg = format!("rpcfs={}", fs_sock.display());
    let disk = d.path().join("disk.img");
    let mut img = b"disk made by the linux test\n".to_vec();
    img.resize(1 << 20, 0);
    std::fs::write(&disk, &img).unwrap();
    let disk_arg = format!("{},ro", disk.display());
    let sock = d.path().join("console.sock");
    let sock2 = sock.clone();
    let reader = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let mut conn = loop {
            match UnixStream::connect(&sock2) {
                Ok(c) => break c,
                Err(_) if start.elapsed() < T => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return format!("connect: {e}"),
            }
        };
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        String::from_utf8_lossy(&got).into_owned()
    });
    let mut args = vec!["--disk", &disk_arg, "--console-socket", sock.to_str().unwrap()];
    if backend.is_some() {
        args.extend(["--fs", &fs_arg]);
    }
    let r = boot(&g.join("vmlinux"), &g.join("initramfs.cpio"), &args);
    eprintln!("vmlinux (PVH) with disk, console and fs to init and reset: {:.1} s", r.elapsed.as_secs_f64());
    assert!(r.stdout.contains(MARKER), "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.code(), Some(0), "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("vda: disk made by the linux test\r\n"), "stdout: {}", r.stdout);
    let console = reader.join().unwrap();
    assert!(console.contains("RPC-GUEST-HVC0-OK"), "console socket got: {console:?}");
    if let Some(b) = backend {
        assert!(r.stdout.contains("virtiofs: shared by the linux test\r\n"), "stdout: {}\nvirtiofsd: {}", r.stdout, b.log_text());
        let written = std::fs::read_to_string(shared.join("fromlinux.txt"));
        assert_eq!(written.ok().as_deref(), Some("written by linux over virtiofs\n"), "virtiofsd: {}", b.log_text());
    }
}

#[test]
fn linux_bzimage_boots_to_init() {
    let Some(g) = guest_dir("linux_bzimage_boots_to_init") else { return };
    let r = boot(&g.join("bzImage"), &g.join("initramfs.cpio"), &[]);
    eprintln!("bzImage to init and reset: {:.1} s", r.elapsed.as_secs_f64());
    assert!(r.stdout.contains(MARKER), "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.code(), Some(0), "stdout: {}\nstderr: {}", r.stdout, r.stderr);
}

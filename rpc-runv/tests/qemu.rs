//! rpc-runv's QEMU backend pieces, on real VMs (QEMU/TCG, root): the test
//! initramfs booted through `rpc_runv::hypervisor` with virtio-fs and
//! vhost-user vsock, the guest's vsock echo reached through the hybrid
//! socket, and nothing left behind after a stop or a failed start.
//!
//! Needs qemu-system-x86_64, virtiofsd, vhost-device-vsock and the guest
//! kernel + initramfs (`make guest`); skips, saying which is missing,
//! without them. `RPC_RUNV_INITRD` etc. override the cached files.

use rpc_runv::hypervisor::binaries::{self, Binaries};
use rpc_runv::hypervisor::launch::{self, Running};
use rpc_runv::hypervisor::{virtiofsd, vsockd, Accel, Error, Helper, HelperRecord, LaunchSpec, SpawnOpts};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PKG: &str = env!("CARGO_PKG_NAME");
/// The port init.c's echo server listens on (`rpc.vsock-echo`).
const ECHO_PORT: u32 = 1234;
/// QEMU/TCG boots the test initramfs in ~1-3 s; 60 s leaves room for a
/// loaded CI host without letting a hung guest hang the suite.
const BOOT: Duration = Duration::from_secs(60);
const CMDLINE: &str = "console=ttyS0 quiet reboot=k panic=-1";

/// The programs and guest files, or None (the skip recorded) when this
/// host lacks one, or is not root.
fn setup(what: &str) -> Option<Binaries> {
    if testkit::skip::unless_root(PKG, what) {
        return None;
    }
    let b = match binaries::find() {
        Ok(b) => b,
        Err(e) => {
            testkit::skip!("{what}: {e}");
            return None;
        }
    };
    Some(b)
}

/// false (the skip recorded) when the initramfs was built before
/// init.c's vsock echo mode: build.sh keeps the init.c it was built from
/// beside it (a `make guest` rebuilds it in a second).
fn has_echo_mode(b: &Binaries, what: &str) -> bool {
    match std::fs::read_to_string(b.initrd.with_file_name("init.c")) {
        Ok(src) if !src.contains("rpc.vsock-echo") => {
            testkit::skip!("{what}: the guest initramfs {} predates init.c's vsock echo mode: run make guest", b.initrd.display());
            false
        }
        _ => true,
    }
}

/// A per-test directory (vm_dir and shared_dir inside), removed at drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("rpc-runv-qemu-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("vm")).expect("create vm dir");
        std::fs::create_dir_all(p.join("shared")).expect("create shared dir");
        Dir(p)
    }
    fn vm(&self) -> PathBuf {
        self.0.join("vm")
    }
    fn shared(&self) -> PathBuf {
        self.0.join("shared")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spec(b: &Binaries, d: &Dir, cmdline: &str) -> LaunchSpec {
    LaunchSpec {
        vcpus: 1,
        mem_mib: 256,
        kernel: b.kernel.clone(),
        initrd: b.initrd.clone(),
        cmdline: cmdline.to_string(),
        accel: Accel::Tcg,
        vm_dir: d.vm(),
        shared_dir: d.shared(),
        tap: None,
    }
}

/// Processes whose command line mentions `needle` (our per-test paths
/// are in every argv of QEMU and the helpers), zombies excluded.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && pid != std::process::id() as i32 {
            v.push(format!("{pid}: {cmd}"));
        }
    }
    v
}

/// Sockets (or anything) left in the VM's directory, logs aside.
fn leftovers(vm: &Path) -> Vec<String> {
    std::fs::read_dir(vm)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| !n.ends_with(".log")).collect())
        .unwrap_or_default()
}

fn assert_nothing_left(d: &Dir) {
    let procs = processes_mentioning(&d.0.to_string_lossy());
    assert!(procs.is_empty(), "processes left: {procs:?}");
    let files = leftovers(&d.vm());
    assert!(files.is_empty(), "files left in the VM dir: {files:?}");
}

fn rss(pid: i32) -> String {
    let own = testkit::leaks::rss_kib(pid).map(|k| format!("{k} KiB")).unwrap_or_else(|| "gone".into());
    let kids: Vec<String> =
        testkit::leaks::children_of(pid).into_iter().filter_map(|(c, _)| testkit::leaks::rss_kib(c).map(|k| format!("{k} KiB"))).collect();
    if kids.is_empty() {
        own
    } else {
        format!("{own} (+ children {})", kids.join(", "))
    }
}

fn serial_and_logs(r: &Running, d: &Dir) -> String {
    let log = |n: &str| std::fs::read_to_string(d.vm().join(n)).unwrap_or_default();
    format!(
        "serial:\n{}\nqemu:\n{}\nvirtiofsd:\n{}\nvhost-device-vsock:\n{}",
        r.vm.serial(),
        r.vm.stderr(),
        log("virtiofsd.log"),
        log("vhost-device-vsock.log")
    )
}

/// Echoes `data` through `s`: written by a thread while read here, since
/// the echo comes back before the writing ends.
fn echo(s: &std::os::unix::net::UnixStream, data: &[u8]) -> Vec<u8> {
    let mut w = s.try_clone().expect("clone stream");
    let out = data.to_vec();
    let t = std::thread::spawn(move || w.write_all(&out));
    let mut got = vec![0u8; data.len()];
    let mut r = s;
    r.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    r.read_exact(&mut got).expect("read the echo");
    t.join().expect("writer thread").expect("write to the guest");
    got
}

#[test]
fn boots_with_virtiofs_and_vsock_echo_and_stop_leaves_nothing() {
    let what = "boot QEMU/TCG with virtiofsd and vhost-device-vsock";
    let Some(b) = setup(what) else { return };
    if !has_echo_mode(&b, what) {
        return;
    }
    let d = Dir::new("echo");
    std::fs::write(d.shared().join("hello.txt"), "hello from the host side\n").unwrap();
    let s = spec(&b, &d, &format!("{CMDLINE} rpc.vsock-echo"));
    let mut r = launch::start(&s, &launch::Opts::new(&b, &s)).expect("start the VM");

    assert!(r.vm.wait_serial("RPC-GUEST-VSOCK-ECHO", BOOT), "the guest did not come up:\n{}", serial_and_logs(&r, &d));
    let booted = r.vm.started().elapsed();
    let serial = r.vm.serial();
    assert!(serial.contains("virtiofs: hello from the host side"), "the guest did not read hello.txt:\n{}", serial_and_logs(&r, &d));
    assert!(serial.contains("RPC-GUEST-INIT-OK"), "{serial}");
    assert_eq!(std::fs::read_to_string(d.shared().join("fromlinux.txt")).unwrap(), "written by linux over virtiofs\n");

    let s_uds = s.vsock_uds();
    let stream = rpc_proto::hvsock::dial(&s_uds, ECHO_PORT, Instant::now() + BOOT)
        .unwrap_or_else(|e| panic!("dial the guest's echo port: {e}\n{}", serial_and_logs(&r, &d)));
    let connected = r.vm.started().elapsed();
    assert_eq!(echo(&stream, b"ping over vhost-user vsock\n"), b"ping over vhost-user vsock\n");
    // More than vhost-device-vsock's 64 KiB buffer and the guest's 4 KiB
    // reads: flow control both ways.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let t = Instant::now();
    assert!(echo(&stream, &big) == big, "the 300 KB echo came back different");
    let big_time = t.elapsed();
    drop(stream);
    // A second connection after the first closed: the guest serves on.
    let again = rpc_proto::hvsock::dial(&s_uds, ECHO_PORT, Instant::now() + BOOT).expect("dial again");
    assert_eq!(echo(&again, b"again"), b"again");
    drop(again);

    eprintln!(
        "boot: RPC-GUEST-INIT-OK + echo listening {booted:?} after QEMU started, vsock connected at {connected:?}; 300 KB echo {big_time:?}; \
         RSS qemu {}, virtiofsd {}, vhost-device-vsock {}",
        rss(r.vm.pid()),
        rss(r.virtiofsd.pid()),
        rss(r.vsockd.pid())
    );
    let pids = [r.vm.pid(), r.virtiofsd.pid(), r.vsockd.pid()];
    r.stop().expect("stop");
    for p in pids {
        assert!(!Path::new(&format!("/proc/{p}")).exists(), "pid {p} still there after stop");
    }
    assert_nothing_left(&d);
}

#[test]
fn guest_reboot_ends_qemu_and_virtiofsd() {
    let Some(b) = setup("QEMU exits when the guest reboots") else { return };
    let d = Dir::new("reboot");
    let s = spec(&b, &d, CMDLINE);
    let mut r = launch::start(&s, &launch::Opts::new(&b, &s)).expect("start the VM");
    // reboot=k needs the i8042 the argv adds to microvm; -no-reboot turns
    // the reset into QEMU's exit, status 0.
    let st = r.vm.wait_timeout(BOOT).expect("wait for qemu");
    let took = r.vm.started().elapsed();
    let Some(st) = st else { panic!("QEMU still runs {BOOT:?} after start:\n{}", serial_and_logs(&r, &d)) };
    assert!(st.success(), "QEMU: {st}\n{}", serial_and_logs(&r, &d));
    assert!(r.vm.serial().contains("RPC-GUEST-INIT-OK"), "{}", serial_and_logs(&r, &d));
    eprintln!("boot to reset and QEMU's exit: {took:?}");
    // virtiofsd ends with its only client; vhost-device-vsock waits for
    // the next QEMU: the stop is what ends it.
    let t = Instant::now();
    while r.virtiofsd.running() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!r.virtiofsd.running(), "virtiofsd outlived its VM");
    assert!(r.vsockd.running(), "vhost-device-vsock is expected to wait for another VM");
    r.stop().expect("stop after the guest's exit");
    assert_nothing_left(&d);
}

#[test]
fn missing_kernel_is_a_clear_error_and_starts_nothing() {
    let Some(b) = setup("launch errors") else { return };
    let d = Dir::new("nokernel");
    let missing = d.0.join("no-such-bzImage");
    let s = LaunchSpec { kernel: missing.clone(), ..spec(&b, &d, CMDLINE) };
    let e = launch::start(&s, &launch::Opts::new(&b, &s)).expect_err("a missing kernel must fail");
    assert!(matches!(e, Error::BadSpec { field: "kernel", .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("kernel") && msg.contains(&*missing.to_string_lossy()), "{msg}");
    assert_nothing_left(&d);
    assert!(std::fs::read_dir(d.vm()).unwrap().next().is_none(), "no log either: nothing started");
}

/// A bash script standing in for a helper.
fn script(d: &Dir, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = d.0.join(name);
    std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn helper_exiting_before_it_listens_is_reported_and_the_start_undone() {
    let Some(b) = setup("helper failures") else { return };
    let d = Dir::new("early");
    let s = spec(&b, &d, CMDLINE);
    let mut o = launch::Opts::new(&b, &s);
    o.vsockd.program = script(&d, "bad-vsockd", "echo 'vsockd: cannot open the frobnicator' >&2; exit 3");
    let e = launch::start(&s, &o).expect_err("a helper that exits must fail the start");
    let msg = e.to_string();
    assert!(matches!(e, Error::ExitedEarly { program: "vhost-device-vsock", .. }), "{e:?}");
    assert!(msg.contains("exit status: 3") && msg.contains("cannot open the frobnicator"), "{msg}");
    // virtiofsd had started: it is stopped, its socket and pid file gone.
    assert_nothing_left(&d);
}

#[test]
fn helper_that_never_listens_is_killed_with_its_children_at_the_deadline() {
    if setup("helper failures").is_none() {
        return;
    }
    let d = Dir::new("deadline");
    let tag = d.0.to_string_lossy().into_owned();
    // A parent with a child, both named after the test (argv[0]) so that
    // a survivor shows.
    let prog = script(&d, "mute-vsockd", &format!("(exec -a 'child {tag}' sleep 300) &\nexec -a 'parent {tag}' sleep 301"));
    let mut o = vsockd::Opts::new(prog);
    o.spawn.listen_timeout = Duration::from_millis(400);
    let t = Instant::now();
    let e = vsockd::spawn(3, &d.vm().join("vsock.vhost"), &d.vm().join("vsock.sock"), &o).expect_err("must time out");
    assert!(matches!(e, Error::NotListening { .. }), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(8), "the deadline was not kept: {:?}", t.elapsed());
    let procs = processes_mentioning(&tag);
    assert!(procs.is_empty(), "left running: {procs:?}");
}

#[test]
fn a_live_socket_is_not_taken_over() {
    let Some(b) = setup("socket checks") else { return };
    let d = Dir::new("inuse");
    let sock = d.vm().join("fs.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let e = virtiofsd::spawn(&d.shared(), &sock, &virtiofsd::Opts::new(b.virtiofsd.clone())).expect_err("in use");
    assert!(matches!(&e, Error::SocketInUse(p) if p == &sock), "{e:?}");
    assert!(processes_mentioning(&d.0.to_string_lossy()).is_empty());
    assert!(sock.exists(), "someone else's socket must stay");
}

/// A cgroup made for the test under the unified (v2) hierarchy, removed
/// at drop.
struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn unified_root() -> Option<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().find(|l| l.contains(" - cgroup2 ")).and_then(|l| l.split(' ').nth(4)).map(PathBuf::from)
}

#[test]
fn helper_joins_the_callers_cgroup_before_it_runs_and_a_record_stops_it() {
    let Some(b) = setup("helper cgroups") else { return };
    let Some(root) = unified_root() else {
        testkit::skip!("no cgroup2 mount on this host");
        return;
    };
    let d = Dir::new("cgroup");
    let cg = Cgroup(root.join(format!("rpc-runv-qemu-test-{}", std::process::id())));
    std::fs::create_dir(&cg.0).expect("create a cgroup");
    let mut o = vsockd::Opts::new(b.vhost_vsock.clone());
    o.spawn.cgroup_procs = vec![cg.0.join("cgroup.procs")];
    let (vhost, uds) = (d.vm().join("vsock.vhost"), d.vm().join("vsock.sock"));
    let h: Helper = vsockd::spawn(3, &vhost, &uds, &o).expect("start vhost-device-vsock in the cgroup");
    let procs = std::fs::read_to_string(cg.0.join("cgroup.procs")).unwrap();
    assert!(procs.split_whitespace().any(|p| p == h.pid().to_string()), "pid {} not in {}: {procs:?}", h.pid(), cg.0.display());

    // Handed over as a record (a later process's view), stopped from it.
    let rec: HelperRecord = serde_json::from_str(&serde_json::to_string(&h.detach()).unwrap()).unwrap();
    assert!(rec.running());
    assert!(vhost.exists() && uds.exists());
    rec.stop().expect("stop from the record");
    assert!(!rec.running());
    assert!(!vhost.exists() && !uds.exists(), "sockets left after stop");
    rec.stop().expect("a second stop is a no-op");
}

#[test]
fn failing_pre_exec_or_missing_cgroup_starts_nothing() {
    let Some(b) = setup("helper pre_exec") else { return };
    let d = Dir::new("preexec");
    let (vhost, uds) = (d.vm().join("vsock.vhost"), d.vm().join("vsock.sock"));
    let mut o = vsockd::Opts::new(b.vhost_vsock.clone());
    o.spawn.cgroup_procs = vec![d.0.join("no-such-cgroup/cgroup.procs")];
    let e = vsockd::spawn(3, &vhost, &uds, &o).expect_err("missing cgroup");
    assert!(e.to_string().contains("no-such-cgroup"), "{e}");
    let mut o = vsockd::Opts::new(b.vhost_vsock.clone());
    o.spawn = SpawnOpts { pre_exec: Some(Arc::new(|| Err(std::io::Error::from_raw_os_error(libc::EPERM)))), ..o.spawn };
    let e = vsockd::spawn(3, &vhost, &uds, &o).expect_err("failing hook");
    assert!(matches!(e, Error::Spawn { program: "vhost-device-vsock", .. }), "{e:?}");
    assert!(processes_mentioning(&d.0.to_string_lossy()).is_empty());
    assert!(leftovers(&d.vm()).is_empty());
}

/// A tap device (removed when its fd closes), as the network step makes
/// one in the container's netns; here in the test's own.
fn open_tap() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{FromRawFd, OwnedFd};
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        pad: [u8; 22],
    }
    // SAFETY: open of a device node; the fd is owned from here on.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is ours alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReq { name: [0; 16], flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short, pad: [0; 22] };
    req.name[..7].copy_from_slice(b"rpcq%d\0");
    // SAFETY: TUNSETIFF reads and writes one ifreq we own.
    if unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&fd), TUNSETIFF, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

#[test]
fn a_tap_fd_becomes_the_guests_nic() {
    let Some(b) = setup("a tap NIC") else { return };
    let tap = match open_tap() {
        Ok(t) => t,
        Err(e) => {
            testkit::skip!("/dev/net/tun: {e}");
            return;
        }
    };
    let d = Dir::new("tap");
    // Not quiet: the kernel's registration of each virtio-mmio device is
    // the guest's evidence of the NIC (the test init configures no IP).
    let mut s = spec(&b, &d, "console=ttyS0 reboot=k panic=-1");
    s.tap = Some(rpc_runv::hypervisor::Tap { fd: std::os::fd::AsRawFd::as_raw_fd(&tap), mac: [0x02, 0x52, 0x50, 0x43, 0, 1] });
    let mut r = launch::start(&s, &launch::Opts::new(&b, &s)).expect("start the VM");
    let st = r.vm.wait_timeout(BOOT).expect("wait for qemu");
    assert!(st.is_some_and(|s| s.success()), "QEMU: {st:?}\n{}", serial_and_logs(&r, &d));
    let serial = r.vm.serial();
    // fs, vsock, net: three transports (QEMU lists them on the command
    // line it appends, the kernel registers each).
    assert!(serial.contains("virtio-mmio.2"), "no third virtio-mmio device (the NIC):\n{}", serial_and_logs(&r, &d));
    assert!(serial.contains("RPC-GUEST-INIT-OK"), "{}", serial_and_logs(&r, &d));
    r.stop().expect("stop");
    assert_nothing_left(&d);
}

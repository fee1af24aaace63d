//! virtio-fs through the vhost-user backend virtiofsd: a test guest
//! (tests/guests/fs.c) sends FUSE requests that read a file the test put
//! in the shared directory and create one the test reads back; a missing
//! backend socket is a clear setup error (125); a backend killed while the
//! VM runs is reported, the device marked DEVICE_NEEDS_RESET, and the VM
//! goes on (the guest sees it and exits 0).
//!
//! virtiofsd comes from rpc-runv/guest/virtiofsd.sh (`make guest`, CI);
//! without it the tests skip, saying why, except under CI (`CI` set),
//! where a missing virtiofsd is a failure. `RPC_VIRTIOFSD` overrides the
//! binary.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(90);
const HOST_TEXT: &str = "hello from the host over virtio-fs\n";
const GUEST_TEXT: &str = "written by the guest over virtio-fs\n";
const GUEST_OUT: &str = "tag shared0 request queues 1\n\
                         ring outside memory: refused\n\
                         init: ok\n\
                         lookup hello.txt: size 35\n\
                         read: 35 bytes, as written by the host\n\
                         create fromguest.txt: ok\n\
                         write: 36 bytes\n\
                         lookup missing: error 2\n";

/// The temp dir, the shared dir with hello.txt, and the socket path.
fn setup(tag: &str) -> (TempDir, PathBuf, PathBuf) {
    let d = TempDir::new(tag);
    let shared = d.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("hello.txt"), HOST_TEXT).unwrap();
    let socket = d.path().join("fs.sock");
    (d, shared, socket)
}

#[test]
fn fs_guest_reads_and_creates_host_files() {
    let Some(bin) = virtiofsd("fs_guest_reads_and_creates_host_files") else { return };
    let (d, shared, socket) = setup("fs");
    let g = build_guest("fs", d.path());
    let mut backend = Backend::start(&bin, &shared, &socket, d.path());
    let fs = format!("shared0={}", socket.display());
    let r = run(&["--kernel", g.to_str().unwrap(), "--fs", &fs], T);
    eprintln!("fs guest: {:.2} s", r.elapsed.as_secs_f64());
    assert_eq!(r.code(), Some(0), "stdout: {}\nstderr: {}\nvirtiofsd: {}", r.stdout, r.stderr, backend.log_text());
    assert_eq!(r.stdout, GUEST_OUT, "stderr: {}", r.stderr);
    assert_eq!(std::fs::read_to_string(shared.join("fromguest.txt")).unwrap(), GUEST_TEXT);
    // Only the ring outside memory was a fault.
    assert!(r.stderr.contains("rpc-vmm: guest faults: virtio device start failed=1\n"), "{}", r.stderr);
    assert!(r.stderr.contains("queue 1: bad size or rings outside memory"), "{}", r.stderr);
    // The backend serves one frontend: it ends when the VM is gone.
    assert!(backend.exited_within(Duration::from_secs(10)), "virtiofsd still running: {}", backend.log_text());
}

#[test]
fn fs_missing_backend_socket_is_a_setup_error() {
    if skip("fs_missing_backend_socket_is_a_setup_error") {
        return;
    }
    let (d, _shared, socket) = setup("fsmissing");
    let g = build_guest("hello", d.path());
    let listing = |p: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name()).collect();
        v.sort();
        v
    };
    let before = listing(d.path());
    let fs = format!("shared0={}", socket.display());
    let r = run(&["--kernel", g.to_str().unwrap(), "--fs", &fs], Duration::from_secs(20));
    assert_eq!(r.code(), Some(125), "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("vhost-user backend socket {}: No such file or directory", socket.display())), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "the guest ran: {}", r.stdout);
    assert!(r.elapsed < Duration::from_secs(5), "took {:?}", r.elapsed);
    assert_eq!(listing(d.path()), before, "rpc-vmm left files behind");

    // A socket nobody listens on, and a bad tag: the same kind of error.
    let dead = d.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let fs = format!("shared0={}", dead.display());
    let r = run(&["--kernel", g.to_str().unwrap(), "--fs", &fs], Duration::from_secs(20));
    assert_eq!(r.code(), Some(125), "stderr: {}", r.stderr);
    assert!(r.stderr.contains("Connection refused"), "{}", r.stderr);
    let fs = format!("{}={}", "t".repeat(37), dead.display());
    let r = run(&["--kernel", g.to_str().unwrap(), "--fs", &fs], Duration::from_secs(20));
    assert_eq!(r.code(), Some(125), "stderr: {}", r.stderr);
    assert!(r.stderr.contains("want 1 to 36 bytes"), "{}", r.stderr);
}

#[test]
fn fs_backend_killed_mid_run_is_reported_and_the_vm_goes_on() {
    let Some(bin) = virtiofsd("fs_backend_killed_mid_run_is_reported_and_the_vm_goes_on") else { return };
    let (d, shared, socket) = setup("fskill");
    let g = build_guest("fs", d.path());
    let mut backend = Backend::start(&bin, &shared, &socket, d.path());
    let fs = format!("shared0={}", socket.display());
    let mut vm = Live::spawn(&["--kernel", g.to_str().unwrap(), "--cmdline", "fs-wait-disconnect", "--fs", &fs], false);
    let waiting = vm.wait_line("waiting for the backend to go", T);
    backend.kill();
    let r = vm.finish(T);
    let (status, out, err) = (r.status, r.stdout, r.stderr);
    assert!(waiting, "the guest never got to wait: {out}\n{err}");
    assert_eq!(status.code(), Some(0), "stdout: {out}\nstderr: {err}");
    assert_eq!(out, format!("{GUEST_OUT}waiting for the backend to go\ndevice needs reset\nrestart refused\n"), "stderr: {err}");
    assert!(err.contains("rpc-vmm: virtio-fs shared0: vhost-user backend disconnected"), "{err}");
    // The backend's failure, not the guest's.
    assert!(err.contains("rpc-vmm: host: virtio device start failed: virtio-fs shared0: vhost-user backend disconnected"), "{err}");
    assert!(err.contains("rpc-vmm: host errors: virtio device start failed=1\n"), "{err}");
    // (The guest's one fault is its deliberate bad ring.)
    assert!(err.contains("rpc-vmm: guest faults: virtio device start failed=1\n"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The relay thread must not take the host's stop signals: SIGTERM still
/// stops the VM through the event loop (exit 143), not by default action.
#[test]
fn fs_sigterm_still_stops_the_vm_cleanly() {
    let Some(bin) = virtiofsd("fs_sigterm_still_stops_the_vm_cleanly") else { return };
    let (d, shared, socket) = setup("fsterm");
    let g = build_guest("fs", d.path());
    let _backend = Backend::start(&bin, &shared, &socket, d.path());
    let fs = format!("shared0={}", socket.display());
    let mut vm = Live::spawn(&["--kernel", g.to_str().unwrap(), "--cmdline", "fs-wait-disconnect", "--fs", &fs], false);
    assert!(vm.wait_line("waiting for the backend to go", T), "the guest never got to wait: {}", vm.out);
    vm.signal(libc::SIGTERM);
    let r = vm.finish(T);
    let (status, err) = (r.status, r.stderr);
    assert_eq!(status.code(), Some(143), "status {status:?}, stderr: {err}");
}

/// A backend that accepts but never answers cannot hang rpc-vmm: the
/// setup gives up after the vhost-user timeout (10 s) with exit 125.
#[test]
fn fs_silent_backend_times_out() {
    if skip("fs_silent_backend_times_out") {
        return;
    }
    let (d, _shared, socket) = setup("fssilent");
    let g = build_guest("hello", d.path());
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let holder = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut sink = Vec::new();
        let _ = conn.read_to_end(&mut sink);
    });
    let fs = format!("shared0={}", socket.display());
    let r = run(&["--kernel", g.to_str().unwrap(), "--fs", &fs], Duration::from_secs(60));
    assert_eq!(r.code(), Some(125), "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("vhost-user backend did not answer within 10s"), "{}", r.stderr);
    assert!(r.stderr.contains("GET_FEATURES"), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(30), "took {:?}", r.elapsed);
    holder.join().unwrap();
}

/// A backend that stalls (SIGSTOP) while the VM runs cannot hang a vCPU:
/// the guest's device reset waits for GET_VRING_BASE, the watchdog cuts
/// the backend off after 10 s, the restart is refused, the VM goes on.
#[test]
fn fs_stalled_backend_is_cut_off() {
    let Some(bin) = virtiofsd("fs_stalled_backend_is_cut_off") else { return };
    let (d, shared, socket) = setup("fsstall");
    let g = build_guest("fs", d.path());
    let backend = Backend::start(&bin, &shared, &socket, d.path());
    let fs = format!("shared0={}", socket.display());
    let mut vm = Live::spawn(&["--kernel", g.to_str().unwrap(), "--cmdline", "fs-stall", "--fs", &fs, "--stdin"], true);
    assert!(vm.wait_line("stall the backend now", T), "the guest never asked: {}", vm.out);
    backend.signal(libc::SIGSTOP);
    std::io::Write::write_all(vm.stdin.as_mut().expect("stdin piped"), b"g").unwrap();
    let start = Instant::now();
    let r = vm.finish(T);
    let (status, out, err) = (r.status, r.stdout, r.stderr);
    assert_eq!(status.code(), Some(0), "stdout: {out}\nstderr: {err}");
    assert!(out.ends_with("stall the backend now\nstalled backend cut off\n"), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("did not answer within 10s"), "{err}");
    assert!(err.contains("rpc-vmm: host: virtio-fs backend error: shared0: queue "), "{err}");
    assert!(err.contains("GET_VRING_BASE"), "{err}");
    assert!(err.contains("rpc-vmm: host errors: virtio device start failed=1, virtio-fs backend error="), "{err}");
    // (The guest's one fault is its deliberate bad ring.)
    assert!(err.contains("rpc-vmm: guest faults: virtio device start failed=1\n"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(40), "took {:?}", start.elapsed());
}

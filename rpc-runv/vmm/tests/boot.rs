//! Boot of test guests: serial output, exit codes (guest status, reset,
//! triple fault, host signal, VMM error), boot information, vCPUs.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(60);

#[test]
fn serial_hello_and_guest_exit_status() {
    if skip("serial_hello_and_guest_exit_status") {
        return;
    }
    let d = TempDir::new("hello");
    let g = build_guest("hello", d.path());
    let r = run(&["--kernel", g.to_str().unwrap()], T);
    assert_eq!(r.stdout, "hello from a test guest\n", "stderr: {}", r.stderr);
    assert_eq!(r.code(), Some(7), "stderr: {}", r.stderr);
}

#[test]
fn serial_to_file() {
    if skip("serial_to_file") {
        return;
    }
    let d = TempDir::new("serialfile");
    let g = build_guest("hello", d.path());
    let out = d.path().join("serial.log");
    let r = run(&["--kernel", g.to_str().unwrap(), "--serial", out.to_str().unwrap()], T);
    assert_eq!(r.code(), Some(7), "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello from a test guest\n");
}

#[test]
fn i8042_reset_stops_the_vm_cleanly() {
    if skip("i8042_reset_stops_the_vm_cleanly") {
        return;
    }
    let d = TempDir::new("reset");
    let g = build_guest("reset", d.path());
    let r = run(&["--kernel", g.to_str().unwrap()], T);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "resetting\n", "the guest ran past the reset");
}

#[test]
fn triple_fault_exits_127() {
    if skip("triple_fault_exits_127") {
        return;
    }
    let d = TempDir::new("triple");
    let g = build_guest("triple", d.path());
    let r = run(&["--kernel", g.to_str().unwrap()], T);
    assert_eq!(r.code(), Some(127), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("triple fault"), "{}", r.stderr);
}

#[test]
fn sigterm_stops_a_spinning_guest() {
    if skip("sigterm_stops_a_spinning_guest") {
        return;
    }
    let d = TempDir::new("spin");
    let g = build_guest("spin", d.path());
    let child = spawn(&["--kernel", g.to_str().unwrap(), "--vcpus", "2"]);
    let pid = child.id() as i32;
    // Wait until the guest runs, then stop it.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let r = wait(child, T);
    assert_eq!(r.code(), Some(128 + libc::SIGTERM), "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "spinning\n");
}

#[test]
fn sigterm_stops_a_guest_blocked_on_a_full_stdout() {
    if skip("sigterm_stops_a_guest_blocked_on_a_full_stdout") {
        return;
    }
    use std::os::fd::AsRawFd;
    let d = TempDir::new("serialflood");
    let g = build_guest("serialflood", d.path());
    let mut child = spawn(&["--kernel", g.to_str().unwrap()]);
    // Nobody reads its stdout (held open, unread, until it exited): wait
    // until the pipe is full (64 KiB).
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let start = std::time::Instant::now();
    loop {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD into a c_int on our pipe's read end.
        unsafe { libc::ioctl(stdout.as_raw_fd(), libc::FIONREAD, &mut queued) };
        if queued >= 60 * 1024 {
            break;
        }
        assert!(start.elapsed() < T, "stdout pipe never filled ({queued} bytes)");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rpc-vmm blocked on its full stdout ignored SIGTERM for 10 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = t.elapsed();
    drop(stdout);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "stderr: {}", stderr.join().unwrap());
    assert!(took < Duration::from_secs(1), "SIGTERM took {took:?}");
}

#[test]
fn bad_kernel_is_a_vmm_error() {
    if skip("bad_kernel_is_a_vmm_error") {
        return;
    }
    let d = TempDir::new("badkernel");
    let k = d.path().join("kernel");
    std::fs::write(&k, vec![0x5au8; 4096]).unwrap();
    let r = run(&["--kernel", k.to_str().unwrap()], T);
    assert_eq!(r.code(), Some(125));
    assert!(r.stderr.contains("kernel"), "{}", r.stderr);
    let r = run(&["--kernel", d.path().join("missing").to_str().unwrap()], T);
    assert_eq!(r.code(), Some(125));
    assert!(r.stderr.contains("missing"), "{}", r.stderr);
}

#[test]
fn boot_params_cmdline_e820_and_mptable() {
    if skip("boot_params_cmdline_e820_and_mptable") {
        return;
    }
    let d = TempDir::new("bootinfo");
    let g = build_guest("bootinfo", d.path());
    let disk = d.path().join("disk");
    std::fs::write(&disk, vec![0u8; 4096]).unwrap();
    let r = run(
        &[
            "--kernel",
            g.to_str().unwrap(),
            "--cmdline",
            "console=ttyS0 hello=world",
            "--mem",
            "64",
            "--vcpus",
            "3",
            "--disk",
            disk.to_str().unwrap(),
        ],
        T,
    );
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("cmdline: console=ttyS0 hello=world virtio_mmio.device=4K@0xd0000000:5\n"), "{}", r.stdout);
    // Base memory up to the EBDA, the EBDA reserved, then 1 MiB..64 MiB.
    assert!(
        r.stdout.contains(
            "e820: 0x0000000000000000+0x000000000009fc00/1 0x000000000009fc00+0x0000000000000400/2 \
             0x0000000000100000+0x0000000003f00000/1\n"
        ),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("mptable: checksums 0 0 cpus 3\n"), "{}", r.stdout);
}

#[test]
fn initrd_never_overlaps_the_kernel() {
    if skip("initrd_never_overlaps_the_kernel") {
        return;
    }
    let d = TempDir::new("initrd");
    let g = build_guest("hello", d.path());
    // hello is linked at 1 MiB; its read-only data (the message) is in
    // the page at 0x101000. In 8 MiB the initrd goes at 8 MiB - size.
    let initrd = d.path().join("initrd");
    let mem_top = 8u64 << 20;
    std::fs::write(&initrd, vec![0u8; (mem_top - 0x10_1000) as usize]).unwrap();
    let args = ["--kernel", g.to_str().unwrap(), "--mem", "8", "--initrd", initrd.to_str().unwrap()];
    let r = run(&args, T);
    assert_eq!(r.code(), Some(125), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("do not fit in guest memory"), "{}", r.stderr);
    // One page smaller, it fits right after the kernel.
    std::fs::write(&initrd, vec![0u8; (mem_top - 0x10_2000) as usize]).unwrap();
    let r = run(&args, T);
    assert_eq!(r.code(), Some(7), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "hello from a test guest\n", "stderr: {}", r.stderr);
}

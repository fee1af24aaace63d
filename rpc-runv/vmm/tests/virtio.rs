//! virtio-mmio devices driven by test guests: block read/write on a
//! file (read-write and read-only), console round trip over the unix
//! socket, and a hostile guest that garbles every register and queue.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(60);

/// A disk of `sectors` sectors where sector n is filled with byte n.
fn make_disk(path: &Path, sectors: u8) {
    let mut v = Vec::new();
    for s in 0..sectors {
        v.extend(std::iter::repeat_n(s, 512));
    }
    std::fs::write(path, v).unwrap();
}

#[test]
fn block_read_write_flush_id() {
    if skip("block_read_write_flush_id") {
        return;
    }
    let d = TempDir::new("blk");
    let g = build_guest("block", d.path());
    let disk = d.path().join("disk.img");
    make_disk(&disk, 8);
    let r = run(&["--kernel", g.to_str().unwrap(), "--disk", disk.to_str().unwrap()], T);
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    let expected = "capacity 8 rw\n\
                    read sector 1: status 0 all ones\n\
                    write sector 2: status 0\n\
                    flush: status 0\n\
                    id: status 0 rpc-vmm-blk0\n\
                    read past end: status 1\n\
                    unknown request: status 2\n";
    assert_eq!(r.stdout, expected, "stderr: {}", r.stderr);
    let data = std::fs::read(&disk).unwrap();
    assert_eq!(&data[1024..1044], b"written by the guest");
    assert!(data[1044..1536].iter().all(|b| *b == 0));
    assert!(data[1536..2048].iter().all(|b| *b == 3), "sector 3 untouched");
    // The out-of-range read was reported as a guest fault.
    assert!(r.stderr.contains("out of range"), "{}", r.stderr);
}

#[test]
fn block_read_only_refuses_writes() {
    if skip("block_read_only_refuses_writes") {
        return;
    }
    let d = TempDir::new("blkro");
    let g = build_guest("block", d.path());
    let disk = d.path().join("disk.img");
    make_disk(&disk, 4);
    let before = std::fs::read(&disk).unwrap();
    let arg = format!("{},ro", disk.display());
    let r = run(&["--kernel", g.to_str().unwrap(), "--disk", &arg], T);
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("capacity 4 ro\n"), "{}", r.stdout);
    assert!(r.stdout.contains("read sector 1: status 0 all ones\n"), "{}", r.stdout);
    assert!(r.stdout.contains("write sector 2: status 1\n"), "{}", r.stdout);
    assert_eq!(std::fs::read(&disk).unwrap(), before, "a read-only disk changed");
}

#[test]
fn console_round_trip() {
    if skip("console_round_trip") {
        return;
    }
    let d = TempDir::new("console");
    let g = build_guest("console", d.path());
    let sock = d.path().join("console.sock");
    let child = spawn(&["--kernel", g.to_str().unwrap(), "--console-socket", sock.to_str().unwrap()]);
    let start = Instant::now();
    let mut conn = loop {
        match UnixStream::connect(&sock) {
            Ok(c) => break c,
            Err(_) if start.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("connect {}: {e}", sock.display()),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"\n") {
        let n = conn.read(&mut buf).expect("read from the guest");
        assert!(n > 0, "console closed early");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"ping from guest\n");
    conn.write_all(b"pong from host").unwrap();
    let r = wait(child, T);
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "rx 14: pong from host\n", "stderr: {}", r.stderr);
    // Nothing serves the console socket once the VM is gone.
    assert!(UnixStream::connect(&sock).is_err(), "{} still accepts connections", sock.display());
}

#[test]
fn console_client_dying_while_input_is_paused() {
    if skip("console_client_dying_while_input_is_paused") {
        return;
    }
    let d = TempDir::new("consoledead");
    let g = build_guest("consoledead", d.path());
    let sock = d.path().join("console.sock");
    let child = spawn(&["--kernel", g.to_str().unwrap(), "--console-socket", sock.to_str().unwrap()]);
    let start = Instant::now();
    let mut conn = loop {
        match UnixStream::connect(&sock) {
            Ok(c) => break c,
            Err(_) if start.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("connect {}: {e}", sock.display()),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"ready\n") {
        let n = conn.read(&mut buf).expect("read from the guest");
        assert!(n > 0, "console closed early");
        got.extend_from_slice(&buf[..n]);
    }
    // More than the VMM buffers: it stops reading us, then we hang up.
    conn.write_all(&[b'x'; 80 * 1024]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(conn);
    let r = wait(child, T);
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "took 4096 bytes, alive\n", "stderr: {}", r.stderr);
}

#[test]
fn hostile_guest_cannot_crash_the_vmm() {
    if skip("hostile_guest_cannot_crash_the_vmm") {
        return;
    }
    let d = TempDir::new("hostile");
    let g = build_guest("hostile", d.path());
    let disk = d.path().join("disk.img");
    make_disk(&disk, 4);
    let sock = d.path().join("console.sock");
    let vsock = format!("3,{}", d.path().join("vsock.sock").display());
    let r = run(
        &["--kernel", g.to_str().unwrap(), "--disk", disk.to_str().unwrap(), "--console-socket", sock.to_str().unwrap(), "--vsock", &vsock],
        T,
    );
    assert_eq!(r.code(), Some(42), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.ends_with("disk after reset: status 0\nsurvived\n"), "{}", r.stdout);
    assert!(r.stdout.contains("aliased console chain done\n"), "{}", r.stdout);
    assert!(r.stderr.contains("virtio-console oversize descriptor chain"), "{}", r.stderr);
    // Reported, by kind, and summed up at the end.
    for kind in [
        "virtio bad register access",
        "virtio invalid queue",
        "virtio-blk bad descriptor chain",
        "vsock bad descriptor chain",
        "MMIO write to no device",
    ] {
        assert!(r.stderr.contains(kind), "no report of {kind}: {}", r.stderr);
    }
    assert!(r.stderr.contains("rpc-vmm: guest faults: "), "{}", r.stderr);
}

/// Reads from `path` (connecting as soon as it exists) until `want` bytes
/// came, then writes `reply`; returns what was read.
fn port_client(path: std::path::PathBuf, want: usize, reply: &'static [u8]) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut conn = loop {
            match UnixStream::connect(&path) {
                Ok(c) => break c,
                Err(_) if start.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("connect {}: {e}", path.display()),
            }
        };
        conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < want {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        if !reply.is_empty() {
            conn.write_all(reply).unwrap();
        }
        // Hold the connection until the VM is gone.
        let _ = conn.read_to_end(&mut Vec::new());
        got
    })
}

#[test]
fn console_multiport_named_ports() {
    if skip("console_multiport_named_ports") {
        return;
    }
    let d = TempDir::new("multiport");
    let g = build_guest("multiport", d.path());
    let agent = d.path().join("agent.sock");
    let stdio = d.path().join("stdio.sock");
    let child = spawn(&[
        "--kernel",
        g.to_str().unwrap(),
        "--port",
        &format!("agent={}", agent.display()),
        "--port",
        &format!("stdio={}", stdio.display()),
    ]);
    let a = port_client(agent, 12, b"reply on agent");
    let s = port_client(stdio, 12, b"");
    let r = wait(child, T);
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    let expected = "max_nr_ports 3\n\
                    event 1 port 0\n\
                    event 1 port 1\n\
                    event 1 port 2\n\
                    repeated DEVICE_READY ignored\n\
                    port 1 name agent\n\
                    port 2 name stdio\n\
                    agent rx: reply on agent\n";
    assert_eq!(r.stdout, expected, "stderr: {}", r.stderr);
    assert_eq!(a.join().unwrap(), b"hello agent\n");
    assert_eq!(s.join().unwrap(), b"hello stdio\n");
}

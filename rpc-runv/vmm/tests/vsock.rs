//! virtio-vsock (userspace, Firecracker-style): a test guest connects to
//! a host unix socket through CID 2, and the host connects to a guest
//! port with `CONNECT P`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn vsock_both_directions() {
    if skip("vsock_both_directions") {
        return;
    }
    let d = TempDir::new("vsock");
    let g = build_guest("vsock", d.path());
    let uds = d.path().join("vsock.sock");
    let listener = UnixListener::bind(format!("{}_1234", uds.display())).unwrap();
    let guest_side = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut got = [0u8; 12];
        s.read_exact(&mut got).unwrap();
        s.write_all(b"hi guest").unwrap();
        let _ = s.read_to_end(&mut Vec::new());
        got
    });
    let child = spawn(&["--kernel", g.to_str().unwrap(), "--vsock", &format!("3,{}", uds.display())]);
    // The guest's connection ends (its SHUTDOWN closes our end) first.
    assert_eq!(&guest_side.join().unwrap(), b"hello vsock\n");

    // Host to guest: CONNECT 4000.
    let start = Instant::now();
    let mut c = loop {
        match UnixStream::connect(&uds) {
            Ok(c) => break c,
            Err(_) if start.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("connect: {e}"),
        }
    };
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"CONNECT 4000\n").unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("OK "), "{line:?}");
    c.write_all(b"ping").unwrap();
    let mut pong = String::new();
    r.read_line(&mut pong).unwrap();
    assert_eq!(pong, "pong\n");

    let run = wait(child, Duration::from_secs(60));
    assert_eq!(run.code(), Some(0), "stdout: {} stderr: {}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout, "cid 3\nconnected to host port 1234\nrx: hi guest\nclosed\nrequest to port 4000\nhost says: ping\n",
        "stderr: {}",
        run.stderr
    );
}

#[test]
fn vsock_guest_cannot_queue_unbounded_replies() {
    if skip("vsock_guest_cannot_queue_unbounded_replies") {
        return;
    }
    let d = TempDir::new("vsockflood");
    let g = build_guest("vsockflood", d.path());
    let uds = d.path().join("vsock.sock");
    let r = run(&["--kernel", g.to_str().unwrap(), "--vsock", &format!("3,{}", uds.display())], Duration::from_secs(120));
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    // The device takes packets while fewer than 1024 replies wait, and
    // resumes once the guest gave receive buffers (the guest fails
    // otherwise).
    assert!(r.stdout.starts_with("tx stalled after 1024\ntx resumed after "), "{}", r.stdout);
}

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

#[test]
fn vsock_half_close_rst_and_reset() {
    if skip("vsock_half_close_rst_and_reset") {
        return;
    }
    let d = TempDir::new("vsockhalf");
    let g = build_guest("vsockhalf", d.path());
    let uds = d.path().join("vsock.sock");
    let listen = |port: u32| UnixListener::bind(format!("{}_{port}", uds.display())).unwrap();
    let accept = |l: UnixListener| {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    };
    let read_all = |mut s: UnixStream| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        String::from_utf8(got).unwrap()
    };
    // 1234: we shut our write side first; the guest still sends to us.
    let l = listen(1234);
    let a = std::thread::spawn(move || {
        let s = accept(l);
        s.shutdown(std::net::Shutdown::Write).unwrap();
        read_all(s)
    });
    // 1235: the guest shuts its write side; we still send to it.
    let l = listen(1235);
    let b = std::thread::spawn(move || {
        let mut s = accept(l);
        let got = read_all(s.try_clone().unwrap());
        s.write_all(b"reply after your eof\n").unwrap();
        got
    });
    // 1236: we close at once.
    let l = listen(1236);
    let c = std::thread::spawn(move || drop(accept(l)));
    // 1237: data for the guest that a device reset must drop.
    let l = listen(1237);
    let e = std::thread::spawn(move || {
        let mut s = accept(l);
        s.write_all(b"queued\n").unwrap();
        read_all(s)
    });
    let r = run(&["--kernel", g.to_str().unwrap(), "--vsock", &format!("3,{}", uds.display())], Duration::from_secs(60));
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout,
        "unknown connection: rst\n\
         host half-closed: shutdown flags 2\n\
         after our shutdown: rst\n\
         host says: reply after your eof\n\
         then: shutdown flags 2\n\
         then: rst\n\
         host closed: shutdown flags 2\n\
         write after host close: rst\n\
         nothing after reset\n\
         old connection after reset: rst\n",
        "stderr: {}",
        r.stderr
    );
    assert_eq!(a.join().unwrap(), "still sending\n");
    assert_eq!(b.join().unwrap(), "bye\n");
    c.join().unwrap();
    // The reset closed the connection: end of file, nothing sent.
    assert_eq!(e.join().unwrap(), "");
}

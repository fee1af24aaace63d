//! The hybrid vsock dial against a fake VMM socket (a thread).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rpc_proto::hvsock::dial;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rpc-proto-hvsock-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

/// Reads the CONNECT line of a client (a byte at a time, as the VMM).
fn connect_line(s: &mut UnixStream) -> String {
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("line");
    line
}

/// A fake VMM: binds `sock` after `late`, then serves each client with
/// `serve(n, client)` (n counts from 0) until it returns true.
fn vmm(sock: &Path, late: Duration, serve: impl Fn(usize, UnixStream) -> bool + Send + 'static) -> JoinHandle<()> {
    let sock = sock.to_path_buf();
    std::thread::spawn(move || {
        std::thread::sleep(late);
        let l = UnixListener::bind(&sock).expect("bind");
        for (n, c) in l.incoming().enumerate() {
            if serve(n, c.expect("accept")) {
                return;
            }
        }
    })
}

#[test]
fn refused_a_few_times_then_ok() {
    let d = dir("ok");
    let sock = d.join("vsock.sock");
    let t = vmm(&sock, Duration::from_millis(100), |n, mut c| {
        match n {
            // Refused as rpc-vmm does: the line read, the socket closed.
            0 | 1 => {
                assert_eq!(connect_line(&mut c), "CONNECT 1024\n");
                false
            }
            // Closed with the line unread: the client sees a reset.
            2 => false,
            _ => {
                let mut line = [0u8; 13];
                c.read_exact(&mut line).expect("line");
                assert_eq!(&line, b"CONNECT 1024\n");
                c.write_all(b"OK 1073741824\nfirst guest bytes").expect("ok");
                true
            }
        }
    });
    let t0 = Instant::now();
    let mut s = dial(&sock, 1024, t0 + Duration::from_secs(10)).expect("dial");
    assert!(t0.elapsed() >= Duration::from_millis(100));
    t.join().expect("vmm");
    let mut rest = String::new();
    s.read_to_string(&mut rest).expect("read (blocking stream)");
    assert_eq!(rest, "first guest bytes");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn garbage_instead_of_ok_is_an_error_at_once() {
    let d = dir("garbage");
    let sock = d.join("vsock.sock");
    let t = vmm(&sock, Duration::ZERO, |_, mut c| {
        connect_line(&mut c);
        c.write_all(b"HELLO there\n").expect("garbage");
        true
    });
    let t0 = Instant::now();
    let e = dial(&sock, 1024, t0 + Duration::from_secs(10)).expect_err("garbage");
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(
        e.to_string(),
        format!("hybrid vsock {} port 1024: answered \"HELLO there\" to CONNECT instead of `OK <port>`", sock.display())
    );
    t.join().expect("vmm");

    let t = vmm(&d.join("long.sock"), Duration::ZERO, |_, mut c| {
        connect_line(&mut c);
        let _ = c.write_all(&[b'O'; 200]);
        true
    });
    std::thread::sleep(Duration::from_millis(100));
    let e = dial(&d.join("long.sock"), 7, Instant::now() + Duration::from_secs(10)).expect_err("long");
    assert!(e.to_string().contains("answered a line over 64 bytes"), "{e}");
    t.join().expect("vmm");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_guest_that_never_listens_fails_at_the_deadline() {
    let d = dir("deadline");
    let sock = d.join("vsock.sock");
    let t = vmm(&sock, Duration::ZERO, |n, mut c| {
        connect_line(&mut c);
        n > 1_000_000
    });
    let t0 = Instant::now();
    let e = dial(&sock, 1024, t0 + Duration::from_millis(600)).expect_err("deadline");
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(600) && took < Duration::from_millis(1600), "{took:?}");
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("hybrid vsock {} port 1024: no connection within", sock.display())), "{msg}");
    // The deadline may fall inside the last try, while it waits for the answer.
    assert!(msg.ends_with("(last try: the guest refused the connection)") || msg.ends_with("(last try: no answer to CONNECT)"), "{msg}");
    drop(t); // the fake VMM thread serves forever; it dies with the test process

    // No socket at all.
    let missing = d.join("missing.sock");
    let e = dial(&missing, 5, Instant::now() + Duration::from_millis(100)).expect_err("missing");
    assert!(e.to_string().contains("(last try: connect: No such file or directory)"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_vmm_that_accepts_but_never_answers_fails_at_the_deadline() {
    let d = dir("silent");
    let sock = d.join("vsock.sock");
    let t = vmm(&sock, Duration::ZERO, |_, c| {
        std::thread::sleep(Duration::from_secs(2));
        drop(c);
        true
    });
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    let e = dial(&sock, 1024, t0 + Duration::from_millis(500)).expect_err("silent");
    assert!(t0.elapsed() < Duration::from_millis(1500));
    assert!(e.to_string().ends_with("(last try: no answer to CONNECT)"), "{e}");
    t.join().expect("vmm");
    let _ = std::fs::remove_dir_all(&d);
}

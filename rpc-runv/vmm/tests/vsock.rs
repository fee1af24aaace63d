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

/// A host peer that stops reading holds back its own connection only:
/// the guest fills that connection exactly to its credit (the host then
/// buffers a whole BUF_ALLOC of its data) and another connection still
/// works; a packet over the credit resets the full connection, not the
/// device, and the other one still works.
#[test]
fn vsock_stuck_host_peer_holds_back_only_its_connection() {
    if skip("vsock_stuck_host_peer_holds_back_only_its_connection") {
        return;
    }
    let d = TempDir::new("vsockstuck");
    let g = build_guest("vsockstuck", d.path());
    let uds = d.path().join("vsock.sock");
    let stuck = UnixListener::bind(format!("{}_1234", uds.display())).unwrap();
    let echo = UnixListener::bind(format!("{}_1235", uds.display())).unwrap();
    // Accepted, then never read while the VM runs.
    let stuck = std::thread::spawn(move || stuck.accept().unwrap().0);
    let echo = std::thread::spawn(move || {
        let (mut s, _) = echo.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => s.write_all(&buf[..n]).unwrap(),
            }
        }
    });
    let r = run(&["--kernel", g.to_str().unwrap(), "--vsock", &format!("3,{}", uds.display())], Duration::from_secs(120));
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout,
        "first connection full, within credit\n\
         second connection: ping\n\
         over credit: rst\n\
         second connection after the reset: ping\n",
        "stderr: {}",
        r.stderr
    );
    assert!(r.stderr.contains("rpc-vmm: guest: vsock credit exceeded: port 5001: 1 bytes with 262144 of 262144 buffered"), "{}", r.stderr);
    assert!(r.stderr.contains("vsock credit exceeded=1"), "{}", r.stderr);
    // What the stuck peer's socket held reached it, then the end.
    let mut s = stuck.join().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert!(!got.is_empty());
    echo.join().unwrap();
}

/// The host end of guest port 1234 for tests/guests/vsockmany.c: accepts
/// every connection and keeps it (until `close_one`, or the end).
struct Holder {
    conns: std::sync::Arc<std::sync::Mutex<Vec<UnixStream>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Holder {
    fn new(path: String) -> Holder {
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (conns2, stop2) = (conns.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => conns2.lock().unwrap().push(s),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Holder { conns, stop, thread: Some(thread) }
    }

    /// Closes one connection: the guest then gets a SHUTDOWN.
    fn close_one(&self) {
        assert!(self.conns.lock().unwrap().pop().is_some(), "no connection to close");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `CONNECT 4000` on the vsock socket at `uds`; the stream, with our
/// request written.
fn host_connect(uds: &std::path::Path) -> UnixStream {
    let mut c = UnixStream::connect(uds).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"CONNECT 4000\n").unwrap();
    c
}

/// On `c` (a host connection to guest port 4000 that the guest will
/// take): `OK`, then "ping" answered by "pong".
fn ping_guest(c: UnixStream) {
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("OK "), "{line:?}");
    (&c).write_all(b"ping").unwrap();
    let mut pong = String::new();
    r.read_line(&mut pong).unwrap();
    assert_eq!(pong, "pong\n");
}

/// The number in the guest's `connections: N` line.
fn connections(out: &str) -> usize {
    let line = out.lines().find_map(|l| l.strip_prefix("connections: ")).unwrap_or_else(|| panic!("no count in {out:?}"));
    line.parse().unwrap()
}

/// A guest cannot open connections (each a host socket) without bound:
/// past the cap it gets an RST, reported; a host CONNECT at the cap is
/// closed unanswered, reported as the host's; once the guest closes its
/// connections both directions work again.
#[test]
fn vsock_connections_are_capped() {
    if skip("vsock_connections_are_capped") {
        return;
    }
    let d = TempDir::new("vsockcap");
    let g = build_guest("vsockmany", d.path());
    let uds = d.path().join("vsock.sock");
    let holder = Holder::new(format!("{}_1234", uds.display()));
    let mut vm = Live::spawn(&["--kernel", g.to_str().unwrap(), "--vsock", &format!("3,{}", uds.display())], false);
    assert!(vm.wait_line("full", Duration::from_secs(120)), "{}", vm.out);
    assert_eq!(connections(&vm.out), vmm::devices::virtio::vsock::MAX_CONNS);

    let mut refused = host_connect(&uds);
    let mut got = Vec::new();
    refused.read_to_end(&mut got).unwrap();
    assert!(got.is_empty(), "a CONNECT past the cap got {got:?}");

    holder.close_one();
    assert!(vm.wait_line("released", Duration::from_secs(60)), "{}", vm.out);
    ping_guest(host_connect(&uds));
    let r = vm.finish(Duration::from_secs(60));
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.ends_with("released\nhost says: ping\nconnected again\n"), "{}", r.stdout);
    assert!(r.stderr.contains("rpc-vmm: guest: vsock connection limit: connect from port "), "{}", r.stderr);
    assert!(r.stderr.contains("rpc-vmm: host: vsock connection limit: CONNECT 4000 from the host refused"), "{}", r.stderr);
    assert!(r.stderr.contains("rpc-vmm: host errors: vsock connection limit=1\n"), "{}", r.stderr);
}

/// The CPU time (s) the thread `tid` of `pid` used so far.
fn thread_cpu(pid: u32, tid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Out of file descriptors (a low RLIMIT_NOFILE), the guest's connects
/// are refused and the listeners (vsock and console) cannot accept: they
/// wait out of the event loop instead of making it spin, and take their
/// clients once descriptors are free again.
#[test]
fn vsock_out_of_fds_does_not_spin() {
    if skip("vsock_out_of_fds_does_not_spin") {
        return;
    }
    let d = TempDir::new("vsockfds");
    let g = build_guest("vsockmany", d.path());
    let uds = d.path().join("vsock.sock");
    let console = d.path().join("console.sock");
    let holder = Holder::new(format!("{}_1234", uds.display()));
    let args = ["--kernel", g.to_str().unwrap(), "--vsock", &format!("3,{}", uds.display()), "--console-socket", console.to_str().unwrap()];
    let mut vm = Live::spawn_with(&args, false, |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; the child only.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: 64, rlim_max: 64 };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    assert!(vm.wait_line("full", Duration::from_secs(60)), "{}", vm.out);
    let n = connections(&vm.out);
    assert!(n > 0 && n < vmm::devices::virtio::vsock::MAX_CONNS, "{n} connections");

    // Both listeners have a client they cannot accept now.
    let waiting = host_connect(&uds);
    let _console_client = UnixStream::connect(&console).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = vm.pid();
    let before = thread_cpu(pid, pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = thread_cpu(pid, pid) - before;
    assert!(used < 0.15, "the event loop used {used:.2} s of CPU in 1 s");

    holder.close_one();
    assert!(vm.wait_line("released", Duration::from_secs(60)), "{}", vm.out);
    // The CONNECT made while no fd was left is served now.
    ping_guest(waiting);
    let r = vm.finish(Duration::from_secs(60));
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.ends_with("released\nhost says: ping\nconnected again\n"), "{}", r.stdout);
    for what in ["vsock", "virtio-console"] {
        let line = format!("rpc-vmm: host: accept paused (out of file descriptors): {what}: ");
        assert!(r.stderr.contains(&line), "no {line:?} in {}", r.stderr);
    }
    assert!(r.stderr.contains("rpc-vmm: host: vsock connect failed (out of file descriptors)"), "{}", r.stderr);
    eprintln!("event loop CPU while paused: {used:.3} s; stderr: {}", r.stderr);
}

//! Host clients that stop reading: a guest floods a virtio-console port
//! and a vsock connection whose host ends never read. The vCPU must not
//! block on them (SIGTERM still stops the VMM at once), the guest must see
//! backpressure (its transmit queues stall), and a client that reads later
//! must get every byte, in order. A vsock guest that ignores the credit
//! has its connection reset instead.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Child;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::*;

const CON_CHUNK: usize = 16384;
const CON_CHUNKS: usize = 160;
const VS_PAYLOAD: usize = 4096;
const VS_PKTS: usize = 256;
const PATTERN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Checks `count` units of `unit` bytes: unit k is k (u64) then the
/// pattern of tests/guests/flood.c.
fn check_stream(what: &str, data: &[u8], unit: usize, count: usize) {
    assert_eq!(data.len(), unit * count, "{what}: byte count");
    check_prefix(what, data, unit);
}

/// Checks that `data` is the start of such a stream (it may end
/// anywhere).
fn check_prefix(what: &str, data: &[u8], unit: usize) {
    for (k, chunk) in data.chunks(unit).enumerate() {
        for (w, word) in chunk.chunks(8).enumerate() {
            let want = if w == 0 { k as u64 } else { (w as u64).wrapping_mul(PATTERN) };
            assert_eq!(word, &want.to_le_bytes()[..word.len()], "{what}: unit {k} word {w}");
        }
    }
}

struct Flood {
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
    console: UnixStream,
    vsock: Option<std::thread::JoinHandle<UnixStream>>,
    _dir: TempDir,
}

/// Starts the flood guest `guest` with both host ends connected, not
/// reading.
fn start(tag: &str, guest: &str) -> Flood {
    let d = TempDir::new(tag);
    let g = build_guest(guest, d.path());
    let sock = d.path().join("console.sock");
    let uds = d.path().join("vsock.sock");
    let listener = UnixListener::bind(format!("{}_1234", uds.display())).unwrap();
    let vsock = std::thread::spawn(move || listener.accept().unwrap().0);
    let mut child =
        spawn(&["--kernel", g.to_str().unwrap(), "--console-socket", sock.to_str().unwrap(), "--vsock", &format!("3,{}", uds.display())]);
    let (tx, lines) = channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let console = connect(&sock);
    Flood { child, lines, stdout: Vec::new(), stderr, console, vsock: Some(vsock), _dir: d }
}

fn connect(path: &Path) -> UnixStream {
    let start = Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(c) => return c,
            Err(_) if start.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("connect {}: {e}", path.display()),
        }
    }
}

impl Flood {
    /// Waits for stdout lines starting with each of `prefixes`.
    fn wait_for(&mut self, prefixes: &[&str], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !prefixes.iter().all(|p| self.stdout.iter().any(|l| l.starts_with(p))) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.stdout.push(l),
                Err(_) => panic!("no {prefixes:?} on stdout after {timeout:?}: {:?}", self.stdout),
            }
        }
    }

    /// The number in the stdout line starting with `prefix`.
    fn count(&self, prefix: &str) -> usize {
        let l = self.stdout.iter().find(|l| l.starts_with(prefix)).unwrap();
        l[prefix.len()..].split_whitespace().next().unwrap().parse().unwrap()
    }
}

#[test]
fn sigterm_while_host_clients_do_not_read() {
    if skip("sigterm_while_host_clients_do_not_read") {
        return;
    }
    let mut f = start("floodterm", "flood");
    f.wait_for(&["console stalled after ", "vsock stalled after "], Duration::from_secs(60));
    // Backpressure: the guest could not send everything.
    assert!(f.count("console stalled after ") < CON_CHUNKS, "{:?}", f.stdout);
    assert!(f.count("vsock stalled after ") < VS_PKTS, "{:?}", f.stdout);
    let t = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(f.child.id() as i32, libc::SIGTERM) };
    let status = f.child.wait().unwrap();
    let took = t.elapsed();
    let stderr = f.stderr.join().unwrap();
    eprintln!("SIGTERM to exit: {took:?}");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "stderr: {stderr}");
    assert!(took < Duration::from_secs(1), "SIGTERM took {took:?}");
    drop(f.console);
}

#[test]
fn host_clients_reading_late_get_everything_in_order() {
    if skip("host_clients_reading_late_get_everything_in_order") {
        return;
    }
    let stderr = read_late("floodread", "flood");
    assert!(!stderr.contains("vsock credit exceeded"), "{stderr}");
}

/// A guest ignoring vsock credit fills the connection's buffer, then has
/// the connection reset (its transmit queue is not stalled: other
/// connections must go on); the host peer gets what its socket took, in
/// order, then the end of the stream. The console is not affected.
#[test]
fn vsock_guest_ignoring_credit_is_reset() {
    if skip("vsock_guest_ignoring_credit_is_reset") {
        return;
    }
    let stderr = read_late("floodnocredit", "floodnocredit");
    assert!(stderr.contains("rpc-vmm: guest: vsock credit exceeded: port 5000: 4096 bytes with "), "{stderr}");
}

/// Floods with `guest`, lets the host ends read once both streams stalled
/// (or the vsock one was reset), checks what they got; returns stderr.
fn read_late(tag: &str, guest: &str) -> String {
    let mut f = start(tag, guest);
    let ignores_credit = guest == "floodnocredit";
    let vsock_line = if ignores_credit { "vsock reset after " } else { "vsock stalled after " };
    f.wait_for(&["console stalled after ", vsock_line], Duration::from_secs(60));
    assert!(f.count("console stalled after ") < CON_CHUNKS, "{:?}", f.stdout);
    assert!(f.count(vsock_line) < VS_PKTS, "{:?}", f.stdout);
    let mut vs = f.vsock.take().unwrap().join().unwrap();
    vs.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // Until the guest's SHUTDOWN (SEND), or the reset, ends the stream.
    let vs_reader = std::thread::spawn(move || {
        let mut data = Vec::new();
        vs.read_to_end(&mut data).unwrap();
        data
    });
    f.console.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut data = vec![0u8; CON_CHUNK * CON_CHUNKS];
    f.console.read_exact(&mut data).unwrap();
    check_stream("console", &data, CON_CHUNK, CON_CHUNKS);
    let vs_data = vs_reader.join().unwrap();
    if ignores_credit {
        // What the socket held before the reset: less than was sent.
        assert!(!vs_data.is_empty() && vs_data.len() < VS_PAYLOAD * VS_PKTS, "vsock: {} bytes", vs_data.len());
        check_prefix("vsock", &vs_data, VS_PAYLOAD);
    } else {
        check_stream("vsock", &vs_data, VS_PAYLOAD, VS_PKTS);
    }
    f.wait_for(&["all sent"], Duration::from_secs(60));
    f.console.write_all(b"ok\n").unwrap();
    let run = wait_child(f.child, Duration::from_secs(60));
    let stderr = f.stderr.join().unwrap();
    while let Ok(l) = f.lines.recv_timeout(Duration::from_secs(5)) {
        f.stdout.push(l);
    }
    assert_eq!(run, Some(0), "stdout: {:?} stderr: {stderr}", f.stdout);
    assert_eq!(f.stdout.last().map(String::as_str), Some("host says: ok"), "{:?}", f.stdout);
    stderr
}

/// The child's exit code, failing the test past `timeout`.
fn wait_child(mut child: Child, timeout: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("rpc-vmm still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

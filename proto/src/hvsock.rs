//! The host's dial of a guest vsock port over a Firecracker-style hybrid
//! vsock unix socket, as rpc-vmm's vsock device and vhost-device-vsock's
//! `--uds-path` serve it: connect to the socket, write `CONNECT <port>\n`,
//! read `OK <host port>\n`; from then on the stream is the connection.
//!
//! While the guest boots nothing listens on the port: the VMM closes
//! (or resets) the host socket without an `OK`, or the socket itself is
//! not there yet. Those are retried every [`RETRY`] until the deadline;
//! anything else (an answer that is not `OK`, a permission error) is an
//! error at once.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::PollFlags;
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};

use crate::client::send;
use crate::error::{Error, Result};
use crate::frame::poll_until;

/// How often a refused dial is tried again.
pub const RETRY: Duration = Duration::from_millis(20);
/// The longest `OK <n>` line we read (the VMMs send ~15 bytes).
const LINE_MAX: usize = 64;

/// Why one attempt failed.
enum Attempt {
    /// Nobody there yet: try again.
    Retry(String),
    /// A real error.
    Fail(String),
}

/// Connects to guest port `port` through the hybrid vsock socket `uds`,
/// trying again every [`RETRY`] while the guest refuses, until `deadline`.
/// The stream comes back blocking, with nothing after the `OK` line read.
pub fn dial(uds: &Path, port: u32, deadline: Instant) -> Result<UnixStream> {
    let start = Instant::now();
    let err = |msg: String| Error::Hvsock { path: PathBuf::from(uds), port, msg };
    loop {
        let last = match attempt(uds, port, deadline) {
            Ok(s) => return Ok(s),
            Err(Attempt::Fail(m)) => return Err(err(m)),
            Err(Attempt::Retry(m)) => m,
        };
        let now = Instant::now();
        if now >= deadline {
            let after = deadline.saturating_duration_since(start);
            return Err(err(format!("no connection within {after:?} (last try: {last})")));
        }
        std::thread::sleep(RETRY.min(deadline - now));
    }
}

fn attempt(uds: &Path, port: u32, deadline: Instant) -> Result<UnixStream, Attempt> {
    let fd = connect_nonblocking(uds, deadline)?;
    let line = format!("CONNECT {port}\n");
    write_line(fd.as_fd(), line.as_bytes(), deadline)?;
    let answer = read_line(fd.as_fd(), deadline)?;
    let ok = answer.strip_prefix("OK ").map(|n| n.parse::<u32>().is_ok()).unwrap_or(false);
    if !ok {
        return Err(Attempt::Fail(format!("answered {answer:?} to CONNECT instead of `OK <port>`")));
    }
    let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(|e| Attempt::Fail(format!("fcntl: {e}")))?;
    let flags = OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK;
    fcntl(&fd, FcntlArg::F_SETFL(flags)).map_err(|e| Attempt::Fail(format!("fcntl: {e}")))?;
    Ok(UnixStream::from(fd))
}

/// A non-blocking connect: a unix socket whose backlog is full answers
/// EAGAIN instead of blocking us past the deadline.
fn connect_nonblocking(uds: &Path, deadline: Instant) -> Result<OwnedFd, Attempt> {
    let addr = UnixAddr::new(uds).map_err(|e| Attempt::Fail(format!("bad socket path: {e}")))?;
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)
        .map_err(|e| Attempt::Fail(format!("socket: {e}")))?;
    loop {
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => return Ok(fd),
            Err(Errno::EINTR) => {}
            Err(e @ (Errno::ENOENT | Errno::ECONNREFUSED | Errno::EAGAIN)) => {
                return Err(Attempt::Retry(format!("connect: {}", e.desc())));
            }
            // Not for unix sockets in practice; handled as for TCP.
            Err(Errno::EINPROGRESS) => match poll_until(fd.as_fd(), PollFlags::POLLOUT, deadline) {
                Ok(true) => return Ok(fd),
                Ok(false) => return Err(Attempt::Retry("connect: timed out".into())),
                Err(e) => return Err(Attempt::Fail(e.to_string())),
            },
            Err(e) => return Err(Attempt::Fail(format!("connect: {}", e.desc()))),
        }
    }
}

fn write_line(fd: BorrowedFd<'_>, mut bytes: &[u8], deadline: Instant) -> Result<(), Attempt> {
    while !bytes.is_empty() {
        match send(fd, bytes) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => match poll_until(fd, PollFlags::POLLOUT, deadline) {
                Ok(true) => {}
                Ok(false) => return Err(Attempt::Retry("no room to write CONNECT".into())),
                Err(e) => return Err(Attempt::Fail(e.to_string())),
            },
            Err(e @ (Errno::EPIPE | Errno::ECONNRESET)) => {
                return Err(Attempt::Retry(format!("writing CONNECT: {}", e.desc())));
            }
            Err(e) => return Err(Attempt::Fail(format!("writing CONNECT: {}", e.desc()))),
        }
    }
    Ok(())
}

/// The answer line, read a byte at a time so that nothing after it (the
/// guest's first bytes) is taken; without its newline.
fn read_line(fd: BorrowedFd<'_>, deadline: Instant) -> Result<String, Attempt> {
    let mut line = Vec::new();
    loop {
        match poll_until(fd, PollFlags::POLLIN, deadline) {
            Ok(true) => {}
            Ok(false) => return Err(Attempt::Retry("no answer to CONNECT".into())),
            Err(e) => return Err(Attempt::Fail(e.to_string())),
        }
        let mut byte = [0u8; 1];
        match nix::unistd::read(fd, &mut byte) {
            Ok(1) if byte[0] == b'\n' => return Ok(String::from_utf8_lossy(&line).into_owned()),
            Ok(1) if line.len() < LINE_MAX => line.push(byte[0]),
            Ok(1) => {
                let head = String::from_utf8_lossy(&line).into_owned();
                return Err(Attempt::Fail(format!("answered a line over {LINE_MAX} bytes ({head:?}...) to CONNECT")));
            }
            // Closed without a word: the guest refused (nobody listens yet).
            Ok(_) if line.is_empty() => return Err(Attempt::Retry("the guest refused the connection".into())),
            Ok(_) => {
                let got = String::from_utf8_lossy(&line).into_owned();
                return Err(Attempt::Fail(format!("closed after {got:?} instead of `OK <port>`")));
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(Errno::ECONNRESET) => return Err(Attempt::Retry("the guest reset the connection".into())),
            Err(e) => return Err(Attempt::Fail(format!("reading the answer to CONNECT: {}", e.desc()))),
        }
    }
}

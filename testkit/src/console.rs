//! The `--console-socket` side of a test: a unix socket on which the
//! runtime sends the pty master (SCM_RIGHTS), and reading that master.
//! rpc-runc's tests and the conformance runner use it.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A listening console socket; [`ConsoleSocket::master`] waits for the
/// runtime's fd.
pub struct ConsoleSocket {
    handle: Option<JoinHandle<io::Result<File>>>,
}

impl ConsoleSocket {
    /// Bind `path` and wait (in a thread, at most `timeout`) for one
    /// connection carrying the master.
    pub fn listen(path: &Path, timeout: Duration) -> io::Result<ConsoleSocket> {
        let l = UnixListener::bind(path)?;
        let handle = std::thread::spawn(move || {
            // poll(2) for the connection: no sleep loop, and a runtime that
            // never connects ends the wait at the deadline.
            if !wait_readable(l.as_raw_fd(), timeout) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the runtime did not connect to the console socket"));
            }
            let (s, _) = l.accept()?;
            s.set_read_timeout(Some(timeout))?;
            let (_, fd) = crate::recv_fd_msg(s.as_raw_fd())?;
            Ok(File::from(fd))
        });
        Ok(ConsoleSocket { handle: Some(handle) })
    }

    /// The pty master the runtime sent.
    pub fn master(&mut self) -> io::Result<File> {
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_else(|_| Err(io::Error::other("console thread died"))),
            None => Err(io::Error::other("master already taken")),
        }
    }
}

/// Is `fd` readable (or hung up) within `timeout`?
pub fn wait_readable(fd: std::os::fd::RawFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if r > 0 {
            return true;
        }
        if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// Is `f` a pty master? (TIOCGPTN works only on masters.)
pub fn is_pty_master(f: &File) -> bool {
    let mut n: libc::c_uint = 0;
    // SAFETY: ioctl with a pointer to a c_uint.
    unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCGPTN, &mut n) == 0 }
}

/// Read from the master until `until` appears, EOF/EIO (the slave side
/// closed), or the timeout; CRs dropped.
pub fn read_until(master: &mut File, until: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !wait_readable(master.as_raw_fd(), left) {
            break;
        }
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&out).contains(until) {
                    break;
                }
            }
            Err(_) => break, // EIO once the slave side is closed
        }
    }
    String::from_utf8_lossy(&out).replace('\r', "")
}

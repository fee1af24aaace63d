//! The `--console-socket` side: a unix socket on which the runtime sends the
//! pty master (SCM_RIGHTS), and reading/writing that master.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A listening console socket; `accept` waits for the runtime's fd.
pub struct ConsoleSocket {
    handle: Option<JoinHandle<io::Result<File>>>,
}

impl ConsoleSocket {
    pub fn listen(path: &Path, timeout: Duration) -> io::Result<ConsoleSocket> {
        let l = UnixListener::bind(path)?;
        l.set_nonblocking(true)?;
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + timeout;
            loop {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false)?;
                        s.set_read_timeout(Some(timeout))?;
                        let (_, fd) = testkit::recv_fd_msg(s.as_raw_fd())?;
                        return Ok(File::from(fd));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err(io::Error::new(io::ErrorKind::TimedOut, "the runtime did not connect to the console socket"));
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(e),
                }
            }
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

/// Is `f` a pty master? (TIOCGPTN works only on masters.)
pub fn is_pty_master(f: &File) -> bool {
    let mut n: libc::c_uint = 0;
    // SAFETY: ioctl with a pointer to a c_uint.
    unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCGPTN, &mut n) == 0 }
}

/// Read from the master until `until` appears, EOF/EIO, or the timeout.
pub fn read_until(master: &mut File, until: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut p = libc::pollfd { fd: master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(1000) as i32) };
        if r < 0 {
            break;
        }
        if r == 0 {
            continue;
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

pub fn write_all(master: &mut File, s: &str) -> io::Result<()> {
    master.write_all(s.as_bytes())
}

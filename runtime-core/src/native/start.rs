//! The exec socket: how a created container's init waits for `start`.
//! create binds a listening unix socket in the state directory and hands
//! it to init, which parks in accept(2) (holding no directory of the
//! host). `start` connects; init answers one byte and keeps the
//! connection open (close-on-exec) until the program runs, so EOF after
//! the byte means the program runs, and EOF before it means init failed.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::{Error, Op, Result};
use crate::linux::probe;
use crate::state::{Dir, ProcRef, State};

/// The socket init parks on.
pub(super) fn listen(dir: &Dir) -> Result<OwnedFd> {
    let l = std::os::unix::net::UnixListener::bind(dir.exec_sock_addr())
        .map_err(|e| Error::Io { context: format!("binding {}", dir.exec_sock_path().display()), source: e })?;
    std::fs::set_permissions(dir.exec_sock_path(), std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| Error::Io { context: format!("chmod {}", dir.exec_sock_path().display()), source: e })?;
    Ok(OwnedFd::from(l))
}

/// Release the parked init; returns once the program runs (or it is
/// known that it never will).
pub(super) fn release(st: &State, dir: &Dir) -> Result<()> {
    let stopped = || Error::Transition { op: Op::Start, id: st.id.clone(), status: "stopped" };
    let init = st.init.ok_or_else(stopped)?;
    crate::fault!("start:before-fifo-read");
    let mut conn = match std::os::unix::net::UnixStream::connect(dir.exec_sock_addr()) {
        Ok(c) => c,
        // Refused with init alive: an earlier `start` was answered and died
        // before it removed the socket; init went on to the program.
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) && init.alive() => {
            let _ = std::fs::remove_file(dir.exec_sock_path());
            return Err(Error::Transition { op: Op::Start, id: st.id.clone(), status: "running" });
        }
        // Refused (init gone: its listener with it) or missing: stopped.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNREFUSED | libc::ENOENT)) => return Err(stopped()),
        Err(e) => return Err(Error::Io { context: format!("connecting to {}", dir.exec_sock_path().display()), source: e }),
    };
    // init's byte, or EOF if it died or could not answer: then it did not
    // go on to the program, which must not run.
    let pidfd = probe::pidfd_open(init.pid).and_then(|r| r.ok());
    match read_or_death(&mut conn, pidfd.as_ref().map(|p| p.as_raw_fd()), init) {
        Some(1) => {
            crate::fault!("start:after-fifo-read");
        }
        _ => return Err(gave_up(&st.id, init, pidfd.as_ref())),
    }
    // EOF: the program is running (or init died on its way there).
    while !matches!(read_or_death(&mut conn, pidfd.as_ref().map(|p| p.as_raw_fd()), init), Some(0) | None) {}
    // No socket means running: no state write needed.
    let _ = std::fs::remove_file(dir.exec_sock_path());
    Ok(())
}

/// init closed the exec connection without its byte (or died): it failed
/// after create. Make sure it is gone, so nothing of the container runs on.
fn gave_up(id: &str, init: ProcRef, pidfd: Option<&OwnedFd>) -> Error {
    // Alive with its start time once the pidfd is open: the pidfd is
    // init's, and signalling through it cannot reach a recycled pid.
    if init.alive() {
        let _ = match pidfd {
            Some(p) => probe::pidfd_send_signal(p.as_raw_fd(), libc::SIGKILL),
            None => init.signal(libc::SIGKILL),
        };
    }
    Error::Container(format!(
        "cannot start container {id}: its init process failed before exec, without answering on the exec socket, so the \
         program was not run (does linux.seccomp deny write(2)? init's own error, when it can write one, is on the container's \
         stderr and in the log)"
    ))
}

/// One read of the exec connection, waiting on init's death too (its
/// pidfd, or a check every 50 ms without one): Some(bytes read), None if
/// init died first or the read failed.
fn read_or_death(conn: &mut std::os::unix::net::UnixStream, pidfd: Option<i32>, init: ProcRef) -> Option<usize> {
    loop {
        let mut fds = vec![libc::pollfd { fd: conn.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        if let Some(p) = pidfd {
            fds.push(libc::pollfd { fd: p, events: libc::POLLIN, revents: 0 });
        }
        let check = pidfd.is_none();
        // SAFETY: valid pollfd array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, if check { 50 } else { -1 }) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if fds[0].revents != 0 {
            let mut b = [0u8; 64];
            return match conn.read(&mut b) {
                Ok(n) => Some(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => None,
            };
        }
        let dead = fds.get(1).is_some_and(|p| p.revents != 0) || (check && !init.alive());
        if dead {
            return None;
        }
    }
}

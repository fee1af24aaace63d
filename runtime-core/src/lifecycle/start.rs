//! `start`: release the parked process through the exec socket, then run
//! the poststart hooks.

use std::io::Read;
use std::os::fd::AsRawFd;

use super::{OciState, Runtime, Status};
use crate::error::{Error, Result};
use crate::hooks;
use crate::linux::probe;

pub fn start(rt: &Runtime, id: &str) -> Result<()> {
    crate::id::validate(id)?;
    let dir = rt.store.open(id, true)?;
    let st = dir.load()?;
    match rt.status(&st, false) {
        Status::Created => {}
        Status::Stopped => return Err(Error::Container("cannot start a container that has stopped".into())),
        s => return Err(Error::Container(format!("cannot start an already {s} container"))),
    }
    let init = st.init.ok_or(Error::NotRunning)?;
    let stopped = || Error::Container("cannot start a container that has stopped".into());
    crate::fault!("start:before-fifo-read");
    let mut conn = match std::os::unix::net::UnixStream::connect(dir.exec_sock_addr()) {
        Ok(c) => c,
        // Refused with init alive: an earlier `start` was answered and died
        // before it removed the socket; init went on to the program.
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) && crate::linux::process::alive(init.pid, init.start_time) => {
            let _ = std::fs::remove_file(dir.exec_sock_path());
            return Err(Error::Container("cannot start an already running container".into()));
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
        _ => return Err(gave_up(init, pidfd.as_ref())),
    }
    // EOF: the program is running (or init died on its way there).
    while !matches!(read_or_death(&mut conn, pidfd.as_ref().map(|p| p.as_raw_fd()), init), Some(0) | None) {}
    // No socket means running: no state write needed.
    let _ = std::fs::remove_file(dir.exec_sock_path());
    crate::fault!("start:before-poststart");
    if !st.hooks.poststart.is_empty() {
        let json = OciState::new(&st, Status::Running).hook_json();
        // The spec: a failing poststart hook is logged, the others still run.
        hooks::run_all_warn("poststart", &st.hooks.poststart, &json);
    }
    crate::fault!("start:after-poststart");
    Ok(())
}

/// init closed the exec connection without its byte (or died): it failed
/// after create. Make sure it is gone, so nothing of the container runs on.
fn gave_up(init: crate::state::ProcRef, pidfd: Option<&std::os::fd::OwnedFd>) -> Error {
    // Alive with its start time once the pidfd is open: the pidfd is
    // init's, and signalling through it cannot reach a recycled pid.
    if crate::linux::process::alive(init.pid, init.start_time) {
        match pidfd {
            // SAFETY: plain syscall on our pidfd.
            Some(p) => unsafe {
                libc::syscall(libc::SYS_pidfd_send_signal, p.as_raw_fd(), libc::SIGKILL, std::ptr::null::<libc::siginfo_t>(), 0);
            },
            // SAFETY: plain syscall.
            None => unsafe {
                libc::kill(init.pid, libc::SIGKILL);
            },
        }
    }
    Error::Container(
        "cannot start the container: its init process failed before exec, without answering on the exec socket, so the \
         program was not run (does linux.seccomp deny write(2)? init's own error, when it can write one, is on the container's \
         stderr and in the log)"
            .into(),
    )
}

/// One read of the exec connection, waiting on init's death too (its
/// pidfd, or a check every 50 ms without one): Some(bytes read), None if
/// init died first or the read failed.
fn read_or_death(conn: &mut std::os::unix::net::UnixStream, pidfd: Option<i32>, init: crate::state::ProcRef) -> Option<usize> {
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
        let dead = fds.get(1).is_some_and(|p| p.revents != 0) || (check && !crate::linux::process::alive(init.pid, init.start_time));
        if dead {
            return None;
        }
    }
}

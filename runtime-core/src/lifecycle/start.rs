//! `start`: release the parked process through the exec fifo, then run
//! the poststart hooks.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

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
    let fifo = dir.fifo_path();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .map_err(|e| Error::Io { context: "opening the exec fifo".into(), source: e })?;
    let init = st.init.ok_or(Error::NotRunning)?;
    // Wait for init's byte, or for init to die.
    let pidfd = probe::pidfd_open(init.pid).and_then(|r| r.ok());
    loop {
        let mut fds = vec![libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        if let Some(p) = &pidfd {
            fds.push(libc::pollfd { fd: p.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        // SAFETY: valid pollfd array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, if pidfd.is_some() { -1 } else { 50 }) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let mut b = [0u8; 1];
            match f.read(&mut b) {
                Ok(1) => {
                    wait_exec(&mut f);
                    break;
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {}
                Ok(_) => return Err(gave_up(init, pidfd.as_ref())),
                Err(_) => return Err(Error::Container("cannot start a container that has stopped".into())),
            }
        } else if fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            // init opened the fifo and closed it without its byte: it
            // failed at the last step (and never polls readable again, so
            // looping here would spin).
            return Err(gave_up(init, pidfd.as_ref()));
        }
        let dead = fds.get(1).is_some_and(|p| p.revents != 0) || !crate::linux::process::alive(init.pid, init.start_time);
        if dead {
            return Err(Error::Container("cannot start a container that has stopped".into()));
        }
    }
    // No fifo means running: no state write needed.
    let _ = std::fs::remove_file(&fifo);
    if !st.hooks.poststart.is_empty() {
        let json = OciState::new(&st, Status::Running).hook_json();
        // The spec: a failing poststart hook is logged, the others still run.
        hooks::run_all_warn("poststart", &st.hooks.poststart, &json);
    }
    Ok(())
}

/// init closed the exec fifo without releasing itself: it failed after
/// create. Make sure it is gone, so nothing of the container runs on.
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
        "cannot start the container: its init process failed before exec, without writing the exec fifo, so the program \
         was not run (does linux.seccomp deny write(2)? init's own error, when it can write one, is on the container's \
         stderr and in the log)"
            .into(),
    )
}

/// After init's byte, the fifo reaches EOF when init's copy is closed by
/// execve (or by its death): the program is then running.
fn wait_exec(f: &mut std::fs::File) {
    // SAFETY: clearing O_NONBLOCK on our fd.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, 0) };
    let mut buf = [0u8; 64];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

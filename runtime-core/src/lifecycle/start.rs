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
    crate::fault!("start:before-fifo-read");
    // Wait for init's byte, or for init to die.
    let pidfd = probe::pidfd_open(init.pid).and_then(|r| r.ok());
    loop {
        let mut fds = vec![libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        if let Some(p) = &pidfd {
            fds.push(libc::pollfd { fd: p.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        // SAFETY: valid pollfd array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, if pidfd.is_some() { 100 } else { 50 }) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let mut b = [0u8; 1];
            match f.read(&mut b) {
                Ok(1) => {
                    crate::fault!("start:after-fifo-read");
                    wait_exec(&mut f);
                    break;
                }
                _ => return Err(Error::Container("cannot start a container that has stopped".into())),
            }
        }
        let dead = fds.get(1).is_some_and(|p| p.revents != 0) || !crate::linux::process::alive(init.pid, init.start_time);
        if dead {
            return Err(Error::Container("cannot start a container that has stopped".into()));
        }
        if n == 0 && !parked(init.pid) {
            // A parked init writes its byte as soon as the fifo has a
            // reader. It has gone on without us: an earlier `start` opened
            // the fifo and died before reading it (the byte went with its
            // pipe). The program runs; say so, and record it (no fifo).
            let _ = std::fs::remove_file(&fifo);
            return Err(Error::Container("cannot start an already running container".into()));
        }
    }
    // No fifo means running: no state write needed.
    let _ = std::fs::remove_file(&fifo);
    crate::fault!("start:before-poststart");
    if !st.hooks.poststart.is_empty() {
        let json = OciState::new(&st, Status::Running).hook_json();
        // The spec: a failing poststart hook is logged, the others still run.
        hooks::run_all_warn("poststart", &st.hooks.poststart, &json);
    }
    crate::fault!("start:after-poststart");
    Ok(())
}

/// Is init still the runtime's fork, waiting on the exec fifo (its
/// executable is ours), rather than the container's program?
fn parked(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata("/proc/self/exe"), std::fs::metadata(format!("/proc/{pid}/exe"))) {
        (Ok(me), Ok(it)) => me.dev() == it.dev() && me.ino() == it.ino(),
        // Cannot tell: keep waiting, as before.
        _ => true,
    }
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

//! Typed messages over a SOCK_SEQPACKET socketpair: one datagram each, so
//! no framing, and EOF when the other side dies.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    /// stage-1 -> parent: init's pid (in the parent's pid namespace).
    Pid(i32),
    /// stage-1 -> parent: write my uid/gid maps.
    MapIds,
    /// parent -> stage-1.
    MapDone,
    /// init -> parent: mounts are done; run prestart/createRuntime hooks
    /// and send me the state for createContainer/startContainer hooks.
    Hooks,
    /// parent -> init: hooks done; the state JSON for createContainer
    /// (status creating) and for startContainer (status created).
    HooksDone(String, String),
    /// init -> parent: everything is set up; parked before exec.
    Ready,
    /// either way: a failure, with its message.
    Error(String),
}

pub struct Chan(OwnedFd);

impl Chan {
    pub fn pair() -> Result<(Chan, Chan)> {
        let mut fds = [0; 2];
        // SAFETY: valid array for two fds.
        if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } != 0 {
            return Err(Error::Io { context: "socketpair".into(), source: std::io::Error::last_os_error() });
        }
        // SAFETY: both fds were just created.
        Ok(unsafe { (Chan(OwnedFd::from_raw_fd(fds[0])), Chan(OwnedFd::from_raw_fd(fds[1]))) })
    }

    pub fn send(&self, m: &Msg) -> Result<()> {
        let data = serde_json::to_vec(m).map_err(|e| Error::Container(format!("encoding {m:?}: {e}")))?;
        loop {
            // SAFETY: valid buffer.
            let n = unsafe { libc::send(self.0.as_raw_fd(), data.as_ptr() as *const _, data.len(), libc::MSG_NOSIGNAL) };
            if n >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::Io { context: "sync socket send".into(), source: e });
            }
        }
    }

    /// Next message; None on EOF (the other side is gone).
    pub fn recv(&self) -> Result<Option<Msg>> {
        // Not zeroed: recv fills what we read (64 KiB of memset per
        // message was a tenth of the runtime's own instructions).
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        loop {
            // SAFETY: the buffer's capacity is valid for writes.
            let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.capacity(), 0) };
            if n > 0 {
                // SAFETY: recv wrote n bytes.
                unsafe { buf.set_len(n as usize) };
                return serde_json::from_slice(&buf).map(Some).map_err(|e| Error::Container(format!("bad sync message: {e}")));
            }
            if n == 0 {
                return Ok(None);
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::Io { context: "sync socket recv".into(), source: e });
            }
        }
    }

    pub fn fd(&self) -> i32 {
        self.0.as_raw_fd()
    }
}

//! One connection from the host: its socket, the frame reader, the bytes
//! queued for it (frames; a stream's raw bytes stay in its relay) and what
//! its Hello made it.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{send, MsgFlags};
use rpc_proto::frame::FrameReader;
use rpc_proto::msg::Which;

use crate::procs::Key;

/// Past this many queued bytes a control connection is not read (its
/// client is not reading its replies).
pub const OUT_CAP: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Before its Hello.
    Hello,
    Control,
    /// Stdio of process `key`; `parked` while the process is not known
    /// yet (a stream may come before its Create or Exec).
    Stream {
        key: Key,
        which: Which,
        parked: bool,
    },
    Wait {
        key: Key,
        parked: bool,
    },
    /// The init's Exit (OOM events: not yet).
    Events {
        key: Key,
        parked: bool,
    },
}

pub struct Conn {
    pub fd: OwnedFd,
    pub reader: FrameReader,
    pub out: VecDeque<u8>,
    pub role: Role,
    /// The peer shut its write side (or closed).
    pub rd_closed: bool,
    /// Close once `out` is sent (after an Exit, a fatal error).
    pub close_after_flush: bool,
    /// Runtime calls this connection's requests are waiting for.
    pub calls: usize,
}

impl Conn {
    pub fn new(fd: OwnedFd) -> Conn {
        Conn {
            fd,
            reader: FrameReader::new(),
            out: VecDeque::new(),
            role: Role::Hello,
            rd_closed: false,
            close_after_flush: false,
            calls: 0,
        }
    }

    pub fn queue(&mut self, bytes: &[u8]) {
        self.out.extend(bytes);
    }

    /// Sends what is queued, as far as the socket takes it.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            let (a, _) = self.out.as_slices();
            match send_some(self.fd.as_fd(), a) {
                Ok(0) => break,
                Ok(n) => {
                    self.out.drain(..n.min(self.out.len()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub fn parked(&self) -> bool {
        matches!(self.role, Role::Stream { parked: true, .. } | Role::Wait { parked: true, .. } | Role::Events { parked: true, .. })
    }
}

/// One send(2) without SIGPIPE: bytes taken, WouldBlock when full.
pub fn send_some(fd: std::os::fd::BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    loop {
        match send(fd.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

//! One direction of a process's stdio between its pipe (or pty master)
//! and its stream connection, through a buffer of at most
//! [`STREAM_BUF`] bytes. An output relay reads its pipe only while a
//! stream is attached and the buffer has room: output written before a
//! stream attaches (or while the host is slow) waits in the pipe, and the
//! process blocks as with any slow reader.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use crate::conn::send_some;
use crate::poller::{Poller, Token, Want};

pub const STREAM_BUF: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// process -> host (stdout, stderr, the tty's output)
    Out,
    /// host -> process (stdin, the tty's input)
    In,
}

pub struct Relay {
    pub dir: Dir,
    /// The pipe's token in the poller.
    pub token: Token,
    /// Our end of the pipe; None once it ended (or before a tty's master
    /// arrived).
    pub fd: Option<OwnedFd>,
    pub buf: VecDeque<u8>,
    /// The stream connection attached.
    pub conn: Option<Token>,
    /// Out: the pipe ended. In: the stream ended (the host's half-close).
    pub eof: bool,
    /// In: close the pipe once the buffer is written (CloseStdin).
    pub close_when_empty: bool,
    /// Out: the stream's write side was shut (all was sent).
    pub shut: bool,
}

impl Relay {
    pub fn new(dir: Dir, token: Token, fd: Option<OwnedFd>) -> Relay {
        Relay { dir, token, fd, buf: VecDeque::new(), conn: None, eof: false, close_when_empty: false, shut: false }
    }

    /// Out: all the process wrote went to the stream.
    pub fn drained(&self) -> bool {
        self.fd.is_none() && self.buf.is_empty()
    }

    pub fn room(&self) -> usize {
        STREAM_BUF.saturating_sub(self.buf.len())
    }

    /// What the relay wants from its pipe.
    pub fn want(&self) -> Want {
        match self.dir {
            Dir::Out => Want { read: self.fd.is_some() && self.conn.is_some() && self.room() > 0, write: false },
            Dir::In => Want { read: false, write: self.fd.is_some() && !self.buf.is_empty() },
        }
    }

    pub fn close(&mut self, poller: &mut Poller) {
        if let Some(fd) = self.fd.take() {
            poller.remove(self.token, fd.as_fd());
        }
    }

    /// Out: reads the pipe into the buffer while there is room.
    pub fn fill_from_pipe(&mut self, poller: &mut Poller) {
        let mut tmp = [0u8; 16 << 10];
        while self.room() > 0 {
            let Some(fd) = self.fd.as_ref() else { return };
            let n = self.room().min(tmp.len());
            let Some(chunk) = tmp.get_mut(..n) else { return };
            match nix::unistd::read(fd, chunk) {
                Ok(0) => {
                    self.eof = true;
                    self.close(poller);
                }
                Ok(k) => self.buf.extend(chunk.iter().take(k)),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                // EIO: a pty whose slave side is all closed.
                Err(_) => {
                    self.eof = true;
                    self.close(poller);
                }
            }
        }
    }

    /// In: writes the buffer into the pipe; closes it at the end if asked.
    pub fn drain_to_pipe(&mut self, poller: &mut Poller) {
        while !self.buf.is_empty() {
            let Some(fd) = self.fd.as_ref() else {
                self.buf.clear();
                break;
            };
            let (a, _) = self.buf.as_slices();
            match nix::unistd::write(fd, a) {
                Ok(k) => {
                    self.buf.drain(..k.min(self.buf.len()));
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                // EPIPE: the process closed its stdin; what the host sends is dropped.
                Err(_) => {
                    self.buf.clear();
                    self.close(poller);
                }
            }
        }
        if self.eof || self.close_when_empty {
            self.close(poller);
        }
    }

    /// In: reads the stream into the buffer while there is room. Returns
    /// false at the stream's end.
    pub fn fill_from_conn(&mut self, conn: BorrowedFd<'_>) -> io::Result<bool> {
        let mut tmp = [0u8; 16 << 10];
        while self.room() > 0 && !self.eof {
            let n = self.room().min(tmp.len());
            let Some(chunk) = tmp.get_mut(..n) else { break };
            match nix::unistd::read(conn, chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(k) => self.buf.extend(chunk.iter().take(k)),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Out: sends the buffer to the stream; once the pipe ended and all is
    /// sent, shuts the stream's write side (the host's EOF).
    pub fn drain_to_conn(&mut self, conn: BorrowedFd<'_>) -> io::Result<()> {
        while !self.buf.is_empty() {
            let (a, _) = self.buf.as_slices();
            match send_some(conn, a) {
                Ok(0) => break,
                Ok(k) => {
                    self.buf.drain(..k.min(self.buf.len()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        if self.drained() && !self.shut {
            self.shut = true;
            use std::os::fd::AsRawFd;
            let _ = nix::sys::socket::shutdown(conn.as_raw_fd(), nix::sys::socket::Shutdown::Write);
        }
        Ok(())
    }
}

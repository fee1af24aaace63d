//! The epoll set of the agent's loop, level-triggered. Each fd is in the
//! set only while the agent wants something from it: an fd with nothing
//! wanted is taken out, since a level-triggered hang-up (a pipe whose
//! writer closed, no stream attached yet to take its data) would
//! otherwise wake the loop forever.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

pub type Token = u64;

pub struct Poller {
    epoll: Epoll,
    /// What each registered token is registered for.
    registered: HashMap<Token, EpollFlags>,
}

/// What the loop wants from an fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    pub read: bool,
    pub write: bool,
}

impl Want {
    pub const READ: Want = Want { read: true, write: false };

    fn flags(self) -> EpollFlags {
        let mut f = EpollFlags::empty();
        if self.read {
            f |= EpollFlags::EPOLLIN;
        }
        if self.write {
            f |= EpollFlags::EPOLLOUT;
        }
        f
    }
}

/// One readiness report.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub token: Token,
    pub readable: bool,
    pub writable: bool,
    /// Hang-up or error: a read or write will tell which.
    pub hup: bool,
}

impl Poller {
    pub fn new() -> std::io::Result<Poller> {
        Ok(Poller { epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?, registered: HashMap::new() })
    }

    /// Puts `fd` in the set for `want` (out of it when nothing is wanted).
    pub fn set(&mut self, token: Token, fd: BorrowedFd<'_>, want: Want) -> std::io::Result<()> {
        let flags = want.flags();
        match self.registered.get(&token).copied() {
            Some(_) if flags.is_empty() => {
                self.registered.remove(&token);
                self.epoll.delete(fd)?;
            }
            Some(f) if f == flags => {}
            Some(_) => {
                let mut ev = EpollEvent::new(flags, token);
                self.epoll.modify(fd, &mut ev)?;
                self.registered.insert(token, flags);
            }
            None if flags.is_empty() => {}
            None => {
                self.epoll.add(fd, EpollEvent::new(flags, token))?;
                self.registered.insert(token, flags);
            }
        }
        Ok(())
    }

    /// Takes `fd` out of the set before it is closed.
    pub fn remove(&mut self, token: Token, fd: BorrowedFd<'_>) {
        if self.registered.remove(&token).is_some() {
            let _ = self.epoll.delete(fd);
        }
    }

    /// Waits up to `timeout_ms` (-1: no limit) for readiness.
    pub fn wait(&self, timeout_ms: i32) -> std::io::Result<Vec<Ready>> {
        let mut evs = [EpollEvent::empty(); 64];
        let timeout = if timeout_ms < 0 { EpollTimeout::NONE } else { EpollTimeout::try_from(timeout_ms).unwrap_or(EpollTimeout::ZERO) };
        let n = match self.epoll.wait(&mut evs, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(evs
            .iter()
            .take(n)
            .map(|e| {
                let f = e.events();
                Ready {
                    token: e.data(),
                    readable: f.contains(EpollFlags::EPOLLIN),
                    writable: f.contains(EpollFlags::EPOLLOUT),
                    hup: f.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR),
                }
            })
            .collect())
    }
}

//! The event loop's interest in one host socket of a device. Devices
//! change it from vCPU threads and the event loop alike (epoll_ctl is
//! thread-safe): readable only while the guest can take data, writable
//! only while data waits for the socket. An fd with no interest is out of
//! the epoll set, so a hung-up peer (EPOLLHUP, always reported) cannot
//! make the loop spin.

use std::os::fd::RawFd;

/// EPOLLIN as epoll_event wants it.
pub const IN: u32 = libc::EPOLLIN as u32;
/// EPOLLOUT as epoll_event wants it.
pub const OUT: u32 = libc::EPOLLOUT as u32;

/// An fd in (or out of) the event loop's epoll set.
pub struct Watch {
    epoll_fd: RawFd,
    fd: RawFd,
    token: u64,
    events: u32,
}

impl Watch {
    /// Not watched until [`Watch::set`] asks for events.
    pub fn new(epoll_fd: RawFd, fd: RawFd, token: u64) -> Self {
        Watch { epoll_fd, fd, token, events: 0 }
    }

    fn ctl(&self, op: i32, events: u32) {
        let mut ev = libc::epoll_event { events, u64: self.token };
        // SAFETY: epoll_ctl on the event loop's epoll fd with a valid event
        // struct; an error (fd gone, not in the set) changes nothing.
        unsafe {
            libc::epoll_ctl(self.epoll_fd, op, self.fd, &mut ev);
        }
    }

    /// Watch for `events` (IN, OUT or both; 0 for none).
    pub fn set(&mut self, events: u32) {
        if events == self.events || self.epoll_fd < 0 {
            return;
        }
        match (self.events, events) {
            (_, 0) => self.ctl(libc::EPOLL_CTL_DEL, 0),
            (0, e) => self.ctl(libc::EPOLL_CTL_ADD, e),
            (_, e) => self.ctl(libc::EPOLL_CTL_MOD, e),
        }
        self.events = events;
    }

    pub fn events(&self) -> u32 {
        self.events
    }
}

/// An accept() error that means the process (or the system) is out of
/// file descriptors or socket memory: the listener stays ready, so it
/// must leave the epoll set for a while instead of being retried at once.
pub fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// An accept() error after which the next pending client may still be
/// taken (interrupted, or this client went away first).
pub fn retry_accept(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Interrupted || e.raw_os_error() == Some(libc::ECONNABORTED)
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.set(0);
    }
}

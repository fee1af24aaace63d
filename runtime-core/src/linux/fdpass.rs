//! Receiving a descriptor sent with SCM_RIGHTS: the pty master on a
//! `--console-socket` (the runtime's `run`/`exec`, the shim, the tests),
//! a seccomp agent's listener. Written once here; the shim and testkit
//! use it.

use std::io::{self, IoSliceMut};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// One message on the unix socket `sock`: its payload (lossy UTF-8; runc
/// sends the pty's name, a seccomp agent gets the state JSON) and the first
/// descriptor it carried, close-on-exec. Further descriptors in the same
/// message are closed. A message without one is `InvalidData`.
pub fn recv_fd_msg(sock: RawFd) -> io::Result<(String, OwnedFd)> {
    // The seccomp agent's payload is the container state: 8 KiB holds it.
    let mut buf = [0u8; 8192];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).map_err(io::Error::from)?;
    let n = msg.bytes;
    let mut first: Option<OwnedFd> = None;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed this descriptor in our
                // table; nothing else owns it. Owning every one closes the
                // extras on drop.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                first.get_or_insert(owned);
            }
        }
    }
    let fd = first.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no file descriptor (SCM_RIGHTS) in the message"))?;
    Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_descriptor_and_its_payload_arrive() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r, w) = UnixStream::pair().unwrap();
        crate::linux::tty::send_fd(a.as_raw_fd(), w.as_raw_fd(), "/dev/ptmx").unwrap();
        drop(w);
        let (payload, fd) = recv_fd_msg(b.as_raw_fd()).unwrap();
        assert_eq!(payload, "/dev/ptmx");
        // The received fd is the write end: writing to it reaches `r`.
        let mut wf = std::fs::File::from(fd);
        std::io::Write::write_all(&mut wf, b"x").unwrap();
        drop(wf);
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "x");
    }

    #[test]
    fn a_message_without_a_descriptor_is_invalid_data() {
        let (a, b) = UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut &a, b"no fd").unwrap();
        let e = recv_fd_msg(b.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}

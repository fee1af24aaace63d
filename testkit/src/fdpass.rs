//! Receiving an fd sent with SCM_RIGHTS (runc's console socket, a seccomp
//! agent's socket).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// One message on the unix socket `sock`: its payload and the fd it carried.
pub fn recv_fd_msg(sock: RawFd) -> io::Result<(String, OwnedFd)> {
    let mut buf = [0u8; 8192];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
    let mut cbuf = [0u64; 16]; // 8-byte aligned control buffer
                               // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: valid msghdr; MSG_CMSG_CLOEXEC so no child inherits the fd.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let payload = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
    // SAFETY: walking the control messages recvmsg filled in; the fd it
    // carries is new and ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd);
                return Ok((payload, OwnedFd::from_raw_fd(fd)));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "no SCM_RIGHTS fd in the message"))
}

//! Terminals: the container's pty is opened inside the container (its own
//! devpts instance), the master is sent over `--console-socket` with
//! SCM_RIGHTS as runc does, and the slave becomes the process's stdio and
//! controlling terminal, bind-mounted over /dev/console.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::error::{Context, Error, Result};

/// Send `fd` over a unix socket with a name payload (runc sends the pty's
/// name, e.g. "/dev/ptmx").
pub fn send_fd(sock: RawFd, fd: RawFd, name: &str) -> Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None).ctx("sending the pty master over the console socket")?;
    Ok(())
}

/// Receive one fd sent with `send_fd`.
pub fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).ctx("receiving the pty master")?;
    for c in msg.cmsgs().ctx("reading control messages")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just gave us this fd.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Error::Container("console socket: no file descriptor received".into()))
}

/// Inside the container, after pivot_root: make a pty, send its master,
/// make the slave our stdio and controlling terminal, and bind it over
/// /dev/console.
pub fn setup_console(sock: RawFd, size: Option<(u16, u16)>, dev_console: bool) -> Result<()> {
    // SAFETY: plain libc calls on fds we own.
    unsafe {
        let master = libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if master < 0 {
            return Err(Error::Io { context: "opening /dev/ptmx in the container".into(), source: std::io::Error::last_os_error() });
        }
        let master = OwnedFd::from_raw_fd(master);
        if libc::unlockpt(master.as_raw_fd()) != 0 {
            return Err(Error::Io { context: "unlockpt".into(), source: std::io::Error::last_os_error() });
        }
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) != 0 {
            return Err(Error::Io { context: "ptsname".into(), source: std::io::Error::last_os_error() });
        }
        let slave_path = std::ffi::CStr::from_ptr(name.as_ptr()).to_owned();
        if let Some((rows, cols)) = size {
            let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
        let slave = libc::open(slave_path.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if slave < 0 {
            return Err(Error::Io { context: format!("opening {slave_path:?}"), source: std::io::Error::last_os_error() });
        }
        let slave = OwnedFd::from_raw_fd(slave);
        // /dev/console -> the pty (a bind mount, as runc does).
        if dev_console {
            let console = Path::new("/dev/console");
            if !console.exists() {
                let _ = std::fs::File::create(console);
            }
            let sp = std::path::PathBuf::from(slave_path.to_string_lossy().into_owned());
            crate::linux::mounts::mount(Some(&sp), console, None, nix::mount::MsFlags::MS_BIND, None)?;
        }
        send_fd(sock, master.as_raw_fd(), "/dev/ptmx")?;
        drop(master);
        for fd in 0..3 {
            if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                return Err(Error::Io { context: "dup2 pty".into(), source: std::io::Error::last_os_error() });
            }
        }
        if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(Error::Io { context: "TIOCSCTTY".into(), source: std::io::Error::last_os_error() });
        }
    }
    Ok(())
}

/// Connect to a console socket path.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path).with_ctx(|| format!("connecting to console socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

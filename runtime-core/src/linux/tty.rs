//! Terminals: the container's pty is opened inside the container (its own
//! devpts instance), the master is sent over `--console-socket` with
//! SCM_RIGHTS as runc does, and the slave becomes the process's stdio and
//! controlling terminal, bind-mounted over /dev/console.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

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

/// Receive one fd sent with `send_fd` (`fdpass::recv_fd_msg`).
pub fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    crate::linux::fdpass::recv_fd_msg(sock).map(|(_, fd)| fd).ctx("receiving the pty master on the console socket")
}

/// Inside the container, after pivot_root: make a pty, send its master,
/// make the slave our stdio and controlling terminal, and bind it over
/// /dev/console.
pub fn setup_console(sock: RawFd, size: Option<(u16, u16)>, dev_console: bool, proc: &crate::linux::procfs::Lazy) -> Result<()> {
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
        if let Some((rows, cols)) = size {
            let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
        let slave = open_peer(&master)?;
        // /dev/console -> the pty (a bind mount, as runc does), by fds
        // only (CVE-2025-52565).
        if dev_console {
            let console = console_target()?;
            crate::linux::mounts::bind_fd(&slave, &console, proc)
                .map_err(|e| Error::Container(format!("mounting the pty on /dev/console: {e}")))?;
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

/// The slave of `master`: TIOCGPTPEER (4.13) opens it from the master
/// with no path lookup; older kernels go by its name in /dev/pts, not
/// following a symlink.
fn open_peer(master: &OwnedFd) -> Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: an ioctl on our master; the fd returned is ours.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER as _, flags) };
    if fd >= 0 {
        // SAFETY: just returned by the kernel.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: valid fd and buffer of the given length.
    if unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) } != 0 {
        return Err(Error::Io { context: "ptsname".into(), source: std::io::Error::last_os_error() });
    }
    // SAFETY: ptsname_r wrote a NUL-terminated string; opening it.
    let (path, fd) = unsafe {
        let path = std::ffi::CStr::from_ptr(name.as_ptr()).to_owned();
        let fd = libc::open(path.as_ptr(), flags | libc::O_NOFOLLOW);
        (path, fd)
    };
    if fd < 0 {
        return Err(Error::Io { context: format!("opening {path:?}"), source: std::io::Error::last_os_error() });
    }
    // SAFETY: just opened.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The /dev/console the pty goes over, as an fd: the file there if it is
/// a regular file or a character device, else (a symlink from the image
/// or swapped in) replaced by an empty file we create. Opened without
/// following links, so the mount cannot land on a symlink's target, and
/// a dangling one makes nothing elsewhere.
fn console_target() -> Result<OwnedFd> {
    let dev = crate::linux::path::Root::open(Path::new("/"))?.open_path(Path::new("/dev"), crate::linux::path::Create::Dir)?;
    let err = |what: &str, e: std::io::Error| Error::Io { context: format!("{what} /dev/console"), source: e };
    let flags = if crate::linux::probe::has_o_path() { libc::O_PATH } else { libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY };
    // SAFETY: valid fd and C string; the fd returned is ours.
    let fd = unsafe { libc::openat(dev.as_raw_fd(), c"console".as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: just opened.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = nix::sys::stat::fstat(&fd).map_err(|e| err("checking", e.into()))?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG | libc::S_IFCHR => return Ok(fd),
            libc::S_IFDIR => return Err(Error::Container("/dev/console is a directory: cannot mount the console on it".into())),
            _ => {
                // SAFETY: valid fd and C string.
                if unsafe { libc::unlinkat(dev.as_raw_fd(), c"console".as_ptr(), 0) } != 0 {
                    return Err(err("replacing", std::io::Error::last_os_error()));
                }
            }
        }
    } else {
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOENT) => {}
            // A symlink on a kernel without O_PATH: replace it.
            // SAFETY: valid fd and C string.
            Some(libc::ELOOP) if unsafe { libc::unlinkat(dev.as_raw_fd(), c"console".as_ptr(), 0) } == 0 => {}
            Some(libc::ELOOP) => return Err(err("replacing", std::io::Error::last_os_error())),
            _ => return Err(err("opening", e)),
        }
    }
    // SAFETY: valid fd and C string; O_EXCL|O_NOFOLLOW: only a file we make.
    let fd = unsafe {
        libc::openat(
            dev.as_raw_fd(),
            c"console".as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(err("creating", std::io::Error::last_os_error()));
    }
    // SAFETY: just created.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Connect to a console socket path.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path).with_ctx(|| format!("connecting to console socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

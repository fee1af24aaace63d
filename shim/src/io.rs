//! A process's stdio, copied between containerd's fifos and the container
//! the way containerd's Go shim does: the runtime gets pipes (or a pty
//! through a console socket) and the shim copies; the stdin fifo is opened
//! non-blocking so create never waits for a writer. Handing the fifos
//! straight to the runtime is known to stall.
//!
//! Besides fifo paths, `file://PATH` appends output to a file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use crate::error::{io, Error, Result};

const COPY_STACK: usize = 64 * 1024;

#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// The runtime's side of a process's stdio, for one create/exec call.
pub struct RuntimeStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// `--console-socket` for a terminal.
    pub console_socket: Option<ConsoleSocket>,
}

/// The shim's side, kept with the process.
#[derive(Default)]
pub struct ProcessIo {
    /// The write end of the container's stdin (pipe or a dup of the pty
    /// master); CloseIO drops it.
    stdin: Arc<Mutex<Option<File>>>,
    /// The pty master of a terminal process (for ResizePty).
    console: Option<File>,
    copiers: Vec<JoinHandle<()>>,
    paths: StdioPaths,
}

fn pipe() -> Result<(File, File)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io("creating a pipe")(e.into()))?;
    Ok((File::from(r), File::from(w)))
}

/// Opens an output destination: a fifo (read-write, so it never blocks and
/// a vanished reader does not kill the copy with EPIPE) or `file://`.
fn open_output(path: &str) -> Result<File> {
    if let Some(p) = path.strip_prefix("file://") {
        if let Some(dir) = Path::new(p).parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        return OpenOptions::new().append(true).create(true).open(p).map_err(io(format!("opening {p}")));
    }
    if path.contains("://") {
        return Err(Error::InvalidArgument(format!("unsupported stdio URI {path:?} (fifos and file:// are)")));
    }
    OpenOptions::new().read(true).write(true).open(path).map_err(io(format!("opening fifo {path}")))
}

/// Opens the stdin fifo without waiting for a writer, then makes reads
/// blocking (the copy thread waits for data or EOF).
fn open_stdin(path: &str) -> Result<File> {
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(io(format!("opening stdin fifo {path}")))?;
    let flags = fcntl(&f, FcntlArg::F_GETFL).map_err(|e| io("F_GETFL")(e.into()))?;
    let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
    fcntl(&f, FcntlArg::F_SETFL(flags)).map_err(|e| io("F_SETFL")(e.into()))?;
    Ok(f)
}

fn spawn_copy(name: &str, mut from: File, to: Arc<Mutex<Option<File>>>) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(COPY_STACK)
        .spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break, // EIO: the pty's last slave closed
                };
                let mut guard = match to.lock() {
                    Ok(g) => g,
                    Err(_) => break,
                };
                match guard.as_mut() {
                    Some(w) => {
                        if w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    None => break,
                }
            }
            // EOF: close the destination so the reader sees EOF too.
            if let Ok(mut g) = to.lock() {
                g.take();
            }
        })
        .map_err(io("spawning a copy thread"))
}

fn shared(f: File) -> Arc<Mutex<Option<File>>> {
    Arc::new(Mutex::new(Some(f)))
}

/// Sets up the stdio of a process about to be created: returns what the
/// runtime gets and what the shim keeps. Pipe copies start at once; a
/// terminal's start in [`ProcessIo::attach_console`].
/// `owner` (runc.v1 Options IoUid/IoGid) owns the container's pipe ends,
/// for containers whose root is not the host's root.
pub fn prepare(paths: &StdioPaths, socket_dir: &Path, tag: &str, owner: Option<(u32, u32)>) -> Result<(RuntimeStdio, ProcessIo)> {
    let chown = |f: &File| -> Result<()> {
        if let Some((uid, gid)) = owner {
            nix::unistd::fchown(f, Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| io("chown of a stdio pipe to IoUid/IoGid")(e.into()))?;
        }
        Ok(())
    };
    let mut pio = ProcessIo { paths: paths.clone(), ..Default::default() };
    if paths.terminal {
        let sock = ConsoleSocket::new(socket_dir, tag)?;
        let rt = RuntimeStdio { stdin: Stdio::null(), stdout: Stdio::null(), stderr: Stdio::null(), console_socket: Some(sock) };
        return Ok((rt, pio));
    }
    let stdin = if paths.stdin.is_empty() {
        Stdio::null()
    } else {
        let fifo = open_stdin(&paths.stdin)?;
        let (r, w) = pipe()?;
        chown(&r)?;
        pio.stdin = shared(w);
        pio.copiers.push(spawn_copy("stdin", fifo, pio.stdin.clone())?);
        Stdio::from(OwnedFd::from(r))
    };
    let mut output = |path: &str, name: &str| -> Result<Stdio> {
        if path.is_empty() {
            return Ok(Stdio::null());
        }
        let dest = open_output(path)?;
        let (r, w) = pipe()?;
        chown(&w)?;
        pio.copiers.push(spawn_copy(name, r, shared(dest))?);
        Ok(Stdio::from(OwnedFd::from(w)))
    };
    let stdout = output(&paths.stdout, "stdout")?;
    let stderr = output(&paths.stderr, "stderr")?;
    Ok((RuntimeStdio { stdin, stdout, stderr, console_socket: None }, pio))
}

impl ProcessIo {
    /// After a successful create/exec with a terminal: take the pty master
    /// the runtime sent and copy stdin fifo -> master -> stdout fifo.
    pub fn attach_console(&mut self, sock: &ConsoleSocket) -> Result<()> {
        let master = sock.receive()?;
        let out = master.try_clone().map_err(io("dup pty master"))?;
        let input = master.try_clone().map_err(io("dup pty master"))?;
        if !self.paths.stdout.is_empty() {
            let dest = open_output(&self.paths.stdout)?;
            self.copiers.push(spawn_copy("console-out", out, shared(dest))?);
        }
        if !self.paths.stdin.is_empty() {
            let fifo = open_stdin(&self.paths.stdin)?;
            self.stdin = shared(input);
            self.copiers.push(spawn_copy("console-in", fifo, self.stdin.clone())?);
        }
        self.console = Some(master);
        Ok(())
    }

    pub fn close_stdin(&self) {
        if let Ok(mut g) = self.stdin.lock() {
            g.take();
        }
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let console = self.console.as_ref().ok_or_else(|| Error::NotFound("the process has no terminal".into()))?;
        let ws = libc::winsize { ws_row: height as u16, ws_col: width as u16, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        let rc = unsafe { libc::ioctl(console.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if rc < 0 {
            return Err(io("resizing the pty")(std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

/// A `--console-socket`: the runtime connects and sends the pty master.
pub struct ConsoleSocket {
    listener: UnixListener,
    pub path: PathBuf,
}

impl ConsoleSocket {
    fn new(dir: &Path, tag: &str) -> Result<ConsoleSocket> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let path = dir.join(format!("pty-{}-{tag}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(io(format!("binding {}", path.display())))?;
        Ok(ConsoleSocket { listener, path })
    }

    /// Called once the runtime has exited successfully: it has connected
    /// and sent the master already, so nothing blocks here.
    fn receive(&self) -> Result<File> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        self.listener.set_nonblocking(true).map_err(io("console socket"))?;
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| Error::FailedPrecondition(format!("the runtime sent no terminal on the console socket: {e}")))?;
        stream.set_nonblocking(false).map_err(io("console socket"))?;
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
            .map_err(|e| io("receiving the pty master")(e.into()))?;
        let cmsgs = msg.cmsgs().map_err(|e| io("receiving the pty master")(e.into()))?;
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just gave us this descriptor.
                    return Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
                }
            }
        }
        Err(Error::FailedPrecondition("the runtime sent no file descriptor on the console socket".into()))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

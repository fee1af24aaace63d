//! A process's stdio, copied between containerd's fifos and the container
//! the way containerd's Go shim does: the runtime gets pipes (or a pty
//! through a console socket) and the shim copies; the stdin fifo is opened
//! non-blocking so create never waits for a writer. Handing the fifos
//! straight to the runtime is known to stall.
//!
//! Besides fifo paths, `file://PATH` appends output to a file and
//! `binary:///PATH?ARGS` hands it to a logging binary (nerdctl-style log
//! drivers, containerd's contract: the container's stdout and stderr on its
//! fds 3 and 4, fd 5 closed once it is ready, CONTAINER_ID and
//! CONTAINER_NAMESPACE in its environment).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// A terminal process's stdin fifo and output, opened by [`prepare`]
    /// before the runtime runs (so a bad path fails before anything
    /// started) and wired to the pty master by
    /// [`ProcessIo::attach_console`].
    console_stdin: Option<File>,
    console_stdout: Option<Output>,
}

fn pipe() -> Result<(File, File)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io("creating a pipe")(e.into()))?;
    Ok((File::from(r), File::from(w)))
}

/// Where a process's output goes, open: a file, or a client's fifo with a
/// read end of our own beside the write end, so that a reader that goes
/// away later does not end the copy with EPIPE.
enum Output {
    File(File),
    Fifo { w: File, keep: File },
}

/// How long create waits for the client to open its end of an output
/// fifo (ctr and the CRI open theirs before they ask for the task).
const FIFO_READER_WAIT: Duration = Duration::from_secs(30);

/// Opens an output destination before the runtime starts anything (a bad
/// path fails first). A fifo is opened write-only once its reader is
/// there, as containerd's Go shim does: bytes written to a fifo nobody
/// has open for reading yet go with its last close, and a client that
/// finds the task gone before its reader opened cancels that open, so a
/// process that printed and exited at once lost its output.
fn open_output(path: &str) -> Result<Output> {
    if let Some(p) = path.strip_prefix("file://") {
        if let Some(dir) = Path::new(p).parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        return OpenOptions::new().append(true).create(true).open(p).map(Output::File).map_err(io(format!("opening {p}")));
    }
    if path.contains("://") {
        return Err(Error::InvalidArgument(format!("unsupported stdio URI {path:?} (fifos, file:// and binary:// are)")));
    }
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path).map_err(io(format!("opening fifo {path}")))?;
    if !meta.file_type().is_fifo() {
        return OpenOptions::new().write(true).open(path).map(Output::File).map_err(io(format!("opening {path}")));
    }
    let deadline = Instant::now() + FIFO_READER_WAIT;
    let mut pause = Duration::from_micros(200);
    let w = loop {
        // Non-blocking: ENXIO while no reader has it open.
        match OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path) {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                return Err(Error::FailedPrecondition(format!("nobody opened the fifo {path} for reading within {FIFO_READER_WAIT:?}")));
            }
            Err(e) => return Err(io(format!("opening fifo {path}"))(e)),
        }
    };
    // Writes block (backpressure on the process), as through a pipe.
    let flags = fcntl(&w, FcntlArg::F_GETFL).map_err(|e| io("F_GETFL")(e.into()))?;
    fcntl(&w, FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK)).map_err(|e| io("F_SETFL")(e.into()))?;
    let keep = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io(format!("opening fifo {path}")))?;
    Ok(Output::Fifo { w, keep })
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

fn spawn_copy(name: &str, from: File, to: Arc<Mutex<Option<File>>>) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(COPY_STACK)
        .spawn(move || copy(from, &to))
        .map_err(io("spawning a copy thread"))
}

/// Copies a process's output to `dest` (see [`Output`]).
fn spawn_output(name: &str, from: File, dest: Output) -> Result<JoinHandle<()>> {
    let (to, keep) = match dest {
        Output::File(f) => (shared(f), None),
        Output::Fifo { w, keep } => (shared(w), Some(keep)),
    };
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(COPY_STACK)
        .spawn(move || {
            let _keep = keep;
            copy(from, &to);
        })
        .map_err(io("spawning a copy thread"))
}

/// Copies until EOF on `from`, then closes `to` so its reader sees EOF.
fn copy(mut from: File, to: &Mutex<Option<File>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break, // EIO: the pty's last slave closed
        };
        // Write through a dup, not under the lock: a write that blocks (a
        // full pipe nobody reads) must not block close_stdin, which runs
        // under the shim's container lock. A close meanwhile takes effect
        // when this write ends.
        let w = match to.lock() {
            Ok(g) => match g.as_ref().map(File::try_clone) {
                Some(Ok(w)) => w,
                _ => break,
            },
            Err(_) => break,
        };
        if (&w).write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if let Ok(mut g) = to.lock() {
        g.take();
    }
}

fn shared(f: File) -> Arc<Mutex<Option<File>>> {
    Arc::new(Mutex::new(Some(f)))
}

/// Decodes `%XX` escapes of a URI query part (and `+` as space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The program and arguments of a `binary://` URI, the way containerd's Go
/// shim reads them: the path, then each query key and its non-empty value.
pub fn parse_binary_uri(uri: &str) -> Result<(String, Vec<String>)> {
    let rest = uri.strip_prefix("binary://").ok_or_else(|| Error::InvalidArgument(format!("not a binary:// URI: {uri}")))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') {
        return Err(Error::InvalidArgument(format!("binary:// log driver needs an absolute path: {uri}")));
    }
    let mut args = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        args.push(unescape(k));
        if !v.is_empty() {
            args.push(unescape(v));
        }
    }
    Ok((unescape(path), args))
}

/// Starts a `binary://` logging driver and waits until it says it is
/// ready; returns the container's stdout and stderr write ends.
fn spawn_logger(uri: &str, namespace: &str, id: &str) -> Result<(File, File)> {
    let (path, args) = parse_binary_uri(uri)?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (mut ready_r, ready_w) = pipe()?;
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = Command::new(&path);
    cmd.args(&args)
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // via high duplicates, so a source fd that is 3..5 is not clobbered
            let mut tmp = [0; 3];
            for (t, fd) in tmp.iter_mut().zip(fds) {
                *t = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                if *t < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, t) in tmp.iter().enumerate() {
                if libc::dup2(*t, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(io(format!("starting the logging binary {path}")))?;
    drop(cmd);
    drop((out_r, err_r, ready_w));
    // EOF (or a byte) once the driver closed fd 5: it is ready
    let mut b = [0u8; 1];
    let _ = ready_r.read(&mut b);
    Ok((out_w, err_w))
}

/// Sets up the stdio of a process about to be created: returns what the
/// runtime gets and what the shim keeps. Pipe copies start at once; a
/// terminal's start in [`ProcessIo::attach_console`].
/// `owner` (runc.v1 Options IoUid/IoGid) owns the container's pipe ends,
/// for containers whose root is not the host's root.
pub fn prepare(paths: &StdioPaths, socket_dir: &Path, owner: Option<(u32, u32)>, ids: (&str, &str)) -> Result<(RuntimeStdio, ProcessIo)> {
    let chown = |f: &File| -> Result<()> {
        if let Some((uid, gid)) = owner {
            nix::unistd::fchown(f, Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| io("chown of a stdio pipe to IoUid/IoGid")(e.into()))?;
        }
        Ok(())
    };
    // Every path that must exist does, before anything waits for a
    // fifo's reader: a bad one fails at once, naming itself.
    for p in [&paths.stdout, &paths.stderr] {
        if !p.is_empty() && !p.contains("://") {
            std::fs::metadata(p.as_str()).map_err(io(format!("opening fifo {p}")))?;
        }
    }
    let mut pio = ProcessIo::default();
    if paths.terminal {
        if paths.stdout.starts_with("binary://") {
            return Err(Error::InvalidArgument("a binary:// log driver cannot take a terminal".into()));
        }
        // Everything that can fail is opened now, before the runtime
        // starts a process: a failure after it started would leave the
        // process running with nobody wired to its terminal.
        // stdin first: opening an output fifo waits for its reader.
        if !paths.stdin.is_empty() {
            pio.console_stdin = Some(open_stdin(&paths.stdin)?);
        }
        if !paths.stdout.is_empty() {
            pio.console_stdout = Some(open_output(&paths.stdout)?);
        }
        let sock = ConsoleSocket::new(socket_dir)?;
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
    if paths.stdout.starts_with("binary://") {
        let (out, err) = spawn_logger(&paths.stdout, ids.0, ids.1)?;
        chown(&out)?;
        chown(&err)?;
        let stdout = Stdio::from(OwnedFd::from(out));
        return Ok((RuntimeStdio { stdin, stdout, stderr: Stdio::from(OwnedFd::from(err)), console_socket: None }, pio));
    }
    let mut output = |path: &str, name: &str| -> Result<Stdio> {
        if path.is_empty() {
            return Ok(Stdio::null());
        }
        let dest = open_output(path)?;
        let (r, w) = pipe()?;
        chown(&w)?;
        pio.copiers.push(spawn_output(name, r, dest)?);
        Ok(Stdio::from(OwnedFd::from(w)))
    };
    let stdout = output(&paths.stdout, "stdout")?;
    let stderr = output(&paths.stderr, "stderr")?;
    Ok((RuntimeStdio { stdin, stdout, stderr, console_socket: None }, pio))
}

impl ProcessIo {
    /// After a successful create/exec with a terminal: take the pty master
    /// the runtime sent and copy stdin fifo -> master -> stdout fifo (both
    /// opened by [`prepare`] already).
    ///
    /// An error here comes after the runtime started the process: the
    /// caller must kill it (or delete the container), since nothing is
    /// wired to its terminal.
    pub fn attach_console(&mut self, sock: &ConsoleSocket) -> Result<()> {
        let master = sock.receive()?;
        if let Some(dest) = self.console_stdout.take() {
            let out = master.try_clone().map_err(io("dup pty master"))?;
            self.copiers.push(spawn_output("console-out", out, dest)?);
        }
        if let Some(fifo) = self.console_stdin.take() {
            let input = master.try_clone().map_err(io("dup pty master"))?;
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
        // u32 from the client: clamp, not truncate (65536 would become 0)
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        let ws = libc::winsize { ws_row: clamp(height), ws_col: clamp(width), ws_xpixel: 0, ws_ypixel: 0 };
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
    /// A socket in a fresh directory of our own (mode 0700, random name,
    /// as containerd's NewTempConsoleSocket does): nobody else can create
    /// or swap the socket the runtime hands the pty master to, and the
    /// path stays short whatever the container and exec ids (a unix
    /// socket path is limited to 108 bytes).
    fn new(base: &Path) -> Result<ConsoleSocket> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::create_dir_all(base).map_err(io(format!("creating {}", base.display())))?;
        for _ in 0..16 {
            let mut r = [0u8; 8];
            // SAFETY: getrandom fills the buffer it is given.
            if unsafe { libc::getrandom(r.as_mut_ptr() as *mut libc::c_void, r.len(), 0) } != r.len() as isize {
                return Err(io("getrandom")(std::io::Error::last_os_error()));
            }
            let dir = base.join(format!("pty{}", u64::from_ne_bytes(r)));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(format!("creating {}", dir.display()))(e)),
            }
            let path = dir.join("pty.sock");
            return match UnixListener::bind(&path) {
                Ok(listener) => Ok(ConsoleSocket { listener, path }),
                Err(e) => {
                    let _ = std::fs::remove_dir(&dir);
                    Err(io(format!("binding {}", path.display()))(e))
                }
            };
        }
        Err(Error::FailedPrecondition(format!("no free console socket directory under {}", base.display())))
    }

    /// Called once the runtime has exited successfully: it has connected
    /// and sent the master already, so nothing blocks here.
    fn receive(&self) -> Result<File> {
        self.listener.set_nonblocking(true).map_err(io("console socket"))?;
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| Error::FailedPrecondition(format!("the runtime sent no terminal on the console socket: {e}")))?;
        stream.set_nonblocking(false).map_err(io("console socket"))?;
        match runtime_core::linux::fdpass::recv_fd_msg(stream.as_raw_fd()) {
            Ok((_, fd)) => Ok(File::from(fd)),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                Err(Error::FailedPrecondition("the runtime sent no file descriptor on the console socket".into()))
            }
            Err(e) => Err(io("receiving the pty master")(e)),
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each console socket gets a private 0700 directory and a short path,
    /// gone when the socket is dropped.
    #[test]
    fn console_sockets_are_private_and_short() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("rpc-shim-test-{}", std::process::id()));
        let a = ConsoleSocket::new(&base).expect("socket");
        let b = ConsoleSocket::new(&base).expect("socket");
        assert_ne!(a.path, b.path);
        let dir = a.path.parent().expect("dir").to_path_buf();
        assert_eq!(std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777, 0o700);
        assert!(a.path.as_os_str().len() < 108, "{}", a.path.display());
        drop(a);
        assert!(!dir.exists(), "the socket's directory was left behind");
        drop(b);
        let _ = std::fs::remove_dir(&base);
    }

    fn fifo(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rpc-shim-fifo-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("stdout");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        p
    }

    fn prepare_stdout(path: &Path) -> (RuntimeStdio, ProcessIo) {
        let paths = StdioPaths { stdout: path.display().to_string(), ..Default::default() };
        let sockets = path.parent().expect("dir").join("sockets");
        prepare(&paths, &sockets, None, ("ns", "id")).expect("prepare")
    }

    /// A client whose reader opens late (`ctr run` opens it in a goroutine
    /// of its own) still gets the output of a process that printed and
    /// exited at once: create waits for the reader before the process
    /// runs. With the fifo opened read-write up front, the bytes went
    /// with the copy's close before the reader came.
    #[test]
    fn output_of_a_quick_process_reaches_a_late_reader() {
        let path = fifo("late");
        let p = path.clone();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            // Non-blocking, so that a writer already gone is an empty
            // read, not a wait forever; EOF before any data may only mean
            // the writer is not there yet.
            let mut r = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&p).expect("reader");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut got = Vec::new();
            loop {
                let mut b = [0u8; 64];
                match r.read(&mut b) {
                    Ok(0) if !got.is_empty() || std::time::Instant::now() > deadline => break,
                    Ok(n) if n > 0 => got.extend_from_slice(&b[..n]),
                    Ok(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(std::time::Duration::from_millis(10)),
                    Err(e) => panic!("read: {e}"),
                }
            }
            String::from_utf8_lossy(&got).into_owned()
        });
        let (rt, pio) = prepare_stdout(&path);
        let status = Command::new("sh").args(["-c", "echo early"]).stdout(rt.stdout).status().expect("sh");
        assert!(status.success());
        let got = reader.join().expect("reader thread");
        assert_eq!(got, "early\n");
        drop(pio);
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[test]
    fn binary_uri_like_containerd() {
        let (p, a) = parse_binary_uri("binary:///usr/bin/logger?dir=%2Fvar%2Flog&debug").expect("parse");
        assert_eq!(p, "/usr/bin/logger");
        assert_eq!(a, vec!["dir", "/var/log", "debug"]);
        assert!(parse_binary_uri("binary://relative").is_err());
        assert_eq!(unescape("a%2"), "a%2");
    }
}

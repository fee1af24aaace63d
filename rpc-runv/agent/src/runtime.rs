//! The seam between the agent and the runtime binary it drives: spawning
//! one runtime call (never waited for here: the loop reaps it and
//! completes the request) and signalling a process. [`RealExecutor`] runs
//! the binary; the fuzz target's fake never starts anything.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The stdio of a runtime call.
pub enum CallStdio {
    /// stdin /dev/null, stdout and stderr pipes the agent reads.
    Capture,
    /// A container process's own stdio (create, exec): the runtime hands
    /// these to the process it starts.
    Process { stdin: OwnedFd, stdout: OwnedFd, stderr: OwnedFd },
}

/// A started runtime call.
pub struct Spawned {
    pub pid: i32,
    /// The read ends of its stdout and stderr ([`CallStdio::Capture`]),
    /// non-blocking.
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

pub trait Executor {
    /// Starts the runtime with `args` (global flags included). Returns at
    /// once; the call's exit reaches the agent through
    /// [`crate::Agent::child_exited`].
    fn spawn(&mut self, args: &[OsString], stdio: CallStdio) -> io::Result<Spawned>;
    /// kill(2) of a process of ours (an exec'd process).
    fn kill(&mut self, pid: i32, sig: i32) -> io::Result<()>;
}

/// Runs the runtime binary.
pub struct RealExecutor {
    pub runtime: PathBuf,
}

impl Executor for RealExecutor {
    fn spawn(&mut self, args: &[OsString], stdio: CallStdio) -> io::Result<Spawned> {
        let mut cmd = Command::new(&self.runtime);
        cmd.args(args);
        match stdio {
            CallStdio::Capture => {
                cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            CallStdio::Process { stdin, stdout, stderr } => {
                cmd.stdin(Stdio::from(stdin)).stdout(Stdio::from(stdout)).stderr(Stdio::from(stderr));
            }
        }
        // std resets the signal mask and SIGPIPE in the child: the
        // agent's blocked SIGCHLD (its signalfd) is not inherited.
        let mut child = cmd.spawn()?;
        let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("child pid out of range"))?;
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take().map(OwnedFd::from);
        for fd in stdout.iter().chain(stderr.iter()) {
            set_nonblocking(fd)?;
        }
        // Dropping `child` neither waits nor kills: the loop reaps it.
        Ok(Spawned { pid, stdout, stderr })
    }

    fn kill(&mut self, pid: i32, sig: i32) -> io::Result<()> {
        if pid <= 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("pid {pid}")));
        }
        // SAFETY: kill(2) with a positive pid touches no memory of ours.
        let r = unsafe { libc::kill(pid, sig) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

pub fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fl = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// A pipe: (read end, write end), close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// The `msg` of each error line of the runtime's JSON log, joined; the
/// message the host gets as is.
pub fn log_errors(text: &str) -> String {
    runtime_core::log::error_messages(text).join("; ")
}

/// A pid file the runtime wrote: a positive pid (0 and negatives would
/// make kill(2) reach a process group or everything).
pub fn read_pid(path: &Path) -> Result<i32, String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    match s.trim().parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("bad pid {:?} in {}", s.trim(), path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_errors_keep_error_lines_only() {
        let t = "{\"level\":\"info\",\"msg\":\"x\"}\nnot json\n{\"level\":\"error\",\"msg\":\"exec: \\\"x\\\": not found\"}\n";
        assert_eq!(log_errors(t), "exec: \"x\": not found");
    }

    #[test]
    fn pid_files_with_zero_or_garbage_are_refused() {
        let d = std::env::temp_dir().join(format!("rpc-agent-pid-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for (text, ok) in [("42\n", true), ("0", false), ("-1", false), ("x", false)] {
            std::fs::write(d.join("p"), text).unwrap();
            assert_eq!(read_pid(&d.join("p")).is_ok(), ok, "{text}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}

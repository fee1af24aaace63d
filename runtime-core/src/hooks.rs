//! OCI hooks: run with the state JSON on stdin, their own env, a timeout.
//! Where each kind runs (runtime or container namespace) is decided by the
//! lifecycle; this module only runs one list.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::runtime::{Hook, Spec};

use crate::error::{Error, Result};
use crate::linux::probe;

/// All hook lists of a spec, by OCI name.
pub use crate::bundle::hook_lists as all;

pub fn list<'a>(spec: &'a Spec, kind: &str) -> &'a [Hook] {
    all(spec).into_iter().find(|(k, _)| *k == kind).map(|(_, v)| v).unwrap_or(&[])
}

/// Run each hook in order; the first failure stops the list.
pub fn run_all(kind: &'static str, hooks: &[Hook], state_json: &[u8]) -> Result<()> {
    run_all_via(kind, hooks, state_json, None)
}

/// As [`run_all`], each hook exec'd through `via` (the exec trampoline,
/// argv[0] the hook's path): for hooks whose path is resolved in the
/// container, so an image cannot make them run the runtime's binary.
pub fn run_all_via(kind: &'static str, hooks: &[Hook], state_json: &[u8], via: Option<&std::path::Path>) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        run_via(kind, i, h, state_json, via)?;
    }
    Ok(())
}

/// Run every hook even when one fails, logging failures as warnings: the
/// spec's rule for poststart and poststop.
pub fn run_all_warn(kind: &'static str, hooks: &[Hook], state_json: &[u8]) {
    for (i, h) in hooks.iter().enumerate() {
        if let Err(e) = run(kind, i, h, state_json) {
            crate::log::warn(&e.to_string());
        }
    }
}

/// Hooks run in the container's namespaces see the pid as the container
/// does (1 with a private pid namespace).
pub fn with_own_pid(state_json: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(state_json) else { return state_json.to_string() };
    // SAFETY: plain call.
    v["pid"] = serde_json::json!(unsafe { libc::getpid() });
    v.to_string()
}

/// Run one hook. Its stdout and stderr are collected (not inherited: a
/// hook that daemonises must not keep the caller's stdio open) and shown
/// on failure.
pub fn run(kind: &'static str, index: usize, h: &Hook, state_json: &[u8]) -> Result<()> {
    run_via(kind, index, h, state_json, None)
}

fn run_via(kind: &'static str, index: usize, h: &Hook, state_json: &[u8], via: Option<&std::path::Path>) -> Result<()> {
    let path = h.path().display().to_string();
    let fail = |msg: String| Error::Hook { kind, index, path: path.clone(), msg };
    let args = h.args().as_deref().filter(|a| !a.is_empty());
    let mut cmd = match via {
        Some(t) => {
            let mut c = Command::new(t);
            c.arg0(std::ffi::OsStr::from_bytes(crate::linux::process::trampoline::MARKER.to_bytes())).arg(h.path());
            match args {
                Some(a) => c.args(a),
                None => c.arg(h.path()),
            };
            c
        }
        None => {
            let mut c = Command::new(h.path());
            if let Some(a) = args {
                c.arg0(&a[0]).args(&a[1..]);
            }
            c
        }
    };
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    let (mut rd, wr) = std::io::pipe().map_err(|e| fail(format!("pipe: {e}")))?;
    let wr2 = wr.try_clone().map_err(|e| fail(format!("pipe: {e}")))?;
    cmd.stdin(Stdio::piped()).stdout(wr).stderr(wr2);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Undo what the runtime did to itself: default SIGPIPE, empty mask.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run: {e}")))?;
    drop(cmd);
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(state_json);
    }
    let timeout = h.timeout().map(|t| Duration::from_secs(t as u64));
    let exited = match probe::pidfd_open(child.id() as i32) {
        Some(Ok(fd)) => probe::poll_fd(fd.as_raw_fd(), timeout),
        _ => {
            // Old kernels: bounded backoff on try_wait.
            let deadline = timeout.map(|t| std::time::Instant::now() + t);
            let mut nap = Duration::from_micros(200);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break true;
                }
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    break false;
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
        }
    };
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        return Err(fail(format!("timed out after {}s", h.timeout().unwrap_or(0))));
    }
    let status = child.wait().map_err(|e| fail(format!("wait: {e}")))?;
    // Collect output without blocking on a grandchild that kept the pipe.
    let mut out = Vec::new();
    // SAFETY: setting O_NONBLOCK on our pipe end.
    unsafe { libc::fcntl(rd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let _ = rd.read_to_end(&mut out);
    if !status.success() {
        let out = String::from_utf8_lossy(&out);
        let out = out.trim();
        return Err(fail(format!("{status}{}{out}", if out.is_empty() { "" } else { ", output: " })));
    }
    Ok(())
}

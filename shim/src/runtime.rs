//! Drives the runtime binary (rpc-runc, rpc-runlxc, rpc-runv: runc's CLI).
//!
//! The shim is a subreaper and its reaper thread (containerd-shim's) reaps
//! every child with `waitpid(-1)`, so a runtime child is never waited on
//! directly: each call subscribes to the exit monitor before spawning and
//! takes the child's status from there.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use containerd_shim::monitor::{monitor_subscribe, wait_pid, Topic};
use serde::{Deserialize, Serialize};

use crate::error::{io, Error, Result};

/// How to call the runtime for one container; saved in the bundle so the
/// `delete` subcommand of a later shim can clean up after a dead one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    #[serde(default)]
    pub systemd_cgroup: bool,
    #[serde(default)]
    pub no_pivot_root: bool,
    #[serde(default)]
    pub no_new_keyring: bool,
    /// The runtime's `--log` file (JSON lines).
    pub log: PathBuf,
    /// Owner of the container's stdio pipes (Options IoUid/IoGid).
    #[serde(default)]
    pub io_owner: Option<(u32, u32)>,
}

pub const SAVED: &str = "rpc-shim.json";

impl Runtime {
    pub fn save(&self, bundle: &Path) -> Result<()> {
        let data = serde_json::to_vec(self).map_err(|source| Error::Json { context: "encoding runtime options".into(), source })?;
        std::fs::write(bundle.join(SAVED), data).map_err(io(format!("writing {}", bundle.join(SAVED).display())))
    }

    pub fn load(bundle: &Path) -> Result<Runtime> {
        let p = bundle.join(SAVED);
        let data = std::fs::read(&p).map_err(io(format!("reading {}", p.display())))?;
        serde_json::from_slice(&data).map_err(|source| Error::Json { context: format!("decoding {}", p.display()), source })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root).arg("--log").arg(&self.log).arg("--log-format").arg("json");
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd
    }

    fn name(&self) -> String {
        self.binary.file_name().unwrap_or(self.binary.as_os_str()).to_string_lossy().into_owned()
    }

    /// Runs `runtime ARGS`, feeding `input` on stdin; returns stdout.
    pub fn output<S: AsRef<OsStr>>(&self, args: &[S], input: Option<&[u8]>) -> Result<Vec<u8>> {
        let mut cmd = self.command();
        cmd.args(args).stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        let verb = verb(args);
        let log_from = self.log_len();
        let (code, out, err) = spawn_wait(cmd, input).map_err(io(format!("running {}", self.binary.display())))?;
        if code != 0 {
            return Err(self.failure(&verb, log_from, &err, code));
        }
        Ok(out)
    }

    /// Runs `runtime ARGS` with the given stdio (a container's pipes for
    /// create/exec) and waits for it.
    pub fn run_with_stdio<S: AsRef<OsStr>>(&self, args: &[S], stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Result<()> {
        let mut cmd = self.command();
        cmd.args(args).stdin(stdin).stdout(stdout).stderr(stderr);
        let verb = verb(args);
        let log_from = self.log_len();
        let (code, _, _) = spawn_wait(cmd, None).map_err(io(format!("running {}", self.binary.display())))?;
        if code != 0 {
            return Err(self.failure(&verb, log_from, b"", code));
        }
        Ok(())
    }

    /// Starts a long-running `runtime ARGS` (the events stream) with stdout
    /// piped; the caller reads it and kills the child when done.
    pub fn spawn_stream<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Child> {
        let mut cmd = self.command();
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        cmd.spawn().map_err(io(format!("running {}", self.binary.display())))
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The error of a failed call: the error lines the runtime logged during
    /// the call (runc's JSON shape: level, msg, time), else its stderr.
    fn failure(&self, verb: &str, log_from: u64, stderr: &[u8], code: i32) -> Error {
        let mut msgs = Vec::new();
        if let Ok(mut f) = File::open(&self.log) {
            let mut text = String::new();
            if f.seek(SeekFrom::Start(log_from)).is_ok() && f.read_to_string(&mut text).is_ok() {
                msgs = log_errors(&text);
            }
        }
        let mut msg = msgs.join("; ");
        if msg.is_empty() {
            msg = String::from_utf8_lossy(stderr).trim().to_string();
        }
        if msg.is_empty() {
            msg = format!("exit status {code}");
        }
        Error::Runtime { binary: self.name(), verb: verb.to_string(), msg }
    }
}

/// The `msg` of each error/fatal line of a runtime's JSON log.
pub fn log_errors(text: &str) -> Vec<String> {
    runtime_core::log::error_messages(text)
}

fn verb<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref().to_os_string())
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .map(|a: OsString| a.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Spawns `cmd` and waits for it through the exit monitor (see the module
/// doc); returns (exit code, stdout, stderr) with whatever was piped.
fn spawn_wait(mut cmd: Command, input: Option<&[u8]>) -> std::io::Result<(i32, Vec<u8>, Vec<u8>)> {
    let sub = monitor_subscribe(Topic::Pid).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut child = cmd.spawn()?;
    drop(cmd); // close our copies of the child's stdio now
    let pid = child.id() as i32;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        // A runtime that fails early closes stdin; its status says why.
        let _ = stdin.write_all(data);
    }
    let stderr = child.stderr.take();
    // (Builder, not thread::spawn, which panics when no thread can be
    // made: then stderr is closed and the runtime's status must do.)
    let err_reader = stderr.and_then(|mut e| {
        std::thread::Builder::new()
            .name("runtime-stderr".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut buf = Vec::new();
                let _ = e.read_to_end(&mut buf);
                buf
            })
            .ok()
    });
    let mut out = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut out);
    }
    let err = err_reader.and_then(|h| h.join().ok()).unwrap_or_default();
    let code = wait_pid(pid, sub);
    Ok((code, out, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_errors_take_error_lines_only() {
        let text = concat!(
            r#"{"level":"info","msg":"starting","time":"2024-01-01T00:00:00Z"}"#,
            "\n",
            r#"{"level":"error","msg":"exec: \"nope\": executable file not found in $PATH","time":"2024-01-01T00:00:00Z"}"#,
            "\nnot json\n"
        );
        assert_eq!(log_errors(text), vec![r#"exec: "nope": executable file not found in $PATH"#.to_string()]);
    }
}

//! The shim's bookkeeping: containers, their processes and exit
//! statuses, and the routing of the exits the reaper sees to them
//! (including exits that come before the runtime told us the pid).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use containerd_shim::monitor::{monitor_subscribe, ExitEvent, Subject, Topic};
use containerd_shim::protos::events::task::TaskExit;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use log::warn;

use super::{lock, Service};
use crate::error::{io, Error, Result};
use crate::io::{ProcessIo, StdioPaths};
use crate::runtime::Runtime;

pub(super) fn now() -> Timestamp {
    containerd_shim::util::timestamp().unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PState {
    Created,
    Running,
    Stopped,
}

#[derive(Default)]
pub(super) struct ExitCell {
    exit: Mutex<Option<(u32, Timestamp)>>,
    cv: Condvar,
}

impl ExitCell {
    pub(super) fn set(&self, code: u32, at: Timestamp) {
        if let Ok(mut g) = self.exit.lock() {
            *g = Some((code, at));
        }
        self.cv.notify_all();
    }
    pub(super) fn get(&self) -> Option<(u32, Timestamp)> {
        self.exit.lock().ok().and_then(|g| g.clone())
    }
    pub(super) fn wait(&self) -> Option<(u32, Timestamp)> {
        let mut g = self.exit.lock().ok()?;
        while g.is_none() {
            g = self.cv.wait(g).ok()?;
        }
        g.clone()
    }
    pub(super) fn wait_timeout(&self, d: std::time::Duration) -> Option<(u32, Timestamp)> {
        let g = self.exit.lock().ok()?;
        let (g, _) = self.cv.wait_timeout_while(g, d, |e| e.is_none()).ok()?;
        g.clone()
    }
}

pub(super) struct Process {
    pub(super) exec_id: String,
    pub(super) pid: i32,
    pub(super) state: PState,
    pub(super) stdio: StdioPaths,
    pub(super) exit: Arc<ExitCell>,
    pub(super) io: ProcessIo,
    /// `runtime start` is in flight: an exit is kept until it returns so
    /// TaskStart is published before TaskExit.
    pub(super) starting: bool,
    pub(super) pending_exit: Option<i32>,
    /// The exec's process JSON (for execs).
    pub(super) spec: Vec<u8>,
}

impl Process {
    pub(super) fn new(exec_id: &str, stdio: StdioPaths) -> Process {
        Process {
            exec_id: exec_id.to_string(),
            pid: 0,
            state: PState::Created,
            stdio,
            exit: Arc::new(ExitCell::default()),
            io: ProcessIo::default(),
            starting: false,
            pending_exit: None,
            spec: Vec::new(),
        }
    }
}

pub(super) struct Container {
    pub(super) id: String,
    pub(super) bundle: PathBuf,
    pub(super) runtime: Runtime,
    pub(super) rootfs_mounted: bool,
    pub(super) init: Process,
    pub(super) execs: HashMap<String, Process>,
    pub(super) paused: bool,
    /// The `runtime events` stream child that reports OOM kills.
    pub(super) events_pid: Option<i32>,
}

impl Container {
    pub(super) fn process(&self, exec_id: &str) -> Result<&Process> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs.get(exec_id).ok_or_else(|| Error::NotFound(format!("exec {exec_id} not found in container {}", self.id)))
    }
    pub(super) fn process_mut(&mut self, exec_id: &str) -> Result<&mut Process> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        let id = self.id.clone();
        self.execs.get_mut(exec_id).ok_or_else(|| Error::NotFound(format!("exec {exec_id} not found in container {id}")))
    }
}

#[derive(Default)]
pub(super) struct Exits {
    /// create/start/exec calls in flight: exits of unknown pids are kept
    /// meanwhile, since a process can exit before its pid is known.
    pub(super) in_flight: usize,
    pub(super) unclaimed: HashMap<i32, i32>,
}

impl Service {
    /// Routes the exits the reaper sees to the processes they belong to.
    pub(super) fn start_reaper_listener(&self) {
        let sub = match monitor_subscribe(Topic::Pid) {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot subscribe to exits: {e}");
                return;
            }
        };
        let svc = self.clone();
        let _ = std::thread::Builder::new().name("exits".into()).stack_size(256 * 1024).spawn(move || {
            while let Ok(ExitEvent { subject, exit_code }) = sub.rx.recv() {
                if let Subject::Pid(pid) = subject {
                    svc.on_exit(pid, exit_code);
                }
            }
        });
    }

    fn on_exit(&self, pid: i32, code: i32) {
        let mut containers = lock(&self.inner.containers);
        for c in containers.values_mut() {
            // The OOM watcher (`runtime events`) ends with the container:
            // forget its pid, so delete never signals a reused one.
            if c.events_pid == Some(pid) {
                c.events_pid = None;
                return;
            }
            let cid = c.id.clone();
            let procs = std::iter::once(&mut c.init).chain(c.execs.values_mut());
            for p in procs {
                if p.pid == pid && p.state != PState::Stopped {
                    if p.starting {
                        p.pending_exit = Some(code);
                    } else {
                        self.process_exited(&cid, p, code);
                    }
                    return;
                }
            }
        }
        let mut exits = lock(&self.inner.exits);
        if exits.in_flight > 0 {
            exits.unclaimed.insert(pid, code);
        }
    }

    pub(super) fn process_exited(&self, cid: &str, p: &mut Process, code: i32) {
        p.state = PState::Stopped;
        let at = now();
        p.exit.set(code as u32, at.clone());
        self.publish(TaskExit {
            container_id: cid.to_string(),
            id: if p.exec_id.is_empty() { cid.to_string() } else { p.exec_id.clone() },
            pid: p.pid as u32,
            exit_status: code as u32,
            exited_at: MessageField::some(at),
            ..Default::default()
        });
    }

    pub(super) fn begin_flight(&self) {
        lock(&self.inner.exits).in_flight += 1;
    }

    /// Ends an in-flight call; returns the exit status if `pid` already
    /// exited. Called with the containers lock held.
    pub(super) fn end_flight(&self, pid: Option<i32>) -> Option<i32> {
        let mut exits = lock(&self.inner.exits);
        let code = pid.and_then(|p| exits.unclaimed.remove(&p));
        exits.in_flight = exits.in_flight.saturating_sub(1);
        if exits.in_flight == 0 {
            exits.unclaimed.clear();
        }
        code
    }
}

/// SIGKILLs a process of ours (an exec, reparented to this subreaper); the
/// reaper reports its exit.
pub(super) fn kill_pid(pid: i32) {
    if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL) {
        warn!("killing pid {pid}: {e}");
    }
}

/// A pid file the runtime wrote. 0 and negative values are refused: kill()
/// would take them as "my process group" or "every process".
pub(super) fn read_pid(path: &Path) -> Result<i32> {
    let s = std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
    match s.trim().parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Error::FailedPrecondition(format!("bad pid {s:?} in {}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn pid_files_with_zero_or_negative_pids_are_refused() {
        let dir = std::env::temp_dir().join(format!("rpc-shim-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("p");
        for (text, ok) in [("1234\n", true), ("0", false), ("-1", false), ("x", false)] {
            std::fs::write(&f, text).expect("write");
            assert_eq!(read_pid(&f).is_ok(), ok, "{text:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Exec: a process added to a running container, and its start through
//! `runtime exec --detach`.

use containerd_shim::api::{ExecProcessRequest, StartResponse};
use containerd_shim::protos::events::task::{TaskExecAdded, TaskExecStarted};

use log::warn;

use super::process::{kill_pid, now, read_pid, PState, Process};
use super::{lock, Service};
use crate::error::{io, Error, Result};
use crate::io::{prepare, StdioPaths};

impl Service {
    pub(super) fn do_exec(&self, req: ExecProcessRequest) -> Result<()> {
        let spec = req.spec.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        if spec.is_empty() {
            return Err(Error::InvalidArgument("exec without a process spec".into()));
        }
        self.with_container(&req.id, |c| {
            if c.execs.contains_key(&req.exec_id) || req.exec_id.is_empty() {
                return Err(Error::AlreadyExists(format!("exec {} already exists", req.exec_id)));
            }
            if c.init.state == PState::Stopped {
                return Err(Error::FailedPrecondition(format!("container {} is stopped", req.id)));
            }
            let stdio =
                StdioPaths { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal };
            let mut p = Process::new(&req.exec_id, stdio);
            p.spec = spec;
            c.execs.insert(req.exec_id.clone(), p);
            Ok(())
        })?;
        self.publish(TaskExecAdded { container_id: req.id.clone(), exec_id: req.exec_id.clone(), ..Default::default() });
        Ok(())
    }

    pub(super) fn start_exec(&self, id: &str, exec_id: &str) -> Result<StartResponse> {
        let (runtime, bundle, spec, stdio) = self.with_container(id, |c| {
            if c.init.state != PState::Running {
                return Err(Error::FailedPrecondition(format!("container {id} is not running")));
            }
            let (runtime, bundle) = (c.runtime.clone(), c.bundle.clone());
            let p = c.process_mut(exec_id)?;
            if p.state != PState::Created || p.starting {
                return Err(Error::FailedPrecondition(format!("exec {exec_id} was started already")));
            }
            // One Start at a time; Delete of the exec waits for it too.
            p.starting = true;
            Ok((runtime, bundle, p.spec.clone(), p.stdio.clone()))
        })?;
        let safe: String = exec_id.chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' { ch } else { '_' }).collect();
        let spec_file = bundle.join(format!(".exec-{safe}.json"));
        let pid_file = bundle.join(format!(".exec-{safe}.pid"));
        let prepared = std::fs::write(&spec_file, &spec)
            .map_err(io(format!("writing {}", spec_file.display())))
            .and_then(|_| prepare(&stdio, &self.inner.socket_dir, runtime.io_owner, (&self.inner.namespace, id)));
        let (rt, mut pio) = match prepared {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&spec_file);
                self.exec_never_ran(id, exec_id);
                return Err(e);
            }
        };
        let _ = std::fs::remove_file(&pid_file);
        let mut args: Vec<std::ffi::OsString> = vec![
            "exec".into(),
            "--process".into(),
            spec_file.clone().into(),
            "--detach".into(),
            "--pid-file".into(),
            pid_file.clone().into(),
        ];
        if let Some(s) = &rt.console_socket {
            args.push("--console-socket".into());
            args.push(s.path.clone().into());
        }
        args.push(id.into());
        self.begin_flight();
        let res = runtime.run_with_stdio(&args, rt.stdin, rt.stdout, rt.stderr).and_then(|_| read_pid(&pid_file));
        let _ = std::fs::remove_file(&spec_file);
        let _ = std::fs::remove_file(&pid_file);
        let pid = match res {
            Ok(pid) => pid,
            Err(e) => {
                self.end_flight(None);
                self.exec_never_ran(id, exec_id);
                return Err(e);
            }
        };
        // The process runs from here on: every failure below kills it (or
        // leaves it tracked, for Kill and Delete), never just forgets it.
        let console = match &rt.console_socket {
            Some(sock) => pio.attach_console(sock),
            None => Ok(()),
        };
        drop(rt.console_socket); // its private directory goes now
        let mut containers = lock(&self.inner.containers);
        let early = self.end_flight(Some(pid));
        let Some(p) = containers.get_mut(id).and_then(|c| c.execs.get_mut(exec_id)) else {
            // The container went away meanwhile (the exec cannot be
            // deleted while starting): nobody would reap or report it.
            if early.is_none() {
                kill_pid(pid);
            }
            return Err(Error::NotFound(format!("container {id} was deleted while exec {exec_id} started")));
        };
        p.starting = false;
        p.pid = pid;
        p.state = PState::Running;
        if let Err(e) = console {
            // Its terminal is not wired to anything: kill it and report
            // the error. It is tracked (Running, with its pid) until the
            // reaper sees it go, so Kill and Delete still work if SIGKILL
            // is held off (a paused container).
            warn!("exec {exec_id} in {id}: {e}; killing pid {pid}");
            let exit = p.exit.clone();
            match early {
                Some(code) => self.process_exited(id, p, code),
                None => kill_pid(pid),
            }
            drop(containers);
            if exit.wait_timeout(std::time::Duration::from_secs(5)).is_none() {
                warn!("exec {exec_id} (pid {pid}) in {id} did not die yet; it stays tracked");
            }
            return Err(e);
        }
        p.io = pio;
        self.publish(TaskExecStarted { container_id: id.to_string(), exec_id: exec_id.to_string(), pid: pid as u32, ..Default::default() });
        if let Some(code) = early {
            // exited before the runtime told us its pid
            self.process_exited(id, p, code);
        }
        Ok(StartResponse { pid: pid as u32, ..Default::default() })
    }

    /// An exec whose Start failed before the runtime started a process:
    /// it never ran, so release whoever waits on it (ctr waits before it
    /// starts an exec), with runc's status for that.
    fn exec_never_ran(&self, id: &str, exec_id: &str) {
        let _ = self.with_container(id, |c| {
            let p = c.process_mut(exec_id)?;
            p.starting = false;
            p.state = PState::Stopped;
            p.exit.set(255, now());
            Ok(())
        });
    }
}

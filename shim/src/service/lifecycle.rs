//! The task lifecycle calls after Create: Start (of the init process),
//! Delete, Kill, State, Pids, Pause/Resume and Update.

use std::collections::HashMap;

use containerd_shim::api::{
    DeleteRequest, DeleteResponse, KillRequest, PidsRequest, PidsResponse, StartRequest, StartResponse, StateRequest, StateResponse,
    Status, UpdateTaskRequest,
};
use containerd_shim::protos::events::task::{TaskDelete, TaskPaused, TaskResumed, TaskStart};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::types::task::ProcessInfo;

use super::create::unmount_rootfs;
use super::process::{kill_pid, now, PState};
use super::{lock, Service};
use crate::error::{Error, Result};

impl Service {
    pub(super) fn do_start(&self, req: StartRequest) -> Result<StartResponse> {
        if req.exec_id.is_empty() {
            return self.start_init(&req.id);
        }
        self.start_exec(&req.id, &req.exec_id)
    }

    fn start_init(&self, id: &str) -> Result<StartResponse> {
        let (runtime, pid) = self.with_container(id, |c| {
            if c.init.state != PState::Created || c.init.starting {
                return Err(Error::FailedPrecondition(format!("container {id} is not in created state")));
            }
            c.init.starting = true;
            Ok((c.runtime.clone(), c.init.pid))
        })?;
        let res = runtime.output(&["start", id], None);
        let mut containers = lock(&self.inner.containers);
        let c = containers.get_mut(id).ok_or_else(|| Error::NotFound(format!("container {id} not found")))?;
        c.init.starting = false;
        if let Err(e) = res {
            if let Some(code) = c.init.pending_exit.take() {
                self.process_exited(id, &mut c.init, code);
            }
            return Err(e);
        }
        c.init.state = PState::Running;
        self.publish(TaskStart { container_id: id.to_string(), pid: pid as u32, ..Default::default() });
        if let Some(code) = c.init.pending_exit.take() {
            self.process_exited(id, &mut c.init, code);
        } else {
            c.events_pid = self.watch_oom(id, &runtime);
        }
        Ok(StartResponse { pid: pid as u32, ..Default::default() })
    }

    pub(super) fn do_delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        if !req.exec_id.is_empty() {
            return self.with_container(&req.id, |c| {
                let p = c.process(&req.exec_id)?;
                if p.state == PState::Running || p.starting {
                    return Err(Error::FailedPrecondition(format!("exec {} is still running", req.exec_id)));
                }
                let (code, at) = p.exit.get().unwrap_or_else(|| {
                    // never started: release its waiters
                    let at = now();
                    p.exit.set(255, at.clone());
                    (255, at)
                });
                let pid = p.pid as u32;
                c.execs.remove(&req.exec_id);
                Ok(DeleteResponse { pid, exit_status: code, exited_at: MessageField::some(at), ..Default::default() })
            });
        }
        let (runtime, state, exit) = self.with_container(&req.id, |c| Ok((c.runtime.clone(), c.init.state, c.init.exit.clone())))?;
        if state == PState::Running {
            return Err(Error::FailedPrecondition(format!("container {} is still running, kill it first", req.id)));
        }
        runtime.output(&["delete", "--force", &req.id], None)?;
        // A never-started init is killed by delete --force: take its status.
        let (code, at) = exit.wait_timeout(std::time::Duration::from_secs(2)).unwrap_or((137, now()));
        let c = lock(&self.inner.containers).remove(&req.id);
        let Some(c) = c else { return Err(Error::NotFound(format!("container {} not found", req.id))) };
        // Release waiters of processes that will never report an exit now.
        for p in c.execs.values().chain(std::iter::once(&c.init)) {
            if p.exit.get().is_none() {
                p.exit.set(if p.state == PState::Created { 255 } else { 137 }, at.clone());
            }
        }
        if let Some(pid) = c.events_pid {
            kill_pid(pid);
        }
        if c.rootfs_mounted {
            unmount_rootfs(&c.bundle);
        }
        self.publish(TaskDelete {
            container_id: req.id.clone(),
            pid: c.init.pid as u32,
            exit_status: code,
            exited_at: MessageField::some(at.clone()),
            id: req.id.clone(),
            ..Default::default()
        });
        Ok(DeleteResponse { pid: c.init.pid as u32, exit_status: code, exited_at: MessageField::some(at), ..Default::default() })
    }

    pub(super) fn do_kill(&self, req: KillRequest) -> Result<()> {
        let (runtime, is_init, pid) = self.with_container(&req.id, |c| {
            let p = c.process(&req.exec_id)?;
            if p.state == PState::Stopped {
                return Err(Error::NotFound(format!("process {} already finished", p.pid)));
            }
            Ok((c.runtime.clone(), req.exec_id.is_empty(), p.pid))
        })?;
        if is_init {
            let sig = req.signal.to_string();
            let mut args = vec!["kill"];
            if req.all {
                args.push("--all");
            }
            args.push(&req.id);
            args.push(&sig);
            if let Err(e) = runtime.output(&args, None) {
                // It may have exited meanwhile.
                let stopped = self.with_container(&req.id, |c| Ok(c.init.state == PState::Stopped)).unwrap_or(true);
                if stopped {
                    return Err(Error::NotFound(format!("process {pid} already finished")));
                }
                return Err(e);
            }
            return Ok(());
        }
        // An exec's process is our child (reparented to us): signal it,
        // under the lock so its pid cannot be reaped and reused meanwhile.
        self.with_container(&req.id, |c| {
            let p = c.process(&req.exec_id)?;
            if p.state != PState::Running {
                return Err(Error::NotFound(format!("process {} not running", p.pid)));
            }
            let sig = nix::sys::signal::Signal::try_from(req.signal as i32)
                .map_err(|_| Error::InvalidArgument(format!("invalid signal {}", req.signal)))?;
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), sig).map_err(|e| Error::NotFound(format!("process {}: {e}", p.pid)))
        })
    }

    pub(super) fn do_state(&self, req: StateRequest) -> Result<StateResponse> {
        self.with_container(&req.id, |c| {
            let paused = c.paused;
            let bundle = c.bundle.display().to_string();
            let p = c.process(&req.exec_id)?;
            let status = match p.state {
                PState::Created => Status::CREATED,
                PState::Running if paused => Status::PAUSED,
                PState::Running => Status::RUNNING,
                PState::Stopped => Status::STOPPED,
            };
            let mut resp = StateResponse {
                id: if req.exec_id.is_empty() { req.id.clone() } else { req.exec_id.clone() },
                exec_id: req.exec_id.clone(),
                bundle,
                pid: p.pid as u32,
                stdin: p.stdio.stdin.clone(),
                stdout: p.stdio.stdout.clone(),
                stderr: p.stdio.stderr.clone(),
                terminal: p.stdio.terminal,
                ..Default::default()
            };
            resp.status = status.into();
            if let Some((code, at)) = p.exit.get() {
                resp.exit_status = code;
                resp.exited_at = MessageField::some(at);
            }
            Ok(resp)
        })
    }

    pub(super) fn do_pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let runtime = self.runtime_of(&req.id)?;
        let out = runtime.output(&["ps", "--format", "json", &req.id], None)?;
        let pids: Vec<i64> =
            serde_json::from_slice(&out).map_err(|source| Error::Json { context: "decoding the runtime's ps output".into(), source })?;
        let execs: HashMap<i32, String> =
            self.with_container(&req.id, |c| Ok(c.execs.values().map(|p| (p.pid, p.exec_id.clone())).collect()))?;
        let mut resp = PidsResponse::default();
        for pid in pids {
            let mut info = ProcessInfo { pid: pid as u32, ..Default::default() };
            if let Some(exec_id) = execs.get(&(pid as i32)) {
                let details = containerd_shim::protos::shim::oci::ProcessDetails { exec_id: exec_id.clone(), ..Default::default() };
                if let Ok(any) = containerd_shim::util::convert_to_any(Box::new(details)) {
                    info.info = MessageField::some(any);
                }
            }
            resp.processes.push(info);
        }
        Ok(resp)
    }

    pub(super) fn do_pause(&self, id: &str, pause: bool) -> Result<()> {
        let runtime = self.runtime_of(id)?;
        runtime.output(&[if pause { "pause" } else { "resume" }, id], None)?;
        self.with_container(id, |c| {
            c.paused = pause;
            Ok(())
        })?;
        if pause {
            self.publish(TaskPaused { container_id: id.to_string(), ..Default::default() });
        } else {
            self.publish(TaskResumed { container_id: id.to_string(), ..Default::default() });
        }
        Ok(())
    }

    pub(super) fn do_update(&self, req: UpdateTaskRequest) -> Result<()> {
        let runtime = self.runtime_of(&req.id)?;
        let res = req.resources.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        if res.is_empty() {
            return Err(Error::InvalidArgument("update without resources".into()));
        }
        runtime.output(&["update", "-r", "-", &req.id], Some(&res))?;
        Ok(())
    }
}

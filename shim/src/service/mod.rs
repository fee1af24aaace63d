//! The Task service: containerd's task API v2 on top of the runtime CLI.
//!
//! One `Service` per shim. Its state and the dispatch of the ttrpc calls
//! live here; each part of the API has its own file:
//! - `process`: the bookkeeping of containers and their processes, and the
//!   routing of the exits the reaper sees to them;
//! - `create`: Create (which runtime, the rootfs, `runtime create`);
//! - `lifecycle`: Start, Delete, Kill, State, Pids, Pause/Resume, Update;
//! - `exec`: Exec and the start of an exec;
//! - `stats`: Stats and the OOM events.

mod create;
mod exec;
mod lifecycle;
mod process;
mod stats;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, MutexGuard};

use containerd_shim::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest, DeleteResponse, Empty,
    ExecProcessRequest, KillRequest, PidsRequest, PidsResponse, ResizePtyRequest, ShutdownRequest, StartRequest, StartResponse,
    StateRequest, StateResponse, UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::event::Event;
use containerd_shim::protos::protobuf::{MessageDyn, MessageField};
use containerd_shim::protos::shim::shim::{CheckpointTaskRequest, PauseRequest, ResumeRequest, StatsRequest, StatsResponse};
use containerd_shim::protos::ttrpc;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{ExitSignal, TtrpcContext, TtrpcResult};
use log::{debug, warn};

use crate::error::{Error, Result};
use crate::runtime::Runtime;

pub use create::{decode_options, resolve_binary, unmount_rootfs};
use process::{now, Container, Exits};

struct Inner {
    namespace: String,
    /// Runtime binary name picked by the shim's name (rpc-runc, ...).
    default_binary: String,
    containers: Mutex<HashMap<String, Container>>,
    /// Ids whose Create is in flight. Taken and released only with the
    /// `containers` lock held (lock order: containers, then this), so
    /// "no such container and none being created" and the reservation
    /// are one atomic step.
    creating: Mutex<std::collections::HashSet<String>>,
    exits: Mutex<Exits>,
    events: Mutex<Sender<(String, Box<dyn MessageDyn>)>>,
    exit_signal: Arc<ExitSignal>,
    socket_dir: PathBuf,
}

#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Service {
    pub fn new(namespace: &str, default_binary: &str, publisher: RemotePublisher, exit_signal: Arc<ExitSignal>) -> Service {
        let (tx, rx) = channel::<(String, Box<dyn MessageDyn>)>();
        let ns = namespace.to_string();
        // containerd's ttrpc address, to reconnect after containerd restarts
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        // One thread publishes, in the order events happened.
        let _ = std::thread::Builder::new().name("publisher".into()).stack_size(256 * 1024).spawn(move || {
            let mut publisher = Some(publisher);
            for (topic, ev) in rx {
                let mut sent = false;
                for attempt in 0..4 {
                    if publisher.is_none() {
                        publisher = RemotePublisher::new(&address).ok();
                    }
                    let Some(p) = publisher.as_ref() else {
                        std::thread::sleep(std::time::Duration::from_millis(100 << attempt));
                        continue;
                    };
                    match p.publish(ttrpc::context::Context::default(), &topic, &ns, ev.clone_box()) {
                        Ok(()) => {
                            sent = true;
                            break;
                        }
                        Err(e) => {
                            // containerd restarted (or is restarting): reconnect
                            debug!("publishing {topic}: {e}; reconnecting");
                            publisher = None;
                        }
                    }
                }
                if !sent {
                    warn!("could not publish {topic}");
                }
            }
        });
        let svc = Service {
            inner: Arc::new(Inner {
                namespace: namespace.to_string(),
                default_binary: default_binary.to_string(),
                containers: Mutex::new(HashMap::new()),
                creating: Mutex::new(Default::default()),
                exits: Mutex::new(Exits::default()),
                events: Mutex::new(tx),
                exit_signal,
                // The temp dir itself (sticky, root's): a subdirectory
                // someone else made first could have our entries swapped.
                socket_dir: std::env::temp_dir(),
            }),
        };
        svc.start_reaper_listener();
        svc
    }

    fn publish<E: Event + MessageDyn>(&self, ev: E) {
        let topic = ev.topic();
        if lock(&self.inner.events).send((topic, Box::new(ev))).is_err() {
            warn!("event publisher is gone");
        }
    }

    fn with_container<T>(&self, id: &str, f: impl FnOnce(&mut Container) -> Result<T>) -> Result<T> {
        let mut containers = lock(&self.inner.containers);
        let c = containers.get_mut(id).ok_or_else(|| Error::NotFound(format!("container {id} not found")))?;
        f(c)
    }

    fn runtime_of(&self, id: &str) -> Result<Runtime> {
        self.with_container(id, |c| Ok(c.runtime.clone()))
    }
}

fn reply<T>(r: Result<T>) -> TtrpcResult<T> {
    r.map_err(|e| {
        debug!("request failed: {e}");
        e.into()
    })
}

impl containerd_shim::Task for Service {
    fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> TtrpcResult<CreateTaskResponse> {
        reply(self.do_create(req))
    }
    fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        reply(self.do_start(req))
    }
    fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        reply(self.do_delete(req))
    }
    fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        reply(self.do_pids(req))
    }
    fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        reply(self.do_pause(&req.id, true).map(|_| Empty::new()))
    }
    fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        reply(self.do_pause(&req.id, false).map(|_| Empty::new()))
    }
    fn checkpoint(&self, _ctx: &TtrpcContext, _req: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        reply(Err(Error::Unimplemented("checkpoint is not supported by the rpc runtimes yet".into())))
    }
    fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        reply(self.do_kill(req).map(|_| Empty::new()))
    }
    fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        reply(self.do_exec(req).map(|_| Empty::new()))
    }
    fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        reply(self.with_container(&req.id, |c| c.process(&req.exec_id)?.io.resize(req.width, req.height)).map(|_| Empty::new()))
    }
    fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        reply(
            self.with_container(&req.id, |c| {
                if req.stdin {
                    c.process(&req.exec_id)?.io.close_stdin();
                }
                Ok(())
            })
            .map(|_| Empty::new()),
        )
    }
    fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        reply(self.do_update(req).map(|_| Empty::new()))
    }
    fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        let cell = reply(self.with_container(&req.id, |c| Ok(c.process(&req.exec_id)?.exit.clone())))?;
        let (code, at) = cell.wait().unwrap_or((255, now()));
        Ok(WaitResponse { exit_status: code, exited_at: MessageField::some(at), ..Default::default() })
    }
    fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        reply(self.do_state(req))
    }
    fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        reply(self.do_stats(req))
    }
    fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        let task_pid = self.with_container(&req.id, |c| Ok(c.init.pid as u32)).unwrap_or(0);
        Ok(ConnectResponse { shim_pid: std::process::id(), task_pid, ..Default::default() })
    }
    fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> TtrpcResult<Empty> {
        let containers = lock(&self.inner.containers);
        if containers.is_empty() && lock(&self.inner.creating).is_empty() {
            self.inner.exit_signal.signal();
        }
        Ok(Empty::new())
    }
}

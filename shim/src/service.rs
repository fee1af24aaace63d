//! The Task service: containerd's task API v2 on top of the runtime CLI.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use containerd_shim::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest, DeleteResponse, Empty,
    ExecProcessRequest, KillRequest, Options, PidsRequest, PidsResponse, ResizePtyRequest, ShutdownRequest, StartRequest, StartResponse,
    StateRequest, StateResponse, Status, UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::event::Event;
use containerd_shim::monitor::{monitor_subscribe, ExitEvent, Subject, Topic};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{Message, MessageDyn, MessageField};
use containerd_shim::protos::shim::shim::{CheckpointTaskRequest, PauseRequest, ResumeRequest, StatsRequest, StatsResponse};
use containerd_shim::protos::ttrpc;
use containerd_shim::protos::types::task::ProcessInfo;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{ExitSignal, TtrpcContext, TtrpcResult};
use log::{debug, warn};

use crate::error::{io, Error, Result};
use crate::io::{prepare, ProcessIo, StdioPaths};
use crate::runtime::Runtime;

/// Where a runtime binary is looked for, given its name.
pub fn resolve_binary(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from(name)
}

/// The runc.v1 Options containerd sends with Create, if any.
pub fn decode_options(any: Option<&Any>) -> Result<Options> {
    let Some(any) = any else { return Ok(Options::default()) };
    if any.type_url.ends_with("containerd.runc.v1.Options") {
        return Options::parse_from_bytes(&any.value).map_err(|source| Error::Protobuf { context: "decoding runc options".into(), source });
    }
    // CRI sends other option types (runtimeoptions.v1.Options) for
    // non-runc runtime types; they carry nothing this shim uses.
    debug!("ignoring runtime options of type {}", any.type_url);
    Ok(Options::default())
}

fn now() -> Timestamp {
    containerd_shim::util::timestamp().unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PState {
    Created,
    Running,
    Stopped,
}

#[derive(Default)]
struct ExitCell {
    exit: Mutex<Option<(u32, Timestamp)>>,
    cv: Condvar,
}

impl ExitCell {
    fn set(&self, code: u32, at: Timestamp) {
        if let Ok(mut g) = self.exit.lock() {
            *g = Some((code, at));
        }
        self.cv.notify_all();
    }
    fn get(&self) -> Option<(u32, Timestamp)> {
        self.exit.lock().ok().and_then(|g| g.clone())
    }
    fn wait(&self) -> Option<(u32, Timestamp)> {
        let mut g = self.exit.lock().ok()?;
        while g.is_none() {
            g = self.cv.wait(g).ok()?;
        }
        g.clone()
    }
    fn wait_timeout(&self, d: std::time::Duration) -> Option<(u32, Timestamp)> {
        let g = self.exit.lock().ok()?;
        let (g, _) = self.cv.wait_timeout_while(g, d, |e| e.is_none()).ok()?;
        g.clone()
    }
}

struct Process {
    exec_id: String,
    pid: i32,
    state: PState,
    stdio: StdioPaths,
    exit: Arc<ExitCell>,
    io: ProcessIo,
    /// `runtime start` is in flight: an exit is kept until it returns so
    /// TaskStart is published before TaskExit.
    starting: bool,
    pending_exit: Option<i32>,
    /// The exec's process JSON (for execs).
    spec: Vec<u8>,
}

impl Process {
    fn new(exec_id: &str, stdio: StdioPaths) -> Process {
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

struct Container {
    id: String,
    bundle: PathBuf,
    runtime: Runtime,
    rootfs_mounted: bool,
    init: Process,
    execs: HashMap<String, Process>,
    paused: bool,
    /// The `runtime events` stream child that reports OOM kills.
    events_pid: Option<i32>,
}

impl Container {
    fn process(&self, exec_id: &str) -> Result<&Process> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs.get(exec_id).ok_or_else(|| Error::NotFound(format!("exec {exec_id} not found in container {}", self.id)))
    }
    fn process_mut(&mut self, exec_id: &str) -> Result<&mut Process> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        let id = self.id.clone();
        self.execs.get_mut(exec_id).ok_or_else(|| Error::NotFound(format!("exec {exec_id} not found in container {id}")))
    }
}

#[derive(Default)]
struct Exits {
    /// create/start/exec calls in flight: exits of unknown pids are kept
    /// meanwhile, since a process can exit before its pid is known.
    in_flight: usize,
    unclaimed: HashMap<i32, i32>,
}

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

/// A Create in flight for one id (see `Inner::creating`); released when
/// dropped, which is a no-op once the container took its place.
struct Reservation<'a> {
    svc: &'a Service,
    id: String,
    /// Still ours to release (a later Create may hold the same id once
    /// the container took our place and was deleted again).
    held: bool,
}

impl Reservation<'_> {
    /// The container is in the map now: drop the reservation. Called
    /// with the `containers` lock held.
    fn fulfil(&mut self) {
        lock(&self.svc.inner.creating).remove(&self.id);
        self.held = false;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.held {
            let _containers = lock(&self.svc.inner.containers);
            lock(&self.svc.inner.creating).remove(&self.id);
        }
    }
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

    /// Routes the exits the reaper sees to the processes they belong to.
    fn start_reaper_listener(&self) {
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

    fn process_exited(&self, cid: &str, p: &mut Process, code: i32) {
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

    fn begin_flight(&self) {
        lock(&self.inner.exits).in_flight += 1;
    }

    /// Ends an in-flight call; returns the exit status if `pid` already
    /// exited. Called with the containers lock held.
    fn end_flight(&self, pid: Option<i32>) -> Option<i32> {
        let mut exits = lock(&self.inner.exits);
        let code = pid.and_then(|p| exits.unclaimed.remove(&p));
        exits.in_flight = exits.in_flight.saturating_sub(1);
        if exits.in_flight == 0 {
            exits.unclaimed.clear();
        }
        code
    }

    /// Reserves `id` for a Create: AlreadyExists if a container of that
    /// id exists or is being created.
    fn reserve(&self, id: &str) -> Result<Reservation<'_>> {
        let containers = lock(&self.inner.containers);
        let mut creating = lock(&self.inner.creating);
        if containers.contains_key(id) || creating.contains(id) {
            return Err(Error::AlreadyExists(format!("container {id} already exists")));
        }
        creating.insert(id.to_string());
        Ok(Reservation { svc: self, id: id.to_string(), held: true })
    }

    fn with_container<T>(&self, id: &str, f: impl FnOnce(&mut Container) -> Result<T>) -> Result<T> {
        let mut containers = lock(&self.inner.containers);
        let c = containers.get_mut(id).ok_or_else(|| Error::NotFound(format!("container {id} not found")))?;
        f(c)
    }

    fn runtime_of(&self, id: &str) -> Result<Runtime> {
        self.with_container(id, |c| Ok(c.runtime.clone()))
    }

    fn do_create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        if !req.checkpoint.is_empty() || !req.parent_checkpoint.is_empty() {
            return Err(Error::Unimplemented("restoring from a checkpoint is not supported by the rpc shim".into()));
        }
        // Reserve the id before anything touches the bundle or the
        // runtime: a concurrent Create of the same id fails here at once
        // instead of racing this one through `runtime create`. The
        // reservation is dropped on every early return; on success it is
        // swapped for the container under the same lock.
        let mut reservation = self.reserve(&req.id)?;
        let bundle = PathBuf::from(&req.bundle);
        let opts = decode_options(req.options.as_ref())?;
        let binary = if opts.binary_name.is_empty() { self.inner.default_binary.clone() } else { opts.binary_name.clone() };
        let binary = resolve_binary(&binary);
        let base_root = if opts.root.is_empty() {
            let name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "rpc-runc".into());
            PathBuf::from("/run/containerd").join(name)
        } else {
            PathBuf::from(&opts.root)
        };
        let runtime = Runtime {
            binary,
            root: base_root.join(&self.inner.namespace),
            systemd_cgroup: opts.systemd_cgroup,
            no_pivot_root: opts.no_pivot_root,
            no_new_keyring: opts.no_new_keyring,
            log: bundle.join("log.json"),
            io_owner: (opts.io_uid != 0 || opts.io_gid != 0).then_some((opts.io_uid, opts.io_gid)),
        };
        if !opts.shim_cgroup.is_empty() {
            if let Err(e) = containerd_shim::cgroup::add_task_to_cgroup(&opts.shim_cgroup, std::process::id()) {
                warn!("moving the shim to {}: {e}", opts.shim_cgroup);
            }
        }
        runtime.save(&bundle)?;

        // Mount the snapshot (overlay etc.) on bundle/rootfs.
        let rootfs = bundle.join("rootfs");
        let mut rootfs_mounted = false;
        if !req.rootfs.is_empty() {
            std::fs::create_dir_all(&rootfs).map_err(io(format!("creating {}", rootfs.display())))?;
            for m in &req.rootfs {
                let res = containerd_shim::mount::mount_rootfs(Some(&m.type_), Some(&m.source), &m.options, &rootfs);
                if let Err(e) = res {
                    unmount_rootfs(&bundle);
                    return Err(Error::Shim { context: format!("mounting {} rootfs {}", m.type_, m.source), source: e });
                }
            }
            rootfs_mounted = true;
        }

        let stdio = StdioPaths { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal };
        let result = self.create_init(&req.id, &bundle, &runtime, &stdio);
        let (pid, pio) = match result {
            Ok(v) => v,
            Err(e) => {
                if rootfs_mounted {
                    unmount_rootfs(&bundle);
                }
                return Err(e);
            }
        };
        let mut init = Process::new("", stdio.clone());
        init.pid = pid;
        init.io = pio;
        let early = {
            let mut containers = lock(&self.inner.containers);
            reservation.fulfil();
            containers.insert(
                req.id.clone(),
                Container {
                    id: req.id.clone(),
                    bundle: bundle.clone(),
                    runtime,
                    rootfs_mounted,
                    init,
                    execs: HashMap::new(),
                    paused: false,
                    events_pid: None,
                },
            );
            self.end_flight(Some(pid))
        };
        self.publish(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            }),
            checkpoint: String::new(),
            pid: pid as u32,
            ..Default::default()
        });
        if let Some(code) = early {
            // init died before create returned: its exit follows TaskCreate.
            if let Some(c) = lock(&self.inner.containers).get_mut(&req.id) {
                self.process_exited(&req.id, &mut c.init, code);
            }
        }
        Ok(CreateTaskResponse { pid: pid as u32, ..Default::default() })
    }

    /// `runtime create`; leaves one in-flight mark for the caller to end.
    fn create_init(&self, id: &str, bundle: &Path, runtime: &Runtime, stdio: &StdioPaths) -> Result<(i32, ProcessIo)> {
        let (rt, mut pio) = prepare(stdio, &self.inner.socket_dir, runtime.io_owner, (&self.inner.namespace, id))?;
        let pid_file = bundle.join("init.pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut args: Vec<std::ffi::OsString> =
            vec!["create".into(), "--bundle".into(), bundle.into(), "--pid-file".into(), pid_file.clone().into()];
        if let Some(s) = &rt.console_socket {
            args.push("--console-socket".into());
            args.push(s.path.clone().into());
        }
        if runtime.no_pivot_root {
            args.push("--no-pivot".into());
        }
        if runtime.no_new_keyring {
            args.push("--no-new-keyring".into());
        }
        args.push(id.into());
        self.begin_flight();
        if let Err(e) = runtime.run_with_stdio(&args, rt.stdin, rt.stdout, rt.stderr) {
            self.end_flight(None);
            return Err(e);
        }
        // The runtime created the container: from here on, a failure
        // deletes it (the id is reserved by this Create, so it is ours).
        let res = read_pid(&pid_file).and_then(|pid| match &rt.console_socket {
            Some(sock) => pio.attach_console(sock).map(|_| pid),
            None => Ok(pid),
        });
        match res {
            Ok(pid) => Ok((pid, pio)),
            Err(e) => {
                if let Err(de) = runtime.output(&["delete", "--force", id], None) {
                    warn!("deleting {id} after a failed create: {de}");
                }
                self.end_flight(None);
                Err(e)
            }
        }
    }

    fn do_start(&self, req: StartRequest) -> Result<StartResponse> {
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

    /// Runs `runtime events ID` and publishes TaskOOM for its oom lines.
    fn watch_oom(&self, id: &str, runtime: &Runtime) -> Option<i32> {
        let mut child = match runtime.spawn_stream(&["events", "--interval", "1h", id]) {
            Ok(c) => c,
            Err(e) => {
                warn!("no OOM events for {id}: {e}");
                return None;
            }
        };
        let out = child.stdout.take()?;
        let svc = self.clone();
        let cid = id.to_string();
        let _ = std::thread::Builder::new().name("oom".into()).stack_size(128 * 1024).spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v.get("type").and_then(|t| t.as_str()) == Some("oom") {
                    svc.publish(TaskOOM { container_id: cid.clone(), ..Default::default() });
                }
            }
        });
        Some(child.id() as i32)
    }

    fn start_exec(&self, id: &str, exec_id: &str) -> Result<StartResponse> {
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

    fn do_delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
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

    fn do_exec(&self, req: ExecProcessRequest) -> Result<()> {
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

    fn do_kill(&self, req: KillRequest) -> Result<()> {
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

    fn do_state(&self, req: StateRequest) -> Result<StateResponse> {
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

    fn do_pids(&self, req: PidsRequest) -> Result<PidsResponse> {
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

    fn do_pause(&self, id: &str, pause: bool) -> Result<()> {
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

    fn do_update(&self, req: UpdateTaskRequest) -> Result<()> {
        let runtime = self.runtime_of(&req.id)?;
        let res = req.resources.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        if res.is_empty() {
            return Err(Error::InvalidArgument("update without resources".into()));
        }
        runtime.output(&["update", "-r", "-", &req.id], Some(&res))?;
        Ok(())
    }

    fn do_stats(&self, req: StatsRequest) -> Result<StatsResponse> {
        let runtime = self.runtime_of(&req.id)?;
        let out = runtime.output(&["events", "--stats", &req.id], None)?;
        let stats = crate::metrics::first_stats(&out)?;
        let any = crate::metrics::for_containerd(&stats, crate::metrics::host_is_unified).into_any()?;
        Ok(StatsResponse { stats: MessageField::some(any), ..Default::default() })
    }
}

/// SIGKILLs a process of ours (an exec, reparented to this subreaper); the
/// reaper reports its exit.
fn kill_pid(pid: i32) {
    if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL) {
        warn!("killing pid {pid}: {e}");
    }
}

/// A pid file the runtime wrote. 0 and negative values are refused: kill()
/// would take them as "my process group" or "every process".
fn read_pid(path: &Path) -> Result<i32> {
    let s = std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
    match s.trim().parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Error::FailedPrecondition(format!("bad pid {s:?} in {}", path.display()))),
    }
}

pub fn unmount_rootfs(bundle: &Path) {
    let rootfs = bundle.join("rootfs");
    let Some(p) = rootfs.to_str() else { return };
    if let Err(e) = containerd_shim::mount::umount_recursive(Some(p), libc::MNT_DETACH) {
        warn!("unmounting {p}: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_options_decode() {
        let opts = Options {
            binary_name: "/opt/bin/rpc-runv".into(),
            root: "/run/x".into(),
            systemd_cgroup: true,
            no_pivot_root: true,
            io_uid: 1000,
            ..Default::default()
        };
        let any =
            Any { type_url: "containerd.runc.v1.Options".into(), value: opts.write_to_bytes().expect("encode"), ..Default::default() };
        let got = decode_options(Some(&any)).expect("decode");
        assert_eq!(got.binary_name, "/opt/bin/rpc-runv");
        assert_eq!(got.root, "/run/x");
        assert!(got.systemd_cgroup && got.no_pivot_root);
        assert_eq!(got.io_uid, 1000);
        // other option types (CRI's runtimeoptions) are ignored, garbage is an error
        let other = Any { type_url: "runtimeoptions.v1.Options".into(), value: vec![1, 2, 3], ..Default::default() };
        assert_eq!(decode_options(Some(&other)).expect("ignored").binary_name, "");
        let bad = Any { type_url: "containerd.runc.v1.Options".into(), value: vec![0xff, 0xff], ..Default::default() };
        assert!(decode_options(Some(&bad)).is_err());
        assert_eq!(decode_options(None).expect("none").root, "");
    }

    #[test]
    fn pid_files_with_zero_or_negative_pids_are_refused() {
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

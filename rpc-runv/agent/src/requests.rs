//! The control requests: each becomes a runtime call (or is answered at
//! once), and the call's exit completes it with a reply.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use rpc_proto::msg::{ErrorCode, Reply, Request, SandboxNs};
use serde_json::Value;

use crate::agent::{name, Agent, Slot, Source};
use crate::poller::{Token, Want};
use crate::procs::{Container, ExitStatus, Key, Proc};
use crate::relay::{Dir, Relay};
use crate::runtime::{log_errors, pipe, read_pid, CallStdio};

/// Runtime calls in flight at most (each is a process).
const MAX_CALLS: usize = 64;
/// What a call's stdout or stderr keeps.
const CALL_OUT_CAP: usize = 4 << 20;

pub(crate) enum Op {
    Create {
        id: String,
    },
    Exec {
        key: Key,
    },
    Start,
    Kill,
    Stats {
        id: String,
    },
    Update,
    Pause,
    Resume,
    Pids,
    Ps,
    Delete {
        id: String,
    },
    /// A cleanup nobody waits for (delete --force after a failed create).
    Cleanup,
}

pub(crate) struct Call {
    conn: Option<Token>,
    req: u32,
    verb: &'static str,
    op: Op,
    out: Vec<u8>,
    err: Vec<u8>,
    /// (token, fd, is stderr)
    pipes: Vec<(Token, OwnedFd, bool)>,
    log: PathBuf,
    /// Files of the call only (an exec's process.json, update's resources).
    scratch: Vec<PathBuf>,
    /// The console socket of a create or exec with a terminal.
    console: Option<UnixListener>,
    pid_file: Option<PathBuf>,
}

type Fail = (ErrorCode, String);

fn invalid(msg: impl Into<String>) -> Fail {
    (ErrorCode::Invalid, msg.into())
}

impl Agent {
    pub(crate) fn request(&mut self, token: Token, id: u32, req: Request) {
        if let Err((code, msg)) = self.try_request(token, id, req) {
            self.error(token, id, code, msg);
        }
    }

    fn try_request(&mut self, token: Token, id: u32, req: Request) -> Result<(), Fail> {
        let needs_call = !matches!(
            req,
            Request::Ping
                | Request::ConfigureNetwork { .. }
                | Request::Resize { .. }
                | Request::CloseStdin { .. }
                | Request::Shutdown { .. }
        );
        if needs_call && self.calls.len() >= MAX_CALLS {
            return Err((ErrorCode::Busy, format!("{MAX_CALLS} runtime calls in flight already")));
        }
        match req {
            Request::Hello { .. } => Err(invalid("hello again")),
            Request::Ping => {
                self.reply(token, id, &Reply::Pong);
                Ok(())
            }
            Request::ConfigureNetwork { .. } => {
                Err((ErrorCode::Unsupported, "configure_network is not implemented by this agent yet".into()))
            }
            Request::Create { id: cid, config, sandbox: _, ns_from_sandbox, sandbox_id, terminal } => {
                self.create(token, id, cid, config, &ns_from_sandbox, sandbox_id.as_deref(), terminal)
            }
            Request::Start { id: cid } => {
                self.known_running(&(cid.clone(), None), false)?;
                self.call(Some(token), id, "start", Op::Start, vec!["start".into(), cid.into()], CallStdio::Capture, Vec::new())
            }
            Request::Exec { id: cid, exec_id, process, terminal } => self.exec(token, id, cid, exec_id, process, terminal),
            Request::Signal { id: cid, exec_id, sig, all } => {
                if !(1..=64).contains(&sig) {
                    return Err(invalid(format!("signal {sig} out of range")));
                }
                match exec_id {
                    None => {
                        self.known(&cid)?;
                        let mut args: Vec<OsString> = vec!["kill".into()];
                        if all {
                            args.push("--all".into());
                        }
                        args.push(cid.into());
                        args.push(sig.to_string().into());
                        self.call(Some(token), id, "kill", Op::Kill, args, CallStdio::Capture, Vec::new())
                    }
                    Some(e) => {
                        let key = (cid, Some(e));
                        let pid = self.known_running(&key, true)?;
                        self.exec.kill(pid, sig).map_err(|err| (ErrorCode::Failed, format!("kill {pid} ({}): {err}", name(&key))))?;
                        self.reply(token, id, &Reply::Ok);
                        Ok(())
                    }
                }
            }
            Request::Resize { id: cid, exec_id, rows, cols } => {
                let key = (cid, exec_id);
                let p = self.procs.get(&key).ok_or_else(|| not_found(&key))?;
                let tty = p.tty.as_ref().ok_or_else(|| invalid(format!("{} has no terminal", name(&key))))?;
                resize(tty, rows, cols).map_err(|e| (ErrorCode::Failed, format!("resizing the terminal of {}: {e}", name(&key))))?;
                self.reply(token, id, &Reply::Ok);
                Ok(())
            }
            Request::CloseStdin { id: cid, exec_id } => {
                let key = (cid, exec_id);
                let p = self.procs.get_mut(&key).ok_or_else(|| not_found(&key))?;
                if p.terminal {
                    return Err(invalid(format!("{} has a terminal: its stdin is the terminal's", name(&key))));
                }
                p.stdin.close_when_empty = true;
                p.stdin.drain_to_pipe(&mut self.poller);
                self.refresh_key(&key);
                self.reply(token, id, &Reply::Ok);
                Ok(())
            }
            Request::Stats { id: cid } => {
                self.known(&cid)?;
                let args = vec!["events".into(), "--stats".into(), cid.clone().into()];
                self.call(Some(token), id, "events", Op::Stats { id: cid }, args, CallStdio::Capture, Vec::new())
            }
            Request::Update { id: cid, resources } => {
                self.known(&cid)?;
                let c = self.procs.containers.get(&cid).ok_or_else(|| not_found(&(cid.clone(), None)))?;
                self.serial += 1;
                let file = c.dir.join(format!("update-{}.json", self.serial));
                write_json(&file, &resources)?;
                let args = vec!["update".into(), "--resources".into(), file.clone().into(), cid.into()];
                self.call(Some(token), id, "update", Op::Update, args, CallStdio::Capture, vec![file])
            }
            Request::Pause { id: cid } => {
                self.known(&cid)?;
                self.call(Some(token), id, "pause", Op::Pause, vec!["pause".into(), cid.into()], CallStdio::Capture, Vec::new())
            }
            Request::Resume { id: cid } => {
                self.known(&cid)?;
                self.call(Some(token), id, "resume", Op::Resume, vec!["resume".into(), cid.into()], CallStdio::Capture, Vec::new())
            }
            Request::Pids { id: cid } => {
                self.known(&cid)?;
                let args = vec!["ps".into(), "--format".into(), "json".into(), cid.into()];
                self.call(Some(token), id, "ps", Op::Pids, args, CallStdio::Capture, Vec::new())
            }
            Request::Ps { id: cid, args: ps } => {
                self.known(&cid)?;
                let mut args: Vec<OsString> = vec!["ps".into(), cid.into()];
                if !ps.is_empty() {
                    args.push("--".into());
                    args.extend(ps.into_iter().map(OsString::from));
                }
                self.call(Some(token), id, "ps", Op::Ps, args, CallStdio::Capture, Vec::new())
            }
            Request::Delete { id: cid, force } => {
                self.known(&cid)?;
                let mut args: Vec<OsString> = vec!["delete".into()];
                if force {
                    args.push("--force".into());
                }
                args.push(cid.clone().into());
                self.call(Some(token), id, "delete", Op::Delete { id: cid }, args, CallStdio::Capture, Vec::new())
            }
            Request::Shutdown { status } => {
                self.reply(token, id, &Reply::Ok);
                self.request_shutdown(status);
                Ok(())
            }
        }
    }

    /// A container the agent created (and did not delete).
    fn known(&self, cid: &str) -> Result<(), Fail> {
        match self.procs.containers.get(cid) {
            Some(c) if !c.deleted => Ok(()),
            _ => Err(not_found(&(cid.to_string(), None))),
        }
    }

    /// The pid of a process whose create/exec completed (and, with
    /// `running`, that has not ended).
    fn known_running(&self, key: &Key, running: bool) -> Result<i32, Fail> {
        self.known(&key.0)?;
        let p = self.procs.get(key).ok_or_else(|| not_found(key))?;
        let pid = p.pid.ok_or_else(|| (ErrorCode::Busy, format!("{} is still being created", name(key))))?;
        if running && p.exit.is_some() {
            return Err((ErrorCode::NotFound, format!("{} has exited", name(key))));
        }
        Ok(pid)
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        token: Token,
        id: u32,
        cid: String,
        mut config: Value,
        ns: &[SandboxNs],
        sandbox_id: Option<&str>,
        terminal: bool,
    ) -> Result<(), Fail> {
        runtime_core::id::validate(&cid).map_err(|e| invalid(e.to_string()))?;
        if self.procs.containers.contains_key(&cid) {
            return Err((ErrorCode::Busy, format!("container {cid} exists")));
        }
        if !config.is_object() {
            return Err(invalid(format!("create {cid}: config is not a JSON object")));
        }
        if !ns.is_empty() {
            let sid = sandbox_id.ok_or_else(|| invalid(format!("create {cid}: ns_from_sandbox without sandbox_id")))?;
            let pid = self.known_running(&(sid.to_string(), None), true)?;
            join_sandbox(&mut config, ns, pid).map_err(|m| invalid(format!("create {cid}: {m}")))?;
        }
        let dir = self.cfg.bundles().join(&cid);
        // A leftover of an earlier container of this id (ours alone).
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
        let res = write_json(&dir.join("config.json"), &config).and_then(|()| {
            let key = (cid.clone(), None);
            let pid_file = dir.join("init.pid");
            let mut args: Vec<OsString> =
                vec!["create".into(), "--bundle".into(), dir.clone().into(), "--pid-file".into(), pid_file.clone().into()];
            self.start_process(token, id, &key, &dir, terminal, &mut args, pid_file, Vec::new(), Op::Create { id: cid.clone() })
        });
        if res.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        res
    }

    fn exec(&mut self, token: Token, id: u32, cid: String, exec_id: String, process: Value, terminal: bool) -> Result<(), Fail> {
        runtime_core::id::validate(&exec_id).map_err(|e| invalid(format!("exec id: {e}")))?;
        self.known_running(&(cid.clone(), None), true)?;
        let key = (cid.clone(), Some(exec_id.clone()));
        if self.procs.get(&key).is_some() {
            return Err((ErrorCode::Busy, format!("{} exists", name(&key))));
        }
        if !process.is_object() {
            return Err(invalid(format!("exec {exec_id}: process is not a JSON object")));
        }
        let dir = self.procs.containers.get(&cid).map(|c| c.dir.clone()).ok_or_else(|| not_found(&(cid.clone(), None)))?;
        let file = dir.join(format!("exec-{exec_id}.json"));
        write_json(&file, &process)?;
        let pid_file = dir.join(format!("exec-{exec_id}.pid"));
        let mut args: Vec<OsString> =
            vec!["exec".into(), "-d".into(), "--pid-file".into(), pid_file.clone().into(), "--process".into(), file.clone().into()];
        let res =
            self.start_process(token, id, &key, &dir, terminal, &mut args, pid_file, vec![file.clone()], Op::Exec { key: key.clone() });
        if res.is_err() {
            let _ = std::fs::remove_file(&file);
        }
        res
    }

    /// The runtime call that starts process `key` (create or exec), with
    /// stdio pipes the agent keeps (or a console socket), the process
    /// registered at once so that streams can attach.
    #[allow(clippy::too_many_arguments)]
    fn start_process(
        &mut self,
        token: Token,
        id: u32,
        key: &Key,
        dir: &Path,
        terminal: bool,
        args: &mut Vec<OsString>,
        pid_file: PathBuf,
        scratch: Vec<PathBuf>,
        op: Op,
    ) -> Result<(), Fail> {
        let _ = std::fs::remove_file(&pid_file);
        let (stdio, ours, console) = if terminal {
            self.serial += 1;
            let sock = dir.join(format!("console-{}.sock", self.serial));
            let l = UnixListener::bind(&sock).map_err(|e| failed(format!("console socket {}: {e}", sock.display())))?;
            l.set_nonblocking(true).map_err(|e| failed(format!("console socket: {e}")))?;
            args.push("--console-socket".into());
            args.push(sock.into());
            (CallStdio::Capture, None, Some(l))
        } else {
            let p = |what| move |e: std::io::Error| failed(format!("{what} pipe: {e}"));
            let (in_r, in_w) = pipe().map_err(p("stdin"))?;
            let (out_r, out_w) = pipe().map_err(p("stdout"))?;
            let (err_r, err_w) = pipe().map_err(p("stderr"))?;
            for fd in [&in_w, &out_r, &err_r] {
                crate::runtime::set_nonblocking(fd).map_err(p("stdio"))?;
            }
            (CallStdio::Process { stdin: in_r, stdout: out_w, stderr: err_w }, Some((in_w, out_r, err_r)), None)
        };
        args.push(key.0.clone().into());
        let (i, o, e) = match ours {
            Some((i, o, e)) => (Some(i), Some(o), Some(e)),
            None => (None, None, None),
        };
        let relays = [(Slot::Stdin, Dir::In, i), (Slot::Stdout, Dir::Out, o), (Slot::Stderr, Dir::Out, e)]
            .map(|(slot, dir, fd)| Relay::new(dir, self.pipe_token(key, slot), fd));
        let [stdin, stdout, stderr] = relays;
        let proc = Proc::new(terminal, stdin, stdout, stderr);
        match &key.1 {
            None => {
                self.procs
                    .containers
                    .insert(key.0.clone(), Container { init: proc, execs: Default::default(), deleted: false, dir: dir.to_path_buf() });
            }
            Some(e) => {
                if let Some(c) = self.procs.containers.get_mut(&key.0) {
                    c.execs.insert(e.clone(), proc);
                }
            }
        }
        let verb = if key.1.is_some() { "exec" } else { "create" };
        self.in_flight += 1;
        if let Err(f) = self.spawn_call(Some(token), id, verb, op, args.clone(), stdio, scratch, console, Some(pid_file)) {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.forget(key);
            return Err(f);
        }
        self.attach_parked(key);
        Ok(())
    }

    /// Removes a process whose create/exec failed, closing its streams.
    fn forget(&mut self, key: &Key) {
        let removed = match &key.1 {
            None => self.procs.containers.remove(&key.0).map(|c| c.init),
            Some(e) => self.procs.containers.get_mut(&key.0).and_then(|c| c.execs.remove(e)),
        };
        if let Some(mut p) = removed {
            let mut conns = p.waiters.clone();
            for r in p.relays_mut() {
                r.close(&mut self.poller);
                self.sources.remove(&r.token);
                conns.extend(r.conn);
            }
            conns.sort_unstable();
            conns.dedup();
            for t in conns {
                self.close_conn(t);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        conn: Option<Token>,
        id: u32,
        verb: &'static str,
        op: Op,
        args: Vec<OsString>,
        stdio: CallStdio,
        scratch: Vec<PathBuf>,
    ) -> Result<(), Fail> {
        self.spawn_call(conn, id, verb, op, args, stdio, scratch, None, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_call(
        &mut self,
        conn: Option<Token>,
        id: u32,
        verb: &'static str,
        op: Op,
        args: Vec<OsString>,
        stdio: CallStdio,
        scratch: Vec<PathBuf>,
        console: Option<UnixListener>,
        pid_file: Option<PathBuf>,
    ) -> Result<(), Fail> {
        self.serial += 1;
        let log = self.cfg.calls().join(format!("{}-{verb}.log", self.serial));
        let mut full: Vec<OsString> =
            vec!["--root".into(), self.cfg.root.clone().into(), "--log".into(), log.clone().into(), "--log-format".into(), "json".into()];
        full.extend(args);
        let spawned = match self.exec.spawn(&full, stdio) {
            Ok(s) => s,
            Err(e) => {
                for f in &scratch {
                    let _ = std::fs::remove_file(f);
                }
                return Err(failed(format!("running {} {verb}: {e}", self.cfg.runtime.display())));
            }
        };
        let mut pipes = Vec::new();
        for (fd, err) in [(spawned.stdout, false), (spawned.stderr, true)] {
            let Some(fd) = fd else { continue };
            let t = self.token();
            let _ = self.poller.set(t, fd.as_fd(), Want::READ);
            self.sources.insert(t, Source::CallPipe { pid: spawned.pid, err });
            pipes.push((t, fd, err));
        }
        if let Some(t) = conn {
            if let Some(c) = self.conns.get_mut(&t) {
                c.calls += 1;
            }
        }
        self.calls.insert(
            spawned.pid,
            Call { conn, req: id, verb, op, out: Vec::new(), err: Vec::new(), pipes, log, scratch, console, pid_file },
        );
        Ok(())
    }

    pub(crate) fn call_pipe_ready(&mut self, pid: i32, err: bool) {
        let Some(call) = self.calls.get_mut(&pid) else { return };
        drain_call_pipes(call, Some(err), &mut self.poller, &mut self.sources);
    }

    /// A runtime call ended: its request completes.
    pub(crate) fn complete(&mut self, pid: i32, status: ExitStatus) {
        let Some(mut call) = self.calls.remove(&pid) else { return };
        drain_call_pipes(&mut call, None, &mut self.poller, &mut self.sources);
        for (t, fd, _) in call.pipes.drain(..) {
            self.poller.remove(t, fd.as_fd());
            self.sources.remove(&t);
        }
        let log_text = read_capped(&call.log);
        let _ = std::fs::remove_file(&call.log);
        for f in &call.scratch {
            let _ = std::fs::remove_file(f);
        }
        if let Some(t) = call.conn {
            if let Some(c) = self.conns.get_mut(&t) {
                c.calls = c.calls.saturating_sub(1);
            }
        }
        let result = if status == (0, None) {
            self.succeeded(&mut call)
        } else {
            let mut msg = log_errors(&log_text);
            if msg.is_empty() {
                msg = String::from_utf8_lossy(&call.err).trim().to_string();
            }
            if msg.is_empty() {
                msg = format!("{} {} exited with status {}", self.cfg.runtime.display(), call.verb, status.0);
            }
            self.failed_call(&call);
            Err((ErrorCode::Failed, msg))
        };
        if let Some(t) = call.conn {
            match result {
                Ok(r) => self.reply(t, call.req, &r),
                Err((code, msg)) => self.error(t, call.req, code, msg),
            }
            self.flush_conn(t);
        }
    }

    fn end_flight(&mut self, pid: Option<i32>) -> Option<ExitStatus> {
        let st = pid.and_then(|p| self.unclaimed.remove(&p));
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.unclaimed.clear();
        }
        st
    }

    fn failed_call(&mut self, call: &Call) {
        if matches!(call.op, Op::Create { .. } | Op::Exec { .. }) {
            self.end_flight(None);
            self.drop_process(&call.op);
        }
    }

    /// Forgets the process a create/exec made (or failed to), its files
    /// with it.
    fn drop_process(&mut self, op: &Op) {
        match op {
            Op::Create { id } => {
                let dir = self.procs.containers.get(id).map(|c| c.dir.clone());
                self.forget(&(id.clone(), None));
                if let Some(d) = dir {
                    let _ = std::fs::remove_dir_all(d);
                }
            }
            Op::Exec { key } => {
                let key = key.clone();
                self.forget(&key);
            }
            _ => {}
        }
    }

    fn succeeded(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        match &call.op {
            Op::Create { .. } | Op::Exec { .. } => {
                let key = match &call.op {
                    Op::Create { id } => (id.clone(), None),
                    Op::Exec { key } => key.clone(),
                    _ => return Err(failed("unreachable")),
                };
                match self.process_started(call, &key) {
                    Ok(pid) => Ok(if key.1.is_some() { Reply::Execed { guest_pid: pid } } else { Reply::Created { guest_pid: pid } }),
                    Err(msg) => {
                        // The runtime made it: take it down again.
                        if let Some(pid) = self.procs.get(&key).and_then(|p| p.pid) {
                            let _ = self.exec.kill(pid, libc::SIGKILL);
                        }
                        self.drop_process(&call.op);
                        if key.1.is_none() {
                            let args: Vec<OsString> = vec!["delete".into(), "--force".into(), key.0.clone().into()];
                            let _ = self.call(None, 0, "delete", Op::Cleanup, args, CallStdio::Capture, Vec::new());
                        }
                        Err((ErrorCode::Failed, msg))
                    }
                }
            }
            Op::Start | Op::Kill | Op::Update | Op::Pause | Op::Resume | Op::Cleanup => Ok(Reply::Ok),
            Op::Stats { id } => {
                let stats = first_stats(&call.out).map_err(|m| failed(format!("events --stats {id}: {m}")))?;
                Ok(Reply::Stats { stats })
            }
            Op::Pids => {
                let pids: Vec<i32> = serde_json::from_slice(&call.out).map_err(|e| failed(format!("ps --format json: {e}")))?;
                Ok(Reply::Pids { pids })
            }
            Op::Ps => Ok(Reply::Ps { lines: String::from_utf8_lossy(&call.out).lines().map(str::to_string).collect() }),
            Op::Delete { id } => {
                let id = id.clone();
                self.deleted(&id);
                Ok(Reply::Ok)
            }
        }
    }

    /// After a successful create/exec: the pid (and the pty master).
    fn process_started(&mut self, call: &mut Call, key: &Key) -> Result<i32, String> {
        let pid_file = call.pid_file.clone().ok_or("no pid file")?;
        let pid = read_pid(&pid_file);
        let early = self.end_flight(pid.as_ref().ok().copied());
        let pid = pid?;
        let master = match call.console.take() {
            Some(l) => Some(receive_master(&l).map_err(|e| format!("the terminal of {}: {e}", name(key)))?),
            None => None,
        };
        let p = self.procs.get_mut(key).ok_or_else(|| format!("{} vanished", name(key)))?;
        p.pid = Some(pid);
        if let Some(m) = master {
            let dup = m.try_clone().map_err(|e| format!("dup of the pty master: {e}"))?;
            p.stdout.fd = Some(m.try_clone().map_err(|e| format!("dup of the pty master: {e}"))?);
            p.stdin.fd = Some(dup);
            p.tty = Some(m);
        }
        if let Some(st) = early {
            self.proc_exited(key, st);
        } else {
            self.refresh_key(key);
        }
        Ok(pid)
    }

    /// After `delete`: the container's files and streams go; it is
    /// forgotten once its processes are reaped and waited for.
    fn deleted(&mut self, id: &str) {
        let Some(c) = self.procs.containers.get_mut(id) else { return };
        c.deleted = true;
        let _ = std::fs::remove_dir_all(&c.dir);
        let mut conns = Vec::new();
        let procs = std::iter::once(&mut c.init).chain(c.execs.values_mut());
        for p in procs {
            for r in p.relays_mut() {
                r.close(&mut self.poller);
                conns.extend(r.conn.take());
            }
        }
        for t in conns {
            self.close_conn(t);
        }
        self.gc(id);
    }
}

fn not_found(key: &Key) -> Fail {
    (ErrorCode::NotFound, format!("{} not found", name(key)))
}

fn failed(msg: impl Into<String>) -> Fail {
    (ErrorCode::Failed, msg.into())
}

fn write_json(path: &Path, v: &Value) -> Result<(), Fail> {
    let bytes = serde_json::to_vec(v).map_err(|e| invalid(format!("encoding {}: {e}", path.display())))?;
    std::fs::write(path, bytes).map_err(|e| failed(format!("writing {}: {e}", path.display())))
}

/// Reads a call's pipes: one (`which`: false stdout, true stderr) or both.
fn drain_call_pipes(
    call: &mut Call,
    which: Option<bool>,
    poller: &mut crate::poller::Poller,
    sources: &mut std::collections::HashMap<Token, Source>,
) {
    let mut tmp = [0u8; 16 << 10];
    let mut done = Vec::new();
    for (i, (t, fd, err)) in call.pipes.iter().enumerate() {
        if which.is_some_and(|w| w != *err) {
            continue;
        }
        let buf = if *err { &mut call.err } else { &mut call.out };
        loop {
            match nix::unistd::read(fd, &mut tmp) {
                Ok(0) => {
                    done.push(i);
                    poller.remove(*t, fd.as_fd());
                    sources.remove(t);
                    break;
                }
                Ok(n) => {
                    let room = CALL_OUT_CAP.saturating_sub(buf.len());
                    buf.extend(tmp.iter().take(n.min(room)));
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(_) => {
                    done.push(i);
                    poller.remove(*t, fd.as_fd());
                    sources.remove(t);
                    break;
                }
            }
        }
    }
    for i in done.into_iter().rev() {
        if i < call.pipes.len() {
            call.pipes.remove(i);
        }
    }
}

fn read_capped(path: &Path) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(1 << 20).read_to_string(&mut s);
    }
    s
}

/// The first `{"type":"stats","data":...}` line of `events --stats`.
fn first_stats(out: &[u8]) -> Result<runtime_core::stats::Stats, String> {
    for line in String::from_utf8_lossy(out).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if v.get("type").and_then(Value::as_str) == Some("stats") {
            let data = v.get("data").cloned().unwrap_or(Value::Null);
            return serde_json::from_value(data).map_err(|e| format!("bad stats: {e}"));
        }
    }
    Err("no stats line in its output".into())
}

/// The pty master the runtime sent on the console socket (it has exited:
/// the message is there or never comes).
fn receive_master(l: &UnixListener) -> Result<OwnedFd, String> {
    let (s, _) = l.accept().map_err(|e| format!("nobody connected to the console socket: {e}"))?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let (_, fd) = runtime_core::linux::fdpass::recv_fd_msg(s.as_raw_fd()).map_err(|e| format!("receiving the pty master: {e}"))?;
    crate::runtime::set_nonblocking(&fd).map_err(|e| e.to_string())?;
    Ok(fd)
}

fn resize(tty: &OwnedFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which lives
    // across the call.
    let r = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Points the config's ipc/uts/pid namespaces named in `ns` at the
/// sandbox init's (guest pid `pid`).
fn join_sandbox(config: &mut Value, ns: &[SandboxNs], pid: i32) -> Result<(), String> {
    let linux = config
        .as_object_mut()
        .ok_or("config is not an object")?
        .entry("linux")
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
        .ok_or("linux is not an object")?;
    let list =
        linux.entry("namespaces").or_insert_with(|| Value::Array(Vec::new())).as_array_mut().ok_or("linux.namespaces is not an array")?;
    for n in ns {
        let ty = match n {
            SandboxNs::Ipc => "ipc",
            SandboxNs::Uts => "uts",
            SandboxNs::Pid => "pid",
        };
        let path = Value::String(format!("/proc/{pid}/ns/{ty}"));
        list.retain(|e| e.get("type").and_then(Value::as_str) != Some(ty));
        list.push(serde_json::json!({ "type": ty, "path": path }));
    }
    Ok(())
}

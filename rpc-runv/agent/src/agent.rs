//! The agent's state and its event loop: connections, the processes it
//! started, the runtime calls in flight, and the reaping of children.
//! Requests are in `requests.rs`.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use rpc_proto::error::Error as ProtoError;
use rpc_proto::frame::{encode, Frame};
use rpc_proto::msg::{ErrorBody, ErrorCode, Event, Kind, Reply, Request, Role as HelloRole, Which, PROTO};

use crate::conn::{Conn, Role, OUT_CAP};
use crate::poller::{Poller, Token, Want};
use crate::procs::{ExitStatus, Key, Procs};
use crate::relay::Dir;
use crate::requests::Call;
use crate::runtime::Executor;
use crate::Config;

/// At most this many connections; more are closed at once.
const MAX_CONNS: usize = 1024;
/// Streams and waits for processes not known yet.
const MAX_PARKED: usize = 64;

/// What a token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Listener,
    Signals,
    Conn,
    /// A process's stdio pipe.
    Pipe {
        key: Key,
        slot: Slot,
    },
    /// A runtime call's stdout (false) or stderr (true).
    CallPipe {
        pid: i32,
        err: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Stdin,
    Stdout,
    Stderr,
}

pub struct Agent {
    pub(crate) cfg: Config,
    pub(crate) exec: Box<dyn Executor>,
    pub(crate) poller: Poller,
    pub(crate) sources: HashMap<Token, Source>,
    next_token: Token,
    pub(crate) conns: HashMap<Token, Conn>,
    listener: Option<OwnedFd>,
    signals: Option<SignalFd>,
    pub(crate) procs: Procs,
    /// Runtime calls by the runtime's pid.
    pub(crate) calls: HashMap<i32, Call>,
    /// Creates and execs in flight: exits of pids not known yet are kept
    /// meanwhile (a process can end before its pid file is read).
    pub(crate) in_flight: usize,
    pub(crate) unclaimed: HashMap<i32, ExitStatus>,
    pub(crate) serial: u64,
    shutdown: Option<(i32, Instant)>,
}

fn token_of(next: &mut Token) -> Token {
    *next += 1;
    *next
}

impl Agent {
    pub fn new(cfg: Config, exec: Box<dyn Executor>) -> std::io::Result<Agent> {
        for d in [cfg.bundles(), cfg.calls()] {
            std::fs::create_dir_all(&d)?;
        }
        Ok(Agent {
            cfg,
            exec,
            poller: Poller::new()?,
            sources: HashMap::new(),
            next_token: 0,
            conns: HashMap::new(),
            listener: None,
            signals: None,
            procs: Procs::default(),
            calls: HashMap::new(),
            in_flight: 0,
            unclaimed: HashMap::new(),
            serial: 0,
            shutdown: None,
        })
    }

    pub(crate) fn token(&mut self) -> Token {
        token_of(&mut self.next_token)
    }

    /// Serves connections accepted on `fd` (a listening socket).
    pub fn listen(&mut self, fd: OwnedFd) -> std::io::Result<()> {
        crate::runtime::set_nonblocking(&fd)?;
        let t = self.token();
        self.poller.set(t, fd.as_fd(), Want::READ)?;
        self.sources.insert(t, Source::Listener);
        self.listener = Some(fd);
        Ok(())
    }

    /// Reaps children on SIGCHLD (blocked from here on): the agent is
    /// pid 1 or a child subreaper, every orphan of the guest is its child.
    pub fn reap_children(&mut self) -> std::io::Result<()> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()?;
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        let t = self.token();
        self.poller.set(t, sfd.as_fd(), Want::READ)?;
        self.sources.insert(t, Source::Signals);
        self.signals = Some(sfd);
        // Children that ended before the signalfd existed.
        self.reap();
        Ok(())
    }

    /// Serves a connected socket (the tests' and the fuzzer's way in).
    pub fn adopt(&mut self, fd: OwnedFd) -> std::io::Result<Token> {
        crate::runtime::set_nonblocking(&fd)?;
        let t = self.token();
        self.poller.set(t, fd.as_fd(), Want::READ)?;
        self.sources.insert(t, Source::Conn);
        self.conns.insert(t, Conn::new(fd));
        Ok(t)
    }

    /// The status of a Shutdown once its reply went out (or 2 s passed).
    pub fn shutdown_due(&self) -> Option<i32> {
        let (status, at) = self.shutdown?;
        let sent = self.conns.values().all(|c| c.out.is_empty());
        (sent || at.elapsed() >= crate::procs::DRAIN_GRACE).then_some(status)
    }

    pub(crate) fn request_shutdown(&mut self, status: i32) {
        self.shutdown.get_or_insert((status, Instant::now()));
    }

    /// One turn of the loop: waits up to `timeout_ms` (shorter while an
    /// Exit waits for output) and handles what is ready.
    pub fn turn(&mut self, timeout_ms: i32) -> std::io::Result<()> {
        let pending = self.procs.keys().iter().any(|k| self.procs.get(k).is_some_and(|p| p.exit.is_some() && !p.exit_sent));
        let timeout = if pending || self.shutdown.is_some() {
            if timeout_ms < 0 {
                100
            } else {
                timeout_ms.min(100)
            }
        } else {
            timeout_ms
        };
        for r in self.poller.wait(timeout)? {
            let Some(src) = self.sources.get(&r.token).cloned() else { continue };
            match src {
                Source::Listener => self.accept(),
                Source::Signals => {
                    if let Some(s) = &self.signals {
                        while let Ok(Some(_)) = s.read_signal() {}
                    }
                    self.reap();
                }
                Source::Conn => self.conn_ready(r.token, r.readable || r.hup, r.writable || r.hup),
                Source::Pipe { key, slot } => self.pipe_ready(&key, slot),
                Source::CallPipe { pid, err } => self.call_pipe_ready(pid, err),
            }
        }
        self.tick();
        Ok(())
    }

    fn accept(&mut self) {
        loop {
            let Some(l) = &self.listener else { return };
            let fd = match nix::sys::socket::accept4(
                std::os::fd::AsRawFd::as_raw_fd(l),
                nix::sys::socket::SockFlag::SOCK_NONBLOCK | nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            ) {
                Ok(fd) => fd,
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::ECONNABORTED) => continue,
                Err(_) => return,
            };
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            if self.conns.len() >= MAX_CONNS {
                continue;
            }
            let _ = self.adopt(fd);
        }
    }

    /// Reaps every child that ended.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.child_exited(pid.as_raw(), (code, None)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => self.child_exited(pid.as_raw(), (128 + sig as i32, Some(sig as i32))),
                Ok(WaitStatus::StillAlive) => return,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }

    /// A child of ours ended: a runtime call completes, a process's Exit
    /// goes out, or the exit is kept while a create/exec is in flight.
    pub fn child_exited(&mut self, pid: i32, status: ExitStatus) {
        if self.calls.contains_key(&pid) {
            self.complete(pid, status);
            return;
        }
        if let Some(key) = self.procs.find_pid(pid) {
            self.proc_exited(&key, status);
            return;
        }
        if self.in_flight > 0 {
            self.unclaimed.insert(pid, status);
        }
    }

    pub(crate) fn proc_exited(&mut self, key: &Key, status: ExitStatus) {
        if let Some(p) = self.procs.get_mut(key) {
            p.exit = Some(status);
            p.exited_at = Some(Instant::now());
        }
        // Read what the process left in its pipes for the streams attached.
        self.refresh_key(key);
        self.maybe_send_exit(key);
    }

    /// Timers: Exits waiting for output past the grace time.
    fn tick(&mut self) {
        for key in self.procs.keys() {
            if self.procs.get(&key).is_some_and(|p| p.exit.is_some() && !p.exit_sent) {
                self.maybe_send_exit(&key);
            }
        }
    }

    pub(crate) fn maybe_send_exit(&mut self, key: &Key) {
        let now = Instant::now();
        let Some(p) = self.procs.get_mut(key) else { return };
        if !p.exit_ready(now) {
            return;
        }
        let Some((status, signal)) = p.exit else { return };
        p.exit_sent = true;
        let waiters = std::mem::take(&mut p.waiters);
        for w in waiters {
            self.send_exit(w, status, signal);
        }
        self.gc(&key.0);
    }

    fn send_exit(&mut self, token: Token, status: i32, signal: Option<i32>) {
        let Ok(bytes) = encode(Kind::Event, 0, &Event::Exit { status, signal }) else { return };
        if let Some(c) = self.conns.get_mut(&token) {
            c.queue(&bytes);
            c.close_after_flush = true;
        }
        self.flush_conn(token);
    }

    /// Forgets a deleted container once its processes are all reaped.
    pub(crate) fn gc(&mut self, id: &str) {
        let Some(c) = self.procs.containers.get(id) else { return };
        let done = |p: &crate::procs::Proc| p.pid.is_none() || (p.exit.is_some() && p.waiters.is_empty());
        if c.deleted && done(&c.init) && c.execs.values().all(done) {
            if let Some(mut c) = self.procs.containers.remove(id) {
                let mut procs: Vec<_> = vec![c.init];
                procs.extend(std::mem::take(&mut c.execs).into_values());
                for mut p in procs {
                    for r in p.relays_mut() {
                        r.close(&mut self.poller);
                        self.sources.remove(&r.token);
                    }
                }
            }
        }
    }

    // ---- connections ----

    pub(crate) fn queue_frame(&mut self, token: Token, kind: Kind, id: u32, body: &impl serde::Serialize) {
        let Ok(bytes) = encode(kind, id, body) else { return };
        if let Some(c) = self.conns.get_mut(&token) {
            c.queue(&bytes);
        }
    }

    pub(crate) fn reply(&mut self, token: Token, id: u32, r: &Reply) {
        self.queue_frame(token, Kind::Reply, id, r);
        self.flush_conn(token);
    }

    pub(crate) fn error(&mut self, token: Token, id: u32, code: ErrorCode, msg: impl Into<String>) {
        self.queue_frame(token, Kind::Error, id, &ErrorBody { code, msg: msg.into() });
        self.flush_conn(token);
    }

    /// An error, then the connection closes.
    fn fatal(&mut self, token: Token, id: u32, code: ErrorCode, msg: impl Into<String>) {
        self.queue_frame(token, Kind::Error, id, &ErrorBody { code, msg: msg.into() });
        if let Some(c) = self.conns.get_mut(&token) {
            c.close_after_flush = true;
        }
        self.flush_conn(token);
    }

    pub(crate) fn close_conn(&mut self, token: Token) {
        let Some(c) = self.conns.remove(&token) else { return };
        self.poller.remove(token, c.fd.as_fd());
        self.sources.remove(&token);
        let key = match &c.role {
            Role::Stream { key, .. } | Role::Wait { key, .. } | Role::Events { key, .. } => Some(key.clone()),
            _ => None,
        };
        if let Some(key) = key {
            if let Some(p) = self.procs.get_mut(&key) {
                p.waiters.retain(|w| *w != token);
                for r in p.relays_mut() {
                    if r.conn == Some(token) {
                        r.conn = None;
                        // A stdin stream gone is stdin's end.
                        if r.dir == Dir::In {
                            r.eof = true;
                        }
                    }
                }
            }
            self.refresh_key(&key);
            self.gc(&key.0);
        }
    }

    /// Sends what is queued; closes a connection that broke or is done.
    pub(crate) fn flush_conn(&mut self, token: Token) {
        let Some(c) = self.conns.get_mut(&token) else { return };
        let broken = c.flush().is_err();
        let finished = match &c.role {
            Role::Control | Role::Hello => c.rd_closed && c.calls == 0,
            // Both directions over: the host's EOF came, and (for output)
            // all was sent and the write side shut.
            // An output stream closes once all is sent: its shutdown(WR)
            // alone is no EOF through vhost-device-vsock 0.3, which
            // forwards only a full close. A stdin stream, at the host's EOF.
            Role::Stream { key, which, parked: false } => match (which, self.procs.get(key)) {
                (Which::Stdin, _) => c.rd_closed,
                (Which::Stdout | Which::Tty, Some(p)) => p.stdout.shut,
                (Which::Stderr, Some(p)) => p.stderr.shut,
                (_, None) => true,
            },
            _ => false,
        };
        let done = c.out.is_empty() && (c.close_after_flush || finished);
        if broken || done {
            self.close_conn(token);
            return;
        }
        self.refresh_conn(token);
    }

    /// Sets what the loop wants from a connection.
    pub(crate) fn refresh_conn(&mut self, token: Token) {
        let Some(c) = self.conns.get(&token) else { return };
        let mut want = Want { read: !c.rd_closed && !c.close_after_flush, write: !c.out.is_empty() };
        match &c.role {
            Role::Hello | Role::Control => want.read &= c.out.len() < OUT_CAP,
            Role::Stream { key, which, parked: false } => {
                if let Some(p) = self.procs.get(key) {
                    if c.out.is_empty() {
                        let out = match which {
                            Which::Stdout | Which::Tty => Some(&p.stdout),
                            Which::Stderr => Some(&p.stderr),
                            Which::Stdin => None,
                        };
                        want.write |= out.is_some_and(|r| !r.buf.is_empty());
                    }
                    if matches!(which, Which::Stdin | Which::Tty) {
                        want.read &= p.stdin.room() > 0 && !p.stdin.eof;
                    }
                }
            }
            // Parked streams are not read: their bytes wait in the socket.
            Role::Stream { parked: true, .. } => want.read = false,
            Role::Wait { .. } | Role::Events { .. } => {}
        }
        let _ = self.poller.set(token, c.fd.as_fd(), want);
    }

    fn conn_ready(&mut self, token: Token, readable: bool, writable: bool) {
        if writable {
            self.flush_conn(token);
        }
        let Some(c) = self.conns.get(&token) else { return };
        let role = c.role.clone();
        match role {
            Role::Hello | Role::Control => {
                if readable {
                    self.read_frames(token);
                }
            }
            Role::Stream { key, which, parked } => {
                if !parked {
                    self.stream_ready(token, &key, which, readable);
                }
            }
            Role::Wait { .. } | Role::Events { .. } => {
                if readable {
                    self.discard_input(token);
                }
            }
        }
        self.flush_conn(token);
    }

    /// Input on a connection that should send none: dropped; its end
    /// noted.
    fn discard_input(&mut self, token: Token) {
        let Some(c) = self.conns.get_mut(&token) else { return };
        let mut tmp = [0u8; 4096];
        loop {
            match nix::unistd::read(&c.fd, &mut tmp) {
                Ok(0) => {
                    c.rd_closed = true;
                    break;
                }
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(_) => {
                    c.rd_closed = true;
                    break;
                }
            }
        }
        self.refresh_conn(token);
    }

    fn read_frames(&mut self, token: Token) {
        loop {
            let Some(c) = self.conns.get_mut(&token) else { return };
            if !matches!(c.role, Role::Hello | Role::Control) || c.out.len() >= OUT_CAP || c.close_after_flush || c.rd_closed {
                return;
            }
            let hello = c.role == Role::Hello;
            match c.reader.read_from(c.fd.as_fd()) {
                Ok(Some(f)) => {
                    if hello {
                        self.hello(token, f);
                    } else {
                        self.control_frame(token, f);
                    }
                }
                Ok(None) => return,
                Err(ProtoError::Closed) => {
                    c.rd_closed = true;
                    return;
                }
                Err(e) => {
                    // The stream is out of step: say why, then close.
                    self.fatal(token, 0, ErrorCode::Invalid, format!("bad frame: {e}"));
                    return;
                }
            }
        }
    }

    fn hello(&mut self, token: Token, f: Frame) {
        let req = match f.request() {
            Ok(r) => r,
            Err(e) => return self.fatal(token, f.id, ErrorCode::Invalid, format!("the first frame must be a hello: {e}")),
        };
        let Request::Hello { proto, role, client: _ } = req else {
            return self.fatal(token, f.id, ErrorCode::Invalid, "the first frame of a connection must be a hello");
        };
        let [min, max] = proto;
        if !(min <= PROTO && PROTO <= max) {
            return self.fatal(
                token,
                f.id,
                ErrorCode::Version,
                format!("agent {} speaks protocol {PROTO}, the client speaks {min} to {max}", crate::VERSION),
            );
        }
        let welcome = Reply::Welcome { proto: PROTO, agent: crate::VERSION.to_string(), features: Vec::new() };
        match role {
            HelloRole::Control => {
                self.set_role(token, Role::Control);
                self.reply(token, f.id, &welcome);
            }
            HelloRole::Stream { container, exec, which } => {
                let key = (container, exec);
                if let Err((code, msg)) = self.check_stream(&key, which) {
                    return self.fatal(token, f.id, code, msg);
                }
                self.queue_frame(token, Kind::Reply, f.id, &welcome);
                self.set_role(token, Role::Stream { key: key.clone(), which, parked: true });
                self.attach(token);
            }
            HelloRole::Wait { container, exec } => {
                let key = (container, exec);
                if let Err((code, msg)) = self.check_park(&key) {
                    return self.fatal(token, f.id, code, msg);
                }
                self.queue_frame(token, Kind::Reply, f.id, &welcome);
                self.set_role(token, Role::Wait { key, parked: true });
                self.attach(token);
            }
            HelloRole::Events { container } => {
                let key = (container, None);
                if let Err((code, msg)) = self.check_park(&key) {
                    return self.fatal(token, f.id, code, msg);
                }
                self.queue_frame(token, Kind::Reply, f.id, &welcome);
                self.set_role(token, Role::Events { key, parked: true });
                self.attach(token);
            }
        }
        self.flush_conn(token);
    }

    fn set_role(&mut self, token: Token, role: Role) {
        if let Some(c) = self.conns.get_mut(&token) {
            c.role = role;
        }
    }

    /// A wait or events connection may name a process not known yet, up to
    /// [`MAX_PARKED`] of them.
    fn check_park(&self, key: &Key) -> Result<(), (ErrorCode, String)> {
        if self.procs.get(key).is_some() {
            return Ok(());
        }
        if self.conns.values().filter(|c| c.parked()).count() >= MAX_PARKED {
            return Err((ErrorCode::NotFound, format!("{} not found (and {MAX_PARKED} connections wait already)", name(key))));
        }
        Ok(())
    }

    fn check_stream(&self, key: &Key, which: Which) -> Result<(), (ErrorCode, String)> {
        self.check_park(key)?;
        let Some(p) = self.procs.get(key) else { return Ok(()) };
        if p.terminal != (which == Which::Tty) {
            let has = if p.terminal { "a terminal" } else { "no terminal" };
            return Err((ErrorCode::Invalid, format!("{} has {has}: no {which:?} stream", name(key))));
        }
        Ok(())
    }

    /// Attaches a parked connection to its process, if known now.
    pub(crate) fn attach(&mut self, token: Token) {
        let Some(c) = self.conns.get(&token) else { return };
        let (key, which) = match &c.role {
            Role::Stream { key, which, parked: true } => (key.clone(), Some(*which)),
            Role::Wait { key, parked: true } | Role::Events { key, parked: true } => (key.clone(), None),
            _ => return,
        };
        if self.procs.get(&key).is_none() {
            self.refresh_conn(token);
            return;
        }
        if let Some(which) = which {
            if self.check_stream(&key, which).is_err() {
                // Something else took the stream meanwhile, or the process
                // is not what the stream said.
                self.close_conn(token);
                return;
            }
            // A newer stream of the same slot replaces the one there (a
            // host that reconnects; a client gone while its stream was
            // parked, which is not read so its close goes unseen).
            let mut replaced = Vec::new();
            if let Some(p) = self.procs.get_mut(&key) {
                let slots: &mut [&mut crate::relay::Relay] = match which {
                    Which::Stdin => &mut [&mut p.stdin],
                    Which::Stdout => &mut [&mut p.stdout],
                    Which::Stderr => &mut [&mut p.stderr],
                    Which::Tty => &mut [&mut p.stdin, &mut p.stdout],
                };
                for r in slots.iter_mut() {
                    replaced.extend(r.conn.replace(token).filter(|t| *t != token));
                    // A new output stream gets the end again.
                    r.shut = false;
                }
            }
            self.set_role(token, Role::Stream { key: key.clone(), which, parked: false });
            for t in replaced {
                self.close_conn(t);
            }
        } else {
            if let Some(c) = self.conns.get_mut(&token) {
                match &mut c.role {
                    Role::Wait { parked, .. } | Role::Events { parked, .. } => *parked = false,
                    _ => {}
                }
            }
            if let Some(p) = self.procs.get_mut(&key) {
                p.waiters.push(token);
                // It ended and its Exit went out: this one gets it too.
                if p.exit_sent {
                    p.exit_sent = false;
                }
            }
            self.maybe_send_exit(&key);
        }
        self.refresh_key(&key);
        self.refresh_conn(token);
    }

    /// Attaches every parked connection that names `key`.
    pub(crate) fn attach_parked(&mut self, key: &Key) {
        let parked: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| match &c.role {
                Role::Stream { key: k, parked: true, .. } | Role::Wait { key: k, parked: true } | Role::Events { key: k, parked: true } => {
                    k == key
                }
                _ => false,
            })
            .map(|(t, _)| *t)
            .collect();
        // Oldest first: of two streams for one slot, the newer stays.
        let mut parked = parked;
        parked.sort_unstable();
        for t in parked {
            self.attach(t);
        }
    }

    fn control_frame(&mut self, token: Token, f: Frame) {
        if f.kind != Kind::Request {
            return self.error(
                token,
                f.id,
                ErrorCode::Invalid,
                format!("expected a request, got a {} frame", rpc_proto::frame::kind_name(f.kind)),
            );
        }
        match f.request() {
            Ok(Request::Hello { .. }) => self.error(token, f.id, ErrorCode::Invalid, "hello again on a control connection"),
            Ok(req) => self.request(token, f.id, req),
            Err(e) => {
                let msg = e.to_string();
                let code = if msg.contains("unknown variant") { ErrorCode::Unsupported } else { ErrorCode::Invalid };
                self.error(token, f.id, code, msg)
            }
        }
    }

    // ---- streams ----

    fn stream_ready(&mut self, token: Token, key: &Key, which: Which, readable: bool) {
        if readable {
            let Some(c) = self.conns.get_mut(&token) else { return };
            let mut gone = false;
            if matches!(which, Which::Stdin | Which::Tty) {
                if let Some(p) = self.procs.get_mut(key) {
                    match p.stdin.fill_from_conn(c.fd.as_fd()) {
                        Ok(true) => {}
                        Ok(false) => c.rd_closed = true,
                        Err(_) => gone = true,
                    }
                    p.stdin.drain_to_pipe(&mut self.poller);
                }
            } else {
                self.discard_input(token);
            }
            if gone {
                self.close_conn(token);
                return;
            }
        }
        self.pump_out(key);
        self.refresh_key(key);
    }

    fn pipe_ready(&mut self, key: &Key, slot: Slot) {
        if let Some(p) = self.procs.get_mut(key) {
            match slot {
                Slot::Stdin => p.stdin.drain_to_pipe(&mut self.poller),
                Slot::Stdout => p.stdout.fill_from_pipe(&mut self.poller),
                Slot::Stderr => p.stderr.fill_from_pipe(&mut self.poller),
            }
        }
        self.pump_out(key);
        self.refresh_key(key);
        self.maybe_send_exit(key);
    }

    /// Sends a process's buffered output to its streams.
    fn pump_out(&mut self, key: &Key) {
        let mut broken = Vec::new();
        let mut ended = Vec::new();
        if let Some(p) = self.procs.get_mut(key) {
            for r in [&mut p.stdout, &mut p.stderr] {
                let Some(t) = r.conn else { continue };
                let Some(c) = self.conns.get(&t) else { continue };
                // Frames first (the Welcome).
                if !c.out.is_empty() {
                    continue;
                }
                if r.drain_to_conn(c.fd.as_fd()).is_err() {
                    broken.push(t);
                } else if r.shut {
                    ended.push(t);
                }
            }
        }
        for t in broken {
            self.close_conn(t);
        }
        // All sent: the stream closes (flush_conn knows when).
        for t in ended {
            self.flush_conn(t);
        }
    }

    /// Sets what the loop wants from a process's pipes and streams.
    pub(crate) fn refresh_key(&mut self, key: &Key) {
        let Some(p) = self.procs.get_mut(key) else { return };
        // Read what can be read now, so that a process that ended gives
        // its last output even if the loop reported nothing.
        for r in [&mut p.stdout, &mut p.stderr] {
            if r.conn.is_some() && r.fd.is_some() {
                r.fill_from_pipe(&mut self.poller);
            }
        }
        let mut conns = Vec::new();
        for r in p.relays() {
            if let Some(fd) = &r.fd {
                let _ = self.poller.set(r.token, fd.as_fd(), r.want());
            }
            conns.extend(r.conn);
        }
        self.pump_out(key);
        conns.sort_unstable();
        conns.dedup();
        for t in conns {
            self.refresh_conn(t);
        }
    }

    /// Registers a relay's pipe under a new token.
    pub(crate) fn pipe_token(&mut self, key: &Key, slot: Slot) -> Token {
        let t = self.token();
        self.sources.insert(t, Source::Pipe { key: key.clone(), slot });
        t
    }
}

/// How messages name a process.
pub(crate) fn name(key: &Key) -> String {
    match &key.1 {
        None => format!("container {}", key.0),
        Some(e) => format!("exec {e} of container {}", key.0),
    }
}

//! The host side of virtio-vsock: the unix sockets (the listener for
//! host-initiated connections, one socket per connection), their buffers
//! and credit, and the packets queued for the guest.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;

use super::{
    Header, BUF_ALLOC, CONNECT_LINE_MAX, CONN_TOKEN, HOST_CID, LISTEN_TOKEN, MAX_CONNS, MAX_PKT, OP_CREDIT_REQUEST, OP_CREDIT_UPDATE,
    OP_REQUEST, OP_RESPONSE, OP_RST, OP_RW, OP_SHUTDOWN, RX_QUEUE_MAX, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM,
};
use crate::devices::virtio::watch::{self, Watch};
use crate::guest_fault;
use crate::report::Reporter;

#[derive(PartialEq)]
enum State {
    /// Host-initiated, REQUEST sent, waiting for the guest's RESPONSE.
    Connecting,
    Established,
}

/// (guest port, host port).
type Key = (u32, u32);

struct Conn {
    // Out of the epoll set before the fd closes (fields drop in order).
    watch: Watch,
    stream: UnixStream,
    state: State,
    /// The guest's receive buffer and what it consumed of our data.
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// Bytes we sent to the guest.
    tx_cnt: u32,
    /// Bytes of the guest's the host socket took.
    fwd_cnt: u32,
    last_fwd_cnt_sent: u32,
    /// Guest data the host socket has not taken yet.
    out: VecDeque<u8>,
    /// Bytes at the front of `out` that are ours (`OK <port>\n`), not
    /// the guest's: not forwarded guest data.
    out_ours: usize,
    /// The guest said SHUTDOWN with SEND / with RCV.
    guest_sends_no_more: bool,
    guest_receives_no_more: bool,
    /// The host socket reached end of file (the guest was told).
    host_sends_no_more: bool,
    /// The socket's write side is shut down.
    write_shut: bool,
}

impl Conn {
    fn peer_credit(&self) -> u32 {
        self.peer_buf_alloc.saturating_sub(self.tx_cnt.wrapping_sub(self.peer_fwd_cnt))
    }

    fn update_watch(&mut self) {
        let mut events = 0;
        if self.state == State::Established && !self.host_sends_no_more && !self.guest_receives_no_more && self.peer_credit() > 0 {
            events |= watch::IN;
        }
        if !self.out.is_empty() {
            events |= watch::OUT;
        }
        self.watch.set(events);
    }

    /// Neither side sends any more and the guest's data is delivered.
    fn finished(&self) -> bool {
        self.out.is_empty() && self.guest_sends_no_more && (self.host_sends_no_more || self.guest_receives_no_more)
    }
}

/// A host client that has not said `CONNECT P` yet.
struct PendingClient {
    _watch: Watch,
    stream: UnixStream,
    line: Vec<u8>,
}

/// Appends `len` bytes of `src` to `out` (read straight into it); on an
/// error `out` is left as it was.
fn read_tail(out: &mut VecDeque<u8>, src: &mut impl Read, len: usize) -> std::io::Result<()> {
    let old = out.len();
    out.resize(old + len, 0);
    let (front, back) = out.as_mut_slices();
    let result = match front.len().checked_sub(old) {
        // The new bytes are the end of `front` and all of `back`.
        Some(_) => src.read_exact(&mut front[old..]).and_then(|()| src.read_exact(back)),
        None => src.read_exact(&mut back[old - front.len()..]),
    };
    if result.is_err() {
        out.truncate(old);
    }
    result
}

/// Connects to the unix socket at `path` without blocking (a listener
/// with a full backlog is EAGAIN, not a wait).
fn connect_nonblocking(path: &str) -> std::io::Result<UnixStream> {
    let bytes = path.as_bytes();
    // SAFETY: sockaddr_un is plain data, filled within its bounds; the fd
    // returned by socket() is owned by the UnixStream from then on.
    unsafe {
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        if bytes.len() >= addr.sun_path.len() {
            return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = UnixStream::from_raw_fd(fd);
        let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
        if libc::connect(fd, &addr as *const libc::sockaddr_un as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Connections and packets for the guest, shared with the event loop.
pub struct VsockHost {
    uds: PathBuf,
    guest_cid: u64,
    epoll_fd: RawFd,
    report: Arc<Reporter>,
    // Out of the epoll set before the listener closes.
    listen_watch: Watch,
    listener: UnixListener,
    conns: HashMap<Key, Conn>,
    by_fd: HashMap<RawFd, Key>,
    pending_clients: HashMap<RawFd, PendingClient>,
    /// Packets for the guest: header and payload.
    pub(super) rx: VecDeque<(Header, Vec<u8>)>,
    next_host_port: u32,
}

impl VsockHost {
    /// Listens on `uds` (watched in the epoll set `epoll_fd` with
    /// [`LISTEN_TOKEN`]) for the guest `guest_cid`.
    pub fn new(uds: PathBuf, guest_cid: u64, epoll_fd: RawFd, report: Arc<Reporter>) -> crate::Result<Self> {
        let _ = std::fs::remove_file(&uds);
        let listener = UnixListener::bind(&uds).map_err(|source| crate::Error::File { path: uds.clone(), source })?;
        listener.set_nonblocking(true).map_err(crate::Error::io("vsock socket"))?;
        let mut listen_watch = Watch::new(epoll_fd, listener.as_raw_fd(), LISTEN_TOKEN);
        listen_watch.set(watch::IN);
        Ok(VsockHost {
            uds,
            guest_cid,
            epoll_fd,
            report,
            listen_watch,
            listener,
            conns: HashMap::new(),
            by_fd: HashMap::new(),
            pending_clients: HashMap::new(),
            rx: VecDeque::new(),
            next_host_port: 1 << 30,
        })
    }

    fn header(&self, key: Key, op: u16, len: u32, fwd_cnt: u32) -> Header {
        Header {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: key.1,
            dst_port: key.0,
            len,
            type_: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc: BUF_ALLOC,
            fwd_cnt,
        }
    }

    fn send_flags(&mut self, key: Key, op: u16, flags: u32) {
        let fwd = self.conns.get(&key).map(|c| c.fwd_cnt).unwrap_or(0);
        let h = Header { flags, ..self.header(key, op, 0, fwd) };
        self.rx.push_back((h, Vec::new()));
    }

    fn send(&mut self, key: Key, op: u16) {
        self.send_flags(key, op, 0);
    }

    /// Drops a connection (closing its socket) and tells the guest (RST).
    fn reset_conn(&mut self, key: Key) {
        if let Some(c) = self.conns.remove(&key) {
            self.by_fd.remove(&c.stream.as_raw_fd());
        }
        self.send(key, OP_RST);
    }

    /// The guest's transmit queue has to wait: too many replies queued
    /// (a connection's full buffer never stops it: see
    /// [`VsockHost::guest_packet`]).
    pub(super) fn tx_blocked(&self) -> bool {
        self.rx.len() >= RX_QUEUE_MAX
    }

    fn add_conn(&mut self, key: Key, stream: UnixStream, state: State, hdr: Option<&Header>) {
        let fd = stream.as_raw_fd();
        let mut c = Conn {
            watch: Watch::new(self.epoll_fd, fd, CONN_TOKEN | fd as u64),
            stream,
            state,
            peer_buf_alloc: hdr.map(|h| h.buf_alloc.min(BUF_ALLOC)).unwrap_or(0),
            peer_fwd_cnt: hdr.map(|h| h.fwd_cnt).unwrap_or(0),
            tx_cnt: 0,
            fwd_cnt: 0,
            last_fwd_cnt_sent: 0,
            out: VecDeque::new(),
            out_ours: 0,
            guest_sends_no_more: false,
            guest_receives_no_more: false,
            host_sends_no_more: false,
            write_shut: false,
        };
        c.update_watch();
        self.conns.insert(key, c);
        self.by_fd.insert(fd, key);
    }

    /// Writes connection `key`'s buffer to its socket as far as it takes
    /// it, gives the guest credit for that, shuts the socket's write side
    /// when the guest is done, and closes the connection when both are.
    fn flush(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(&key) else { return };
        let mut failed = false;
        while !c.out.is_empty() {
            let (front, _) = c.out.as_slices();
            match c.stream.write(front) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => {
                    c.out.drain(..n);
                    let ours = c.out_ours.min(n);
                    c.out_ours -= ours;
                    c.fwd_cnt = c.fwd_cnt.wrapping_add((n - ours) as u32);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            self.reset_conn(key);
            return;
        }
        if c.out.is_empty() && c.guest_sends_no_more && !c.write_shut {
            c.write_shut = true;
            let _ = c.stream.shutdown(Shutdown::Write);
        }
        if c.finished() {
            self.reset_conn(key);
            return;
        }
        let update = c.state == State::Established && c.fwd_cnt.wrapping_sub(c.last_fwd_cnt_sent) >= BUF_ALLOC / 2;
        if update {
            c.last_fwd_cnt_sent = c.fwd_cnt;
        }
        c.update_watch();
        if update {
            self.send(key, OP_CREDIT_UPDATE);
        }
    }

    /// A packet from the guest; `payload` holds its `h.len` bytes of data
    /// (checked against the chain), read only for data the connection
    /// takes.
    pub(super) fn guest_packet(&mut self, h: Header, payload: &mut impl Read) {
        let report = self.report.clone();
        let key = (h.src_port, h.dst_port);
        let (dst_cid, src_cid, type_, op, flags, len) = (h.dst_cid, h.src_cid, h.type_, h.op, h.flags, h.len as usize);
        if dst_cid != HOST_CID || src_cid != self.guest_cid || type_ != TYPE_STREAM {
            guest_fault!(report, "vsock bad packet", "cid {src_cid}->{dst_cid} type {type_} op {op}");
            if op != OP_RST {
                let h = self.header(key, OP_RST, 0, 0);
                self.rx.push_back((h, Vec::new()));
            }
            return;
        }
        if op == OP_REQUEST {
            if self.conns.contains_key(&key) {
                self.send(key, OP_RST);
                return;
            }
            if self.conns.len() >= MAX_CONNS {
                guest_fault!(report, "vsock connection limit", "connect from port {} to {}: {MAX_CONNS} open", key.0, key.1);
                self.send(key, OP_RST);
                return;
            }
            let path = format!("{}_{}", self.uds.display(), key.1);
            match connect_nonblocking(&path) {
                Ok(s) => {
                    self.add_conn(key, s, State::Established, Some(&h));
                    self.send(key, OP_RESPONSE);
                }
                Err(e) => {
                    // (Nobody listening, or a full backlog, is the host
                    // peer's answer; this is ours.)
                    if watch::out_of_fds(&e) {
                        report.host_error("vsock connect failed (out of file descriptors)", format_args!("port {}: {e}", key.1));
                    }
                    self.send(key, OP_RST);
                }
            }
            return;
        }
        let Some(c) = self.conns.get_mut(&key) else {
            // Nothing to answer for an RST; anything else gets one.
            if op != OP_RST {
                self.send(key, OP_RST);
            }
            return;
        };
        // Never queue more for a connection than we would take.
        c.peer_buf_alloc = h.buf_alloc.min(BUF_ALLOC);
        c.peer_fwd_cnt = h.fwd_cnt;
        match op {
            OP_RESPONSE if c.state == State::Connecting => {
                c.state = State::Established;
                let ok = format!("OK {}\n", key.1);
                c.out_ours = ok.len();
                c.out.extend(ok.as_bytes());
                self.flush(key);
            }
            OP_RW if c.state == State::Established && !c.write_shut => {
                // Our own `OK <port>` line is not the guest's data.
                let buffered = c.out.len().saturating_sub(c.out_ours);
                if buffered + len > BUF_ALLOC as usize {
                    guest_fault!(
                        report,
                        "vsock credit exceeded",
                        "port {}: {len} bytes with {buffered} of {BUF_ALLOC} buffered; connection reset",
                        key.0
                    );
                    self.reset_conn(key);
                    return;
                }
                if let Err(e) = read_tail(&mut c.out, payload, len) {
                    guest_fault!(report, "vsock bad descriptor chain", "port {}: payload: {e}", key.0);
                }
                self.flush(key);
            }
            OP_RW if c.state == State::Established => {
                guest_fault!(report, "vsock bad packet", "data after SHUTDOWN (port {})", key.0);
            }
            OP_CREDIT_UPDATE => c.update_watch(),
            OP_CREDIT_REQUEST => {
                c.last_fwd_cnt_sent = c.fwd_cnt;
                c.update_watch();
                self.send(key, OP_CREDIT_UPDATE);
            }
            OP_SHUTDOWN => {
                if flags & SHUTDOWN_RCV != 0 && !c.guest_receives_no_more {
                    c.guest_receives_no_more = true;
                    let _ = c.stream.shutdown(Shutdown::Read);
                }
                if flags & SHUTDOWN_SEND != 0 {
                    c.guest_sends_no_more = true;
                }
                self.flush(key);
            }
            OP_RST => {
                if let Some(c) = self.conns.remove(&key) {
                    self.by_fd.remove(&c.stream.as_raw_fd());
                }
            }
            _ => {
                guest_fault!(report, "vsock bad packet", "op {op}");
                self.reset_conn(key);
            }
        }
    }

    /// A host client's `CONNECT P` line, read a byte at a time so that
    /// nothing after it is taken.
    fn pending_readable(&mut self, fd: RawFd) {
        let Some(p) = self.pending_clients.get_mut(&fd) else { return };
        let mut byte = [0u8; 1];
        let done = loop {
            match p.stream.read(&mut byte) {
                Ok(1) if byte[0] == b'\n' => break true,
                Ok(1) if p.line.len() < CONNECT_LINE_MAX => p.line.push(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                _ => break false,
            }
        };
        let Some(p) = self.pending_clients.remove(&fd) else { return };
        let port = std::str::from_utf8(&p.line).ok().and_then(|l| l.trim().strip_prefix("CONNECT ")).and_then(|p| p.parse::<u32>().ok());
        if let (true, Some(port)) = (done, port) {
            if self.conns.len() >= MAX_CONNS {
                // Closed unanswered, as when the guest refuses.
                self.report.host_error("vsock connection limit", format_args!("CONNECT {port} from the host refused: {MAX_CONNS} open"));
                return;
            }
            let key = (port, self.next_host_port);
            self.next_host_port = self.next_host_port.wrapping_add(1).max(1 << 30);
            // The pending client's watch goes with it; the connection
            // gets its own.
            let PendingClient { _watch, stream, .. } = p;
            drop(_watch);
            self.add_conn(key, stream, State::Connecting, None);
            self.send(key, OP_REQUEST);
        }
    }

    /// The event loop saw `fd` ready: a host client's line, room in a
    /// socket for the guest's data, or data for the guest.
    pub fn host_event(&mut self, fd: RawFd) {
        if self.pending_clients.contains_key(&fd) {
            self.pending_readable(fd);
            return;
        }
        let Some(&key) = self.by_fd.get(&fd) else { return };
        self.flush(key);
        let Some(c) = self.conns.get_mut(&key) else { return };
        if c.watch.events() & watch::IN == 0 {
            return;
        }
        let room = (c.peer_credit() as usize).min(MAX_PKT);
        let mut buf = vec![0u8; room];
        match c.stream.read(&mut buf) {
            Ok(0) => {
                c.host_sends_no_more = true;
                c.update_watch();
                let finished = c.finished();
                self.send_flags(key, OP_SHUTDOWN, SHUTDOWN_SEND);
                if finished {
                    self.reset_conn(key);
                }
            }
            Ok(n) => {
                buf.truncate(n);
                c.tx_cnt = c.tx_cnt.wrapping_add(n as u32);
                c.last_fwd_cnt_sent = c.fwd_cnt;
                let fwd = c.fwd_cnt;
                c.update_watch();
                let h = Header { len: n as u32, ..self.header(key, OP_RW, 0, fwd) };
                self.rx.push_back((h, buf));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => self.reset_conn(key),
        }
    }

    /// Host clients connected to the listener. Out of file descriptors,
    /// the listener leaves the epoll set (it would be ready again at once)
    /// and the error is returned: see [`VsockHost::resume_listening`].
    pub fn accept(&mut self) -> Option<std::io::Error> {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if watch::out_of_fds(&e) => {
                    self.listen_watch.set(0);
                    return Some(e);
                }
                Err(e) if watch::retry_accept(&e) => continue,
                Err(_) => return None,
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let fd = stream.as_raw_fd();
            let mut w = Watch::new(self.epoll_fd, fd, CONN_TOKEN | fd as u64);
            w.set(watch::IN);
            self.pending_clients.insert(fd, PendingClient { stream, _watch: w, line: Vec::new() });
        }
    }

    /// Watches the listener again (after [`VsockHost::accept`] ran out of
    /// file descriptors).
    pub fn resume_listening(&mut self) {
        self.listen_watch.set(watch::IN);
    }

    /// The driver reset the device: every connection is closed and no
    /// queued packet survives (host clients still saying `CONNECT` stay).
    pub(super) fn reset(&mut self) {
        self.conns.clear();
        self.by_fd.clear();
        self.rx.clear();
    }
}

//! virtio-vsock in userspace, Firecracker-style (this host has no
//! /dev/vhost-vsock): stream sockets between the guest and host unix
//! sockets.
//!
//! - Guest to host: a guest connect to CID 2 port P connects rpc-vmm to
//!   the unix socket `<uds>_P`.
//! - Host to guest: a client of the unix socket `<uds>` writes
//!   `CONNECT P\n`; rpc-vmm connects to guest port P and answers
//!   `OK <host port>\n` (or closes the socket if the guest refuses).
//!
//! Credit is honoured both ways; bad packets are reported and answered
//! with RST.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use virtio_queue::{Queue, QueueT};
use vm_memory::ByteValued;

use super::{read_config_bytes, VirtioDevice};
use crate::guest_fault;
use crate::memory::GuestMemoryMmap;
use crate::report::Reporter;

pub const TYPE_VSOCK: u32 = 19;
const QUEUE_SIZE: u16 = 256;
const RX: usize = 0;
const TX: usize = 1;
const HOST_CID: u64 = 2;
const TYPE_STREAM: u16 = 1;
const OP_REQUEST: u16 = 1;
const OP_RESPONSE: u16 = 2;
const OP_RST: u16 = 3;
const OP_SHUTDOWN: u16 = 4;
const OP_RW: u16 = 5;
const OP_CREDIT_UPDATE: u16 = 6;
const OP_CREDIT_REQUEST: u16 = 7;
/// Our receive buffer per connection, as advertised to the guest.
const BUF_ALLOC: u32 = 256 * 1024;
/// Packets queued for the guest above which we stop taking its transmit
/// queue (every guest packet may queue a reply): the guest has to give
/// receive buffers first, as in Firecracker.
pub const RX_QUEUE_MAX: usize = 1024;
/// Largest payload of one packet we send.
const MAX_PKT: usize = 4096;
/// epoll tokens of connection sockets: this bit plus the fd.
pub const CONN_TOKEN: u64 = 1 << 40;
/// epoll token of the host listener.
pub const LISTEN_TOKEN: u64 = 6;

#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
struct Header {
    src_cid: u64,
    dst_cid: u64,
    src_port: u32,
    dst_port: u32,
    len: u32,
    type_: u16,
    op: u16,
    flags: u32,
    buf_alloc: u32,
    fwd_cnt: u32,
}
// SAFETY: packed plain old data.
unsafe impl ByteValued for Header {}
const HDR_LEN: usize = std::mem::size_of::<Header>();

#[derive(PartialEq)]
enum State {
    /// Host-initiated, REQUEST sent, waiting for the guest's RESPONSE.
    Connecting,
    Established,
}

struct Conn {
    stream: UnixStream,
    state: State,
    /// The guest's receive buffer and what it consumed of our data.
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// Bytes we sent to the guest.
    tx_cnt: u32,
    /// Bytes of the guest's we passed on to the host socket.
    fwd_cnt: u32,
    last_fwd_cnt_sent: u32,
    reading: bool,
}

impl Conn {
    fn peer_credit(&self) -> u32 {
        self.peer_buf_alloc.saturating_sub(self.tx_cnt.wrapping_sub(self.peer_fwd_cnt))
    }
}

/// Connections and packets for the guest, shared with the event loop.
pub struct VsockHost {
    uds: PathBuf,
    guest_cid: u64,
    epoll_fd: RawFd,
    pub listener: UnixListener,
    /// Keyed by (guest port, host port).
    conns: HashMap<(u32, u32), Conn>,
    by_fd: HashMap<RawFd, (u32, u32)>,
    /// Host clients that have not said `CONNECT P` yet.
    pending_clients: HashMap<RawFd, UnixStream>,
    /// Packets for the guest: header and payload.
    rx: VecDeque<(Header, Vec<u8>)>,
    next_host_port: u32,
}

impl VsockHost {
    pub fn new(uds: PathBuf, guest_cid: u64, epoll_fd: RawFd) -> crate::Result<Self> {
        let _ = std::fs::remove_file(&uds);
        let listener = UnixListener::bind(&uds).map_err(|source| crate::Error::File { path: uds.clone(), source })?;
        listener.set_nonblocking(true).map_err(crate::Error::io("vsock socket"))?;
        Ok(VsockHost {
            uds,
            guest_cid,
            epoll_fd,
            listener,
            conns: HashMap::new(),
            by_fd: HashMap::new(),
            pending_clients: HashMap::new(),
            rx: VecDeque::new(),
            next_host_port: 1 << 30,
        })
    }

    fn epoll(&self, op: i32, fd: RawFd, events: u32) {
        let mut ev = libc::epoll_event { events, u64: CONN_TOKEN | fd as u64 };
        // SAFETY: epoll_ctl on our epoll fd with a valid event struct.
        unsafe {
            libc::epoll_ctl(self.epoll_fd, op, fd, &mut ev);
        }
    }

    fn header(&self, key: (u32, u32), op: u16, len: u32, fwd_cnt: u32) -> Header {
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

    fn send(&mut self, key: (u32, u32), op: u16) {
        let fwd = self.conns.get(&key).map(|c| c.fwd_cnt).unwrap_or(0);
        let h = self.header(key, op, 0, fwd);
        self.rx.push_back((h, Vec::new()));
    }

    fn close(&mut self, key: (u32, u32)) {
        if let Some(c) = self.conns.remove(&key) {
            let fd = c.stream.as_raw_fd();
            self.epoll(libc::EPOLL_CTL_DEL, fd, 0);
            self.by_fd.remove(&fd);
        }
    }

    fn set_reading(&mut self, key: (u32, u32)) {
        let Some(c) = self.conns.get_mut(&key) else { return };
        let want = c.state == State::Established && c.peer_credit() > 0;
        if want != c.reading {
            c.reading = want;
            let fd = c.stream.as_raw_fd();
            let events = if want { libc::EPOLLIN as u32 } else { 0 };
            self.epoll(libc::EPOLL_CTL_MOD, fd, events);
        }
    }

    fn add_conn(&mut self, key: (u32, u32), stream: UnixStream, state: State, hdr: Option<&Header>) {
        let fd = stream.as_raw_fd();
        let c = Conn {
            stream,
            state,
            peer_buf_alloc: hdr.map(|h| h.buf_alloc.min(BUF_ALLOC)).unwrap_or(0),
            peer_fwd_cnt: hdr.map(|h| h.fwd_cnt).unwrap_or(0),
            tx_cnt: 0,
            fwd_cnt: 0,
            last_fwd_cnt_sent: 0,
            reading: false,
        };
        self.conns.insert(key, c);
        self.by_fd.insert(fd, key);
        self.epoll(libc::EPOLL_CTL_ADD, fd, 0);
        self.set_reading(key);
    }

    /// A packet from the guest.
    fn guest_packet(&mut self, h: Header, payload: &[u8], report: &Reporter) {
        let key = (h.src_port, h.dst_port);
        let (dst_cid, src_cid, type_, op) = (h.dst_cid, h.src_cid, h.type_, h.op);
        if dst_cid != HOST_CID || src_cid != self.guest_cid || type_ != TYPE_STREAM {
            guest_fault!(report, "vsock bad packet", "cid {src_cid}->{dst_cid} type {type_} op {op}");
            if op != OP_RST {
                let h = self.header(key, OP_RST, 0, 0);
                self.rx.push_back((h, Vec::new()));
            }
            return;
        }
        if let Some(c) = self.conns.get_mut(&key) {
            // Never queue more for a connection than we would take.
            c.peer_buf_alloc = h.buf_alloc.min(BUF_ALLOC);
            c.peer_fwd_cnt = h.fwd_cnt;
        }
        match op {
            OP_REQUEST => {
                if self.conns.contains_key(&key) {
                    self.send(key, OP_RST);
                    return;
                }
                let path = format!("{}_{}", self.uds.display(), key.1);
                match UnixStream::connect(&path) {
                    Ok(s) => {
                        self.add_conn(key, s, State::Established, Some(&h));
                        self.send(key, OP_RESPONSE);
                    }
                    Err(_) => {
                        let h = self.header(key, OP_RST, 0, 0);
                        self.rx.push_back((h, Vec::new()));
                    }
                }
            }
            OP_RESPONSE => match self.conns.get_mut(&key) {
                Some(c) if c.state == State::Connecting => {
                    c.state = State::Established;
                    let _ = c.stream.write_all(format!("OK {}\n", key.1).as_bytes());
                    self.set_reading(key);
                }
                _ => self.send(key, OP_RST),
            },
            OP_RW => {
                let Some(c) = self.conns.get_mut(&key) else {
                    self.send(key, OP_RST);
                    return;
                };
                if c.stream.write_all(payload).is_err() {
                    self.close(key);
                    self.send(key, OP_RST);
                    return;
                }
                c.fwd_cnt = c.fwd_cnt.wrapping_add(payload.len() as u32);
                if c.fwd_cnt.wrapping_sub(c.last_fwd_cnt_sent) >= BUF_ALLOC / 2 {
                    c.last_fwd_cnt_sent = c.fwd_cnt;
                    self.send(key, OP_CREDIT_UPDATE);
                }
                self.set_reading(key);
            }
            OP_CREDIT_UPDATE => self.set_reading(key),
            OP_CREDIT_REQUEST => {
                if let Some(c) = self.conns.get_mut(&key) {
                    c.last_fwd_cnt_sent = c.fwd_cnt;
                }
                self.send(key, OP_CREDIT_UPDATE);
            }
            OP_SHUTDOWN | OP_RST => {
                let known = self.conns.contains_key(&key);
                self.close(key);
                if op == OP_SHUTDOWN && known {
                    self.send(key, OP_RST);
                }
            }
            _ => {
                guest_fault!(report, "vsock bad packet", "op {op}");
                self.send(key, OP_RST);
            }
        }
    }

    /// The event loop saw `fd` readable: data from a host socket.
    pub fn host_readable(&mut self, fd: RawFd) {
        if let Some(mut s) = self.pending_clients.remove(&fd) {
            // A host client's `CONNECT P` line (short: one read).
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            let line = std::str::from_utf8(&buf[..n]).unwrap_or("");
            let port = line.trim().strip_prefix("CONNECT ").and_then(|p| p.parse::<u32>().ok());
            self.epoll(libc::EPOLL_CTL_DEL, fd, 0);
            if let Some(port) = port {
                let key = (port, self.next_host_port);
                self.next_host_port = self.next_host_port.wrapping_add(1).max(1 << 30);
                self.add_conn(key, s, State::Connecting, None);
                self.send(key, OP_REQUEST);
            }
            return;
        }
        let Some(&key) = self.by_fd.get(&fd) else { return };
        let Some(c) = self.conns.get_mut(&key) else { return };
        let room = (c.peer_credit() as usize).min(MAX_PKT);
        if room == 0 {
            self.set_reading(key);
            return;
        }
        let mut buf = vec![0u8; room];
        let read = c.stream.read(&mut buf);
        match read {
            Ok(0) | Err(_) => {
                self.close(key);
                self.send(key, OP_SHUTDOWN);
            }
            Ok(n) => {
                buf.truncate(n);
                c.tx_cnt = c.tx_cnt.wrapping_add(n as u32);
                c.last_fwd_cnt_sent = c.fwd_cnt;
                let fwd = c.fwd_cnt;
                let h = Header { len: n as u32, ..self.header(key, OP_RW, 0, fwd) };
                self.rx.push_back((h, buf));
                self.set_reading(key);
            }
        }
    }

    /// A host client connected to the listener.
    pub fn accept(&mut self) {
        while let Ok((s, _)) = self.listener.accept() {
            let fd = s.as_raw_fd();
            self.epoll(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32);
            self.pending_clients.insert(fd, s);
        }
    }
}

/// The device model.
pub struct Vsock {
    host: Arc<Mutex<VsockHost>>,
    config: [u8; 8],
    /// The transmit queue has packets we left because too many replies
    /// wait for receive buffers.
    tx_stalled: bool,
}

impl Vsock {
    pub fn new(host: Arc<Mutex<VsockHost>>, guest_cid: u64) -> Self {
        Vsock { host, config: guest_cid.to_le_bytes(), tx_stalled: false }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VsockHost> {
        crate::lock(&self.host)
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut used = false;
        self.tx_stalled = false;
        loop {
            if self.lock().rx.len() >= RX_QUEUE_MAX {
                self.tx_stalled = true;
                break;
            }
            let Some(chain) = queue.pop_descriptor_chain(mem) else { break };
            let head = chain.head_index();
            match chain.reader(mem) {
                Ok(mut r) => match r.read_obj::<Header>() {
                    Ok(h) => {
                        let len = h.len as usize;
                        if len > r.available_bytes() || len > BUF_ALLOC as usize {
                            guest_fault!(report, "vsock bad packet", "len {len} with {} bytes", r.available_bytes());
                        } else {
                            let mut payload = vec![0u8; len];
                            if r.read_exact(&mut payload).is_ok() {
                                self.lock().guest_packet(h, &payload, report);
                            }
                        }
                    }
                    Err(e) => guest_fault!(report, "vsock bad descriptor chain", "head {head}: {e}"),
                },
                Err(e) => guest_fault!(report, "vsock bad descriptor chain", "head {head}: {e}"),
            }
            if let Err(e) = queue.add_used(mem, head, 0) {
                guest_fault!(report, "vsock bad used ring", "{e}");
                return used;
            }
            used = true;
        }
        used && queue.needs_notification(mem).unwrap_or(true)
    }

    /// Moves packets to the receive queue and, while the guest's
    /// transmit queue waits on that, takes more of it.
    fn pump(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut used = false;
        loop {
            if let Some(q) = queues.get_mut(RX) {
                if q.ready() {
                    used |= self.receive(q, mem, report);
                }
            }
            if !self.tx_stalled || self.lock().rx.len() >= RX_QUEUE_MAX {
                return used;
            }
            match queues.get_mut(TX) {
                Some(q) if q.ready() => used |= self.transmit(q, mem, report),
                _ => return used,
            }
        }
    }

    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let host = self.host.clone();
        let mut host = crate::lock(&host);
        let mut used = false;
        while let Some((h, payload)) = host.rx.pop_front() {
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                host.rx.push_front((h, payload));
                break;
            };
            let head = chain.head_index();
            let mut written = 0u32;
            match chain.writer(mem) {
                Ok(mut w) if w.available_bytes() >= HDR_LEN + payload.len() => match w.write_obj(h).and_then(|_| w.write_all(&payload)) {
                    Ok(()) => written = (HDR_LEN + payload.len()) as u32,
                    Err(e) => guest_fault!(report, "vsock bad descriptor chain", "head {head}: {e}"),
                },
                Ok(w) => guest_fault!(report, "vsock receive buffer too small", "{} bytes", w.available_bytes()),
                Err(e) => guest_fault!(report, "vsock bad descriptor chain", "head {head}: {e}"),
            }
            if let Err(e) = queue.add_used(mem, head, written) {
                guest_fault!(report, "vsock bad used ring", "{e}");
                return used;
            }
            used = true;
        }
        used && queue.needs_notification(mem).unwrap_or(true)
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        TYPE_VSOCK
    }
    fn name(&self) -> &'static str {
        "virtio-vsock"
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        0
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }
    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut used = false;
        if index == TX {
            if let Some(q) = queues.get_mut(TX) {
                used |= self.transmit(q, mem, report);
            }
        }
        // Replies (and anything the host had) go out on the receive queue.
        if index == TX || index == RX {
            used |= self.pump(queues, mem, report);
        }
        used
    }
    fn host_event(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        self.pump(queues, mem, report)
    }
}

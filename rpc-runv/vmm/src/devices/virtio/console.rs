//! virtio-console: port 0 is the console (hvc0); with more ports the
//! device offers VIRTIO_CONSOLE_F_MULTIPORT and names them (PORT_NAME),
//! like runV's virtio-serial channels: the agent channel and stdio
//! streams. Each port's host end is a unix socket rpc-vmm listens on
//! ([`ConsoleHost`]), one client at a time.
//!
//! Nothing here blocks on a host socket: the client is non-blocking.
//! Guest output goes to the client as far as its socket takes it, the
//! rest (and all output while no client is connected) waits in a buffer
//! of [`OUT_MAX`] bytes; when that is full the device leaves the port's
//! transmit queue alone (the guest sees no completions) until the socket
//! drains (EPOLLOUT). The client is read only into receive buffers the
//! guest gave, and watched for input only while there are some. An event
//! on one port's sockets is handled for that port only.
//!
//! Control messages wait for the driver's control receive buffers: the
//! one-off ones (DEVICE_ADD, CONSOLE_PORT, PORT_NAME) in a queue bounded
//! by the ports, PORT_OPEN as one pending flag per port, its value read
//! when it is sent, so clients coming and going while the driver gives no
//! buffers queue nothing.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};

use crate::lock;

use virtio_queue::{Queue, QueueT};

use super::queue::{self, Handled};
use super::watch::{self, Watch};
use super::{read_config_bytes, VirtioDevice, TYPE_CONSOLE};
use crate::guest_fault;
use crate::memory::GuestMemoryMmap;
use crate::report::Reporter;

const QUEUE_SIZE: u16 = 256;
const VIRTIO_CONSOLE_F_MULTIPORT: u64 = 1 << 1;
/// Guest output buffered for the client (or until one connects); past
/// this the device stops taking the port's transmit queue.
pub const OUT_MAX: usize = 1 << 20;
/// The most bytes one transmit chain may carry; longer chains are a
/// guest error and dropped.
const MAX_CHAIN_BYTES: usize = 1 << 20;
/// Data is copied between guest and host in pieces of at most this size.
const CHUNK: usize = 64 * 1024;
/// The most ports a device may have.
pub const MAX_PORTS: usize = 16;
/// epoll tokens: port p's listener is `PORT_TOKEN_BASE + 2p`, its client
/// the next.
pub const PORT_TOKEN_BASE: u64 = 100;

// Control queue events (virtio spec 5.3.6.2).
const DEVICE_READY: u16 = 0;
const DEVICE_ADD: u16 = 1;
const PORT_READY: u16 = 3;
const CONSOLE_PORT: u16 = 4;
const PORT_OPEN: u16 = 6;
const PORT_NAME: u16 = 7;
const CTRL_RX: usize = 2;
const CTRL_TX: usize = 3;

/// The connected client of a port.
struct Client {
    // Out of the epoll set before the fd closes (fields drop in order).
    watch: Watch,
    stream: UnixStream,
    /// Writes still reach it (false after EPIPE and the like; what it
    /// sent us is still read to the end).
    writable: bool,
}

/// What a read of the client gave.
enum Input {
    Data(usize),
    /// Nothing now (EAGAIN) or no client.
    Nothing,
    /// The client hung up (EOF or error).
    Closed,
}

/// The host side of one port: its listening socket, client and output
/// buffer, shared by the device (vCPU threads) and the event loop.
pub struct ConsoleHost {
    // Out of the epoll set before the listener closes.
    listen_watch: Option<Watch>,
    /// None for port 0 without `--console-socket`: output is dropped.
    listener: Option<UnixListener>,
    epoll_fd: RawFd,
    client_token: u64,
    client: Option<Client>,
    /// Guest output not yet taken by a client.
    out: VecDeque<u8>,
    /// The guest has receive buffers and the client had nothing: watch
    /// it for input.
    want_input: bool,
    /// A client came or went since the device last looked.
    connection_changed: bool,
}

impl Default for ConsoleHost {
    /// A port with no host end (its output is dropped).
    fn default() -> Self {
        ConsoleHost {
            listen_watch: None,
            listener: None,
            epoll_fd: -1,
            client_token: 0,
            client: None,
            out: VecDeque::new(),
            want_input: false,
            connection_changed: false,
        }
    }
}

impl ConsoleHost {
    /// Port `index`'s host end: clients of `listener` (non-blocking),
    /// watched in the epoll set `epoll_fd`.
    pub fn new(listener: Option<UnixListener>, epoll_fd: RawFd, index: usize) -> Self {
        let listen_token = PORT_TOKEN_BASE + 2 * index as u64;
        let listen_watch = listener.as_ref().map(|l| {
            let mut w = Watch::new(epoll_fd, l.as_raw_fd(), listen_token);
            w.set(watch::IN);
            w
        });
        ConsoleHost { listen_watch, listener, epoll_fd, client_token: listen_token + 1, ..Default::default() }
    }

    /// The listener has a client: it replaces any previous one and gets
    /// the output buffered so far. Out of file descriptors, the listener
    /// leaves the epoll set (it would be ready again at once) and the
    /// error is returned: see [`ConsoleHost::resume_listening`].
    pub fn accept(&mut self) -> Option<std::io::Error> {
        let Some(l) = &self.listener else { return None };
        let mut paused = None;
        loop {
            let stream = match l.accept() {
                Ok((stream, _)) => stream,
                Err(e) if watch::out_of_fds(&e) => {
                    if let Some(w) = self.listen_watch.as_mut() {
                        w.set(0);
                    }
                    paused = Some(e);
                    break;
                }
                Err(e) if watch::retry_accept(&e) => continue,
                Err(_) => break,
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let watch = Watch::new(self.epoll_fd, stream.as_raw_fd(), self.client_token);
            self.client = Some(Client { stream, watch, writable: true });
            self.connection_changed = true;
            self.want_input = false;
        }
        self.flush();
        paused
    }

    /// Watches the listener again (after [`ConsoleHost::accept`] ran out
    /// of file descriptors).
    pub fn resume_listening(&mut self) {
        if let Some(w) = self.listen_watch.as_mut() {
            w.set(watch::IN);
        }
    }

    /// Whether a client is connected.
    pub fn connected(&self) -> bool {
        self.client.is_some()
    }

    /// Takes guest output (dropped, and counted, when the port has no
    /// host end at all).
    fn output(&mut self, bytes: &[u8], report: &Reporter) {
        if self.listener.is_none() {
            report.quiet("virtio-console output dropped (no host end)", format_args!("{} bytes", bytes.len()));
            return;
        }
        self.out.extend(bytes);
    }

    /// The output buffer is full: the transmit queue has to wait.
    fn out_full(&self) -> bool {
        self.out.len() >= OUT_MAX
    }

    /// Writes buffered output to the client as far as its socket takes it.
    pub fn flush(&mut self) {
        if let Some(c) = self.client.as_mut() {
            while c.writable && !self.out.is_empty() {
                let (front, _) = self.out.as_slices();
                match c.stream.write(front) {
                    Ok(0) => c.writable = false,
                    Ok(n) => drop(self.out.drain(..n)),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // Kept for the next client.
                    Err(_) => c.writable = false,
                }
            }
        }
        self.update_watch();
    }

    fn update_watch(&mut self) {
        if let Some(c) = self.client.as_mut() {
            let mut events = 0;
            if self.want_input {
                events |= watch::IN;
            }
            if c.writable && !self.out.is_empty() {
                events |= watch::OUT;
            }
            c.watch.set(events);
        }
    }

    fn set_want_input(&mut self, want: bool) {
        self.want_input = want;
        self.update_watch();
    }

    fn read(&mut self, buf: &mut [u8]) -> Input {
        let Some(c) = self.client.as_mut() else { return Input::Nothing };
        loop {
            return match c.stream.read(buf) {
                Ok(0) => Input::Closed,
                Ok(n) => Input::Data(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Input::Nothing,
                Err(_) => Input::Closed,
            };
        }
    }

    /// The client went away (its unsent output stays for the next one).
    fn disconnect(&mut self) {
        self.client = None;
        self.want_input = false;
        self.connection_changed = true;
    }
}

struct Port {
    name: Option<String>,
    host: Arc<Mutex<ConsoleHost>>,
    ready: bool,
    /// Its transmit queue waits for the output buffer to drain.
    tx_stalled: bool,
    /// The driver is to be told whether a client is connected (PORT_OPEN
    /// with the state at the time it is sent).
    open_pending: bool,
}

/// The device model.
pub struct Console {
    ports: Vec<Port>,
    queue_sizes: Vec<u16>,
    /// One-off control messages waiting for a control receive buffer (at
    /// most three per port between resets); PORT_OPEN is
    /// [`Port::open_pending`].
    control: VecDeque<Vec<u8>>,
    /// The driver said DEVICE_READY (until it resets the device).
    device_ready: bool,
    /// Data between the guest and a client goes through here (allocated
    /// on first use, [`CHUNK`] bytes).
    buf: Vec<u8>,
}

fn control_msg(id: u32, event: u16, value: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(8);
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&event.to_le_bytes());
    m.extend_from_slice(&value.to_le_bytes());
    m
}

const USED_RING_FAULT: &str = "virtio-console bad used ring";

/// `buf`, allocated to [`CHUNK`] bytes if it was not yet.
fn chunk_buf(buf: &mut Vec<u8>) -> &mut [u8] {
    if buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
    buf
}

impl Console {
    /// A console with port 0 (hvc0) only.
    pub fn new(host: Arc<Mutex<ConsoleHost>>) -> Self {
        Self::with_ports(host, Vec::new())
    }

    /// Port 0 (the console) and named ports 1.. (multiport).
    pub fn with_ports(console: Arc<Mutex<ConsoleHost>>, named: Vec<(String, Arc<Mutex<ConsoleHost>>)>) -> Self {
        let port = |name, host| Port { name, host, ready: false, tx_stalled: false, open_pending: false };
        let mut ports = vec![port(None, console)];
        ports.extend(named.into_iter().take(MAX_PORTS - 1).map(|(name, host)| port(Some(name), host)));
        let nq = if ports.len() > 1 { 2 * ports.len() + 2 } else { 2 };
        Console { ports, queue_sizes: vec![QUEUE_SIZE; nq], control: VecDeque::new(), device_ready: false, buf: Vec::new() }
    }

    fn multiport(&self) -> bool {
        self.ports.len() > 1
    }

    /// The receive queue of port `p` (its transmit queue is the next).
    fn rx_queue(p: usize) -> usize {
        if p == 0 {
            0
        } else {
            2 * (p + 1)
        }
    }

    /// The port and direction of queue `q`: (port, is_transmit).
    fn port_of(&self, q: usize) -> Option<(usize, bool)> {
        let p = match q {
            0 | 1 => 0,
            2 | 3 => return None,
            q => q / 2 - 1,
        };
        (p < self.ports.len()).then_some((p, q % 2 == 1))
    }

    /// Takes the guest's output on port `p` while its buffer has room.
    fn transmit(&mut self, p: usize, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let host = self.ports[p].host.clone();
        let buf = chunk_buf(&mut self.buf);
        let mut stalled = false;
        let used = queue::process(queue, mem, report, USED_RING_FAULT, |chain| {
            let mut h = lock(&host);
            if h.out_full() {
                stalled = true;
                return Handled::Later;
            }
            let head = chain.head_index();
            match chain.reader(mem) {
                Ok(mut r) => {
                    let total = r.available_bytes();
                    if total > MAX_CHAIN_BYTES {
                        // Descriptors may alias one buffer up to the queue
                        // size: never trust the sum of their lengths.
                        guest_fault!(report, "virtio-console oversize descriptor chain", "head {head}: {total} bytes");
                    } else {
                        let chunk = &mut buf[..total.min(CHUNK)];
                        loop {
                            match r.read(chunk) {
                                Ok(0) => break,
                                Ok(n) => h.output(&chunk[..n], report),
                                Err(e) => {
                                    guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}");
                                    break;
                                }
                            }
                        }
                        h.flush();
                    }
                }
                Err(e) => guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}"),
            }
            Handled::Used(0)
        });
        self.ports[p].tx_stalled = stalled;
        used
    }

    /// Reads port `p`'s client into the guest's receive buffers while
    /// both last; watches the client for input when it ran dry first.
    fn receive(&mut self, p: usize, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let host = self.ports[p].host.clone();
        let mut h = lock(&host);
        if !h.connected() {
            return false;
        }
        let buf = chunk_buf(&mut self.buf);
        let mut dry = false;
        let used = queue::process(queue, mem, report, USED_RING_FAULT, |chain| {
            let head = chain.head_index();
            let mut w = match chain.writer(mem) {
                Ok(w) => w,
                Err(e) => {
                    guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}");
                    return Handled::Used(0);
                }
            };
            let buf = &mut buf[..w.available_bytes().min(CHUNK)];
            if buf.is_empty() {
                guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: no room");
                return Handled::Used(0);
            }
            match h.read(buf) {
                Input::Data(n) => match w.write_all(&buf[..n]) {
                    Ok(()) => Handled::Used(n as u32),
                    Err(e) => {
                        guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}");
                        Handled::Used(0)
                    }
                },
                Input::Nothing => {
                    dry = true;
                    Handled::Later
                }
                Input::Closed => {
                    h.disconnect();
                    Handled::Later
                }
            }
        });
        h.set_want_input(dry);
        used
    }

    /// The next control message to send: the queued ones first, then the
    /// pending PORT_OPENs.
    fn next_control(&mut self) -> Option<Vec<u8>> {
        if let Some(m) = self.control.pop_front() {
            return Some(m);
        }
        let p = self.ports.iter().position(|p| p.open_pending)?;
        self.ports[p].open_pending = false;
        Some(self.port_open_msg(p))
    }

    /// Sends queued control messages, one per receive buffer.
    fn flush_control(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        queue::process(queue, mem, report, USED_RING_FAULT, |chain| {
            let Some(msg) = self.next_control() else { return Handled::Later };
            let head = chain.head_index();
            match chain.writer(mem) {
                Ok(mut w) if w.available_bytes() >= msg.len() => match w.write_all(&msg) {
                    Ok(()) => return Handled::Used(msg.len() as u32),
                    Err(e) => guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}"),
                },
                Ok(w) => guest_fault!(report, "virtio-console control buffer too small", "{} bytes", w.available_bytes()),
                Err(e) => guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}"),
            }
            Handled::Used(0)
        })
    }

    fn port_open_msg(&self, p: usize) -> Vec<u8> {
        let open = lock(&self.ports[p].host).connected();
        control_msg(p as u32, PORT_OPEN, u16::from(open))
    }

    /// Handles one control message of the driver.
    fn control_msg_in(&mut self, m: [u8; 8], report: &Reporter) {
        let id = u32::from_le_bytes([m[0], m[1], m[2], m[3]]) as usize;
        let event = u16::from_le_bytes([m[4], m[5]]);
        let value = u16::from_le_bytes([m[6], m[7]]);
        match event {
            // Once only: a repeat would queue every DEVICE_ADD again.
            DEVICE_READY if value == 1 && self.device_ready => {}
            DEVICE_READY if value == 1 => {
                self.device_ready = true;
                for p in 0..self.ports.len() {
                    self.control.push_back(control_msg(p as u32, DEVICE_ADD, 0));
                }
            }
            PORT_READY if id < self.ports.len() => {
                if value == 1 && !self.ports[id].ready {
                    self.ports[id].ready = true;
                    if id == 0 {
                        self.control.push_back(control_msg(0, CONSOLE_PORT, 1));
                    }
                    if let Some(name) = &self.ports[id].name {
                        let mut m = control_msg(id as u32, PORT_NAME, 1);
                        m.extend_from_slice(name.as_bytes());
                        self.control.push_back(m);
                    }
                    self.ports[id].open_pending = true;
                }
            }
            PORT_OPEN if id < self.ports.len() => {}
            _ => guest_fault!(report, "virtio-console bad control message", "port {id} event {event} value {value}"),
        }
    }

    /// Handles the driver's control messages, each as it is taken (a
    /// driver that keeps adding chains makes nothing pile up here).
    fn control_in(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        queue::process(queue, mem, report, USED_RING_FAULT, |chain| {
            let head = chain.head_index();
            match chain.reader(mem).map_err(|e| e.to_string()).and_then(|mut r| r.read_obj::<[u8; 8]>().map_err(|e| e.to_string())) {
                Ok(m) => self.control_msg_in(m, report),
                Err(e) => guest_fault!(report, "virtio-console bad control message", "head {head}: {e}"),
            }
            Handled::Used(0)
        })
    }

    /// Tells the driver whether port `changed` (the one whose host side
    /// just changed, if any) has a client, when one came or went, and
    /// sends what control messages it has buffers for.
    fn control_out(&mut self, changed: Option<usize>, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        if !self.multiport() {
            return false;
        }
        if let Some(port) = changed.and_then(|p| self.ports.get_mut(p)) {
            // Taken even while the port is not ready: PORT_READY tells the
            // driver the state at that time.
            if std::mem::take(&mut lock(&port.host).connection_changed) && port.ready {
                port.open_pending = true;
            }
        }
        match queues.get_mut(CTRL_RX) {
            Some(q) if q.ready() && (!self.control.is_empty() || self.ports.iter().any(|p| p.open_pending)) => {
                self.flush_control(q, mem, report)
            }
            _ => false,
        }
    }

    /// Stops watching every client for input (the driver cannot take it).
    fn stop_input(&mut self) {
        for p in &mut self.ports {
            lock(&p.host).set_want_input(false);
        }
    }
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        TYPE_CONSOLE
    }
    fn name(&self) -> &'static str {
        "virtio-console"
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }
    fn features(&self) -> u64 {
        if self.multiport() {
            VIRTIO_CONSOLE_F_MULTIPORT
        } else {
            0
        }
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) -> bool {
        // cols, rows (u16), max_nr_ports (u32), emerg_wr (u32).
        let mut cfg = [0u8; 12];
        cfg[4..8].copy_from_slice(&(self.ports.len() as u32).to_le_bytes());
        read_config_bytes(&cfg, offset, data)
    }
    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut used = false;
        let mut port = None;
        if self.multiport() && (index == CTRL_RX || index == CTRL_TX) {
            if index == CTRL_TX {
                if let Some(q) = queues.get_mut(CTRL_TX) {
                    used |= self.control_in(q, mem, report);
                }
            }
        } else if let (Some((p, tx)), Some(q)) = (self.port_of(index), queues.get_mut(index)) {
            // (A receive may find the client gone.)
            port = Some(p);
            used |= if tx { self.transmit(p, q, mem, report) } else { self.receive(p, q, mem, report) };
        }
        used | self.control_out(port, queues, mem, report)
    }
    fn reset(&mut self) {
        self.device_ready = false;
        self.control.clear();
        self.stop_input();
        for p in &mut self.ports {
            p.ready = false;
            p.tx_stalled = false;
            p.open_pending = false;
        }
    }
    fn host_blocked(&mut self) {
        self.stop_input();
    }
    /// `source` is the port whose sockets had an event: only it can have
    /// room for output or input for the guest.
    fn host_event(&mut self, source: usize, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut used = false;
        let p = source;
        if p < self.ports.len() {
            let rx = Self::rx_queue(p);
            if self.ports[p].tx_stalled && !lock(&self.ports[p].host).out_full() {
                if let Some(q) = queues.get_mut(rx + 1).filter(|q| q.ready()) {
                    used |= self.transmit(p, q, mem, report);
                }
            }
            if let Some(q) = queues.get_mut(rx).filter(|q| q.ready()) {
                used |= self.receive(p, q, mem, report);
            }
        }
        used | self.control_out(Some(p), queues, mem, report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_mapping() {
        let host = || Arc::new(Mutex::new(ConsoleHost::default()));
        let c = Console::with_ports(host(), vec![("agent".into(), host()), ("stdio".into(), host())]);
        assert_eq!(c.queue_max_sizes().len(), 8);
        assert_eq!(c.port_of(0), Some((0, false)));
        assert_eq!(c.port_of(1), Some((0, true)));
        assert_eq!(c.port_of(2), None);
        assert_eq!(c.port_of(4), Some((1, false)));
        assert_eq!(c.port_of(7), Some((2, true)));
        assert_eq!(c.port_of(8), None);
        assert_eq!(Console::rx_queue(2), 6);
        assert_eq!(Console::new(host()).queue_max_sizes().len(), 2);
    }

    /// A driver that gives no control receive buffers while clients come
    /// and go makes nothing pile up: one pending PORT_OPEN per port, sent
    /// with the state at that time.
    #[test]
    fn port_open_is_one_pending_state_per_port() {
        use vm_memory::GuestAddress;
        let host = || Arc::new(Mutex::new(ConsoleHost::default()));
        let agent = host();
        let mut c = Console::with_ports(host(), vec![("agent".into(), agent.clone())]);
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let report = Reporter::new(false);
        let mut queues: Vec<Queue> = c.queue_max_sizes().iter().map(|&n| Queue::new(n).unwrap()).collect();
        c.control_msg_in(*b"\0\0\0\0\0\0\x01\0", &report); // DEVICE_READY
        c.control_msg_in(*b"\x01\0\0\0\x03\0\x01\0", &report); // PORT_READY 1
        for _ in 0..10_000 {
            lock(&agent).connection_changed = true;
            c.process_queue(Console::rx_queue(1), &mut queues, &mem, &report);
        }
        // DEVICE_ADD for both ports and port 1's name: nothing per change.
        assert_eq!(c.control.len(), 3);
        assert!(c.ports[1].open_pending);
        let mut sent = Vec::new();
        while let Some(m) = c.next_control() {
            sent.push(m);
        }
        assert_eq!(sent.len(), 4);
        assert_eq!(sent[3], control_msg(1, PORT_OPEN, 0), "no client now");
        assert_eq!(report.summary(), "");
    }
}

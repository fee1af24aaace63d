//! virtio-console: port 0 is the console (hvc0); with more ports the
//! device offers VIRTIO_CONSOLE_F_MULTIPORT and names them (PORT_NAME),
//! like runV's virtio-serial channels: the agent channel and stdio
//! streams. Each port's host end is a unix socket rpc-vmm listens on
//! ([`ConsoleHost`]); what the guest writes before a client connects is
//! kept (up to 1 MiB) and sent on connect.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use crate::lock;

use virtio_queue::{Queue, QueueT};

use super::{read_config_bytes, VirtioDevice, TYPE_CONSOLE};
use crate::guest_fault;
use crate::memory::GuestMemoryMmap;
use crate::report::Reporter;

const QUEUE_SIZE: u16 = 256;
const VIRTIO_CONSOLE_F_MULTIPORT: u64 = 1 << 1;
/// Guest output kept while no client is connected.
const BACKLOG_MAX: usize = 1 << 20;
/// Host input buffered for the guest before we stop reading the socket.
pub const INPUT_MAX: usize = 64 * 1024;
/// The most bytes one transmit chain may carry; longer chains are a
/// guest error and dropped.
const MAX_CHAIN_BYTES: usize = 1 << 20;
/// Transmit data is copied to the host in pieces of at most this size.
const CHUNK: usize = 64 * 1024;
/// The most ports a device may have.
pub const MAX_PORTS: usize = 16;

// Control queue events (virtio spec 5.3.6.2).
const DEVICE_READY: u16 = 0;
const DEVICE_ADD: u16 = 1;
const PORT_READY: u16 = 3;
const CONSOLE_PORT: u16 = 4;
const PORT_OPEN: u16 = 6;
const PORT_NAME: u16 = 7;
const CTRL_RX: usize = 2;
const CTRL_TX: usize = 3;

/// The host side of one port, shared with the event loop.
#[derive(Default)]
pub struct ConsoleHost {
    /// Bytes from the client not yet in the guest's receive queue.
    pub input: VecDeque<u8>,
    /// The connected client.
    pub client: Option<UnixStream>,
    /// Guest output waiting for a client.
    pub backlog: Vec<u8>,
    /// A client came or went since the device last looked.
    connection_changed: bool,
}

impl ConsoleHost {
    fn output(&mut self, bytes: &[u8], report: &Reporter) {
        if let Some(c) = self.client.as_mut() {
            if c.write_all(bytes).is_ok() {
                return;
            }
            self.client = None;
            self.connection_changed = true;
        }
        let room = BACKLOG_MAX.saturating_sub(self.backlog.len());
        if bytes.len() > room {
            report.quiet("virtio-console output dropped", format_args!("{} bytes", bytes.len() - room));
        }
        self.backlog.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// A client connected: it replaces any previous one and gets the
    /// backlog.
    pub fn connect(&mut self, mut client: UnixStream) {
        if !self.backlog.is_empty() && client.write_all(&self.backlog).is_ok() {
            self.backlog.clear();
        }
        self.client = Some(client);
        self.connection_changed = true;
    }

    /// The connected client's fd: the event loop watches it only while
    /// this is still its fd (output drops a client it cannot write to).
    pub fn client_fd(&self) -> Option<RawFd> {
        self.client.as_ref().map(|c| c.as_raw_fd())
    }

    /// The client went away.
    pub fn disconnect(&mut self) {
        self.client = None;
        self.connection_changed = true;
    }
}

struct Port {
    name: Option<String>,
    host: Arc<Mutex<ConsoleHost>>,
    ready: bool,
}

/// The device model.
pub struct Console {
    ports: Vec<Port>,
    queue_sizes: Vec<u16>,
    /// Control messages waiting for a control receive buffer.
    control: VecDeque<Vec<u8>>,
    /// The driver said DEVICE_READY (until it resets the device).
    device_ready: bool,
}

fn control_msg(id: u32, event: u16, value: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(8);
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&event.to_le_bytes());
    m.extend_from_slice(&value.to_le_bytes());
    m
}

impl Console {
    /// A console with port 0 (hvc0) only.
    pub fn new(host: Arc<Mutex<ConsoleHost>>) -> Self {
        Self::with_ports(host, Vec::new())
    }

    /// Port 0 (the console) and named ports 1.. (multiport).
    pub fn with_ports(console: Arc<Mutex<ConsoleHost>>, named: Vec<(String, Arc<Mutex<ConsoleHost>>)>) -> Self {
        let mut ports = vec![Port { name: None, host: console, ready: false }];
        ports.extend(named.into_iter().take(MAX_PORTS - 1).map(|(name, host)| Port { name: Some(name), host, ready: false }));
        let nq = if ports.len() > 1 { 2 * ports.len() + 2 } else { 2 };
        Console { ports, queue_sizes: vec![QUEUE_SIZE; nq], control: VecDeque::new(), device_ready: false }
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

    fn transmit(&mut self, p: usize, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let host = self.ports[p].host.clone();
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            match chain.reader(mem) {
                Ok(mut r) => {
                    let total = r.available_bytes();
                    if total > MAX_CHAIN_BYTES {
                        // Descriptors may alias one buffer up to the queue
                        // size: never trust the sum of their lengths.
                        guest_fault!(report, "virtio-console oversize descriptor chain", "head {head}: {total} bytes");
                    } else {
                        let mut chunk = vec![0u8; total.min(CHUNK)];
                        loop {
                            match std::io::Read::read(&mut r, &mut chunk) {
                                Ok(0) => break,
                                Ok(n) => lock(&host).output(&chunk[..n], report),
                                Err(e) => {
                                    guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}"),
            }
            if let Err(e) = queue.add_used(mem, head, 0) {
                guest_fault!(report, "virtio-console bad used ring", "{e}");
                return used;
            }
            used = true;
        }
        used && queue.needs_notification(mem).unwrap_or(true)
    }

    /// Fills receive buffers from `source` while both last.
    fn fill(queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter, source: &mut VecDeque<u8>) -> bool {
        let mut used = false;
        while !source.is_empty() {
            let Some(chain) = queue.pop_descriptor_chain(mem) else { break };
            let head = chain.head_index();
            let mut written = 0u32;
            match chain.writer(mem) {
                Ok(mut w) => {
                    let n = w.available_bytes().min(source.len());
                    let bytes: Vec<u8> = source.drain(..n).collect();
                    match w.write_all(&bytes) {
                        Ok(()) => written = n as u32,
                        Err(e) => guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}"),
                    }
                }
                Err(e) => guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}"),
            }
            if let Err(e) = queue.add_used(mem, head, written) {
                guest_fault!(report, "virtio-console bad used ring", "{e}");
                return used;
            }
            used = true;
        }
        used && queue.needs_notification(mem).unwrap_or(true)
    }

    fn receive(&mut self, p: usize, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let host = self.ports[p].host.clone();
        let mut h = lock(&host);
        Self::fill(queue, mem, report, &mut h.input)
    }

    /// Sends queued control messages, one per receive buffer.
    fn flush_control(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut used = false;
        while let Some(msg) = self.control.front() {
            let Some(chain) = queue.pop_descriptor_chain(mem) else { break };
            let head = chain.head_index();
            let mut written = 0u32;
            match chain.writer(mem) {
                Ok(mut w) if w.available_bytes() >= msg.len() => match w.write_all(msg) {
                    Ok(()) => written = msg.len() as u32,
                    Err(e) => guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}"),
                },
                Ok(w) => guest_fault!(report, "virtio-console control buffer too small", "{} bytes", w.available_bytes()),
                Err(e) => guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}"),
            }
            self.control.pop_front();
            if let Err(e) = queue.add_used(mem, head, written) {
                guest_fault!(report, "virtio-console bad used ring", "{e}");
                return used;
            }
            used = true;
        }
        used && queue.needs_notification(mem).unwrap_or(true)
    }

    fn port_open_msg(&self, p: usize) -> Vec<u8> {
        let open = lock(&self.ports[p].host).client.is_some();
        control_msg(p as u32, PORT_OPEN, u16::from(open))
    }

    /// Handles the driver's control messages.
    fn control_in(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let msg = chain.reader(mem).map_err(|e| e.to_string()).and_then(|mut r| r.read_obj::<[u8; 8]>().map_err(|e| e.to_string()));
            match msg {
                Ok(m) => {
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
                                let open = self.port_open_msg(id);
                                self.control.push_back(open);
                            }
                        }
                        PORT_OPEN if id < self.ports.len() => {}
                        _ => guest_fault!(report, "virtio-console bad control message", "port {id} event {event} value {value}"),
                    }
                }
                Err(_) => guest_fault!(report, "virtio-console bad control message", "head {head}: short"),
            }
            if let Err(e) = queue.add_used(mem, head, 0) {
                guest_fault!(report, "virtio-console bad used ring", "{e}");
                return used;
            }
            used = true;
        }
        used && queue.needs_notification(mem).unwrap_or(true)
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
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // cols, rows (u16), max_nr_ports (u32), emerg_wr (u32).
        let mut cfg = [0u8; 12];
        cfg[4..8].copy_from_slice(&(self.ports.len() as u32).to_le_bytes());
        read_config_bytes(&cfg, offset, data);
    }
    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        if self.multiport() && (index == CTRL_RX || index == CTRL_TX) {
            let mut used = false;
            if index == CTRL_TX {
                if let Some(q) = queues.get_mut(CTRL_TX) {
                    used |= self.control_in(q, mem, report);
                }
            }
            if let Some(q) = queues.get_mut(CTRL_RX) {
                used |= self.flush_control(q, mem, report);
            }
            return used;
        }
        let Some((p, tx)) = self.port_of(index) else { return false };
        let Some(q) = queues.get_mut(index) else { return false };
        if tx {
            self.transmit(p, q, mem, report)
        } else {
            self.receive(p, q, mem, report)
        }
    }
    fn reset(&mut self) {
        self.device_ready = false;
        self.control.clear();
        for p in &mut self.ports {
            p.ready = false;
        }
    }
    fn host_event(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut used = false;
        for p in 0..self.ports.len() {
            let changed = std::mem::take(&mut lock(&self.ports[p].host).connection_changed);
            if changed && self.multiport() && self.ports[p].ready {
                let open = self.port_open_msg(p);
                self.control.push_back(open);
            }
            if let Some(q) = queues.get_mut(Self::rx_queue(p)) {
                if q.ready() {
                    used |= self.receive(p, q, mem, report);
                }
            }
        }
        if self.multiport() {
            if let Some(q) = queues.get_mut(CTRL_RX) {
                if q.ready() {
                    used |= self.flush_control(q, mem, report);
                }
            }
        }
        used
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
}

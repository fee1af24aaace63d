//! virtio-console, single port (hvc0): the agent channel. The host end
//! is a unix socket rpc-vmm listens on ([`ConsoleHost`]); what the guest
//! writes before a client connects is kept (up to 1 MiB) and sent on
//! connect.

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use virtio_queue::{Queue, QueueT};

use super::{read_config_bytes, VirtioDevice, TYPE_CONSOLE};
use crate::guest_fault;
use crate::memory::GuestMemoryMmap;
use crate::report::Reporter;

const QUEUE_SIZE: u16 = 256;
const RX: usize = 0;
const TX: usize = 1;
/// Guest output kept while no client is connected.
const BACKLOG_MAX: usize = 1 << 20;
/// Host input buffered for the guest before we stop reading the socket.
pub const INPUT_MAX: usize = 64 * 1024;

/// The host side of the console, shared with the event loop.
#[derive(Default)]
pub struct ConsoleHost {
    /// Bytes from the client not yet in the guest's receive queue.
    pub input: VecDeque<u8>,
    /// The connected client.
    pub client: Option<UnixStream>,
    /// Guest output waiting for a client.
    pub backlog: Vec<u8>,
}

impl ConsoleHost {
    fn output(&mut self, bytes: &[u8], report: &Reporter) {
        if let Some(c) = self.client.as_mut() {
            if c.write_all(bytes).is_ok() {
                return;
            }
            self.client = None;
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
    }
}

/// The device model.
pub struct Console {
    host: Arc<Mutex<ConsoleHost>>,
}

impl Console {
    pub fn new(host: Arc<Mutex<ConsoleHost>>) -> Self {
        Console { host }
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            match chain.reader(mem) {
                Ok(mut r) => {
                    let mut buf = Vec::with_capacity(r.available_bytes().min(1 << 16));
                    if let Err(e) = std::io::Read::read_to_end(&mut r, &mut buf) {
                        guest_fault!(report, "virtio-console bad descriptor chain", "head {head}: {e}");
                    }
                    self.host.lock().unwrap_or_else(|e| e.into_inner()).output(&buf, report);
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

    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut host = self.host.lock().unwrap_or_else(|e| e.into_inner());
        let mut used = false;
        while !host.input.is_empty() {
            let Some(chain) = queue.pop_descriptor_chain(mem) else { break };
            let head = chain.head_index();
            let mut written = 0u32;
            match chain.writer(mem) {
                Ok(mut w) => {
                    let n = w.available_bytes().min(host.input.len());
                    let bytes: Vec<u8> = host.input.drain(..n).collect();
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
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        TYPE_CONSOLE
    }
    fn name(&self) -> &'static str {
        "virtio-console"
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        0
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // cols, rows, max_nr_ports, emerg_wr: none offered.
        read_config_bytes(&[0u8; 12], offset, data);
    }
    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        match (index, queues) {
            (TX, [_, tx]) => self.transmit(tx, mem, report),
            (RX, [rx, _]) => self.receive(rx, mem, report),
            _ => false,
        }
    }
    fn host_event(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        match queues {
            [rx, _] if rx.ready() => self.receive(rx, mem, report),
            _ => false,
        }
    }
}

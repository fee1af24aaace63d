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
//! Host sockets are non-blocking. Guest data goes to its socket as far as
//! the socket takes it; the rest waits in the connection's buffer, and
//! only what the socket took counts as forwarded (`fwd_cnt`), so a guest
//! that honours our credit never has more than [`BUF_ALLOC`] bytes
//! buffered. A packet that would buffer more (a guest ignoring credit)
//! resets its own connection (RST, reported); the transmit queue goes on
//! for the others, so a host peer that stops reading holds back only its
//! own connection. A host socket is read only while the guest has credit
//! for the data.
//!
//! A device has at most [`MAX_CONNS`] connections: a guest connect beyond
//! it gets an RST, a host `CONNECT` beyond it is closed (both counted).
//!
//! Shutdown is half-close both ways: end of file from the host socket is
//! an OP_SHUTDOWN with the SEND flag for the guest, which may still send;
//! a guest SHUTDOWN with SEND shuts the socket's write side (once its
//! buffer drained) while the host may still write; with RCV the socket's
//! read side. When neither side sends any more the connection is closed
//! and the guest gets an RST. Packets for unknown connections and host
//! socket errors get an RST too; bad packets are reported as guest faults.
//! A device reset drops every connection and every queued packet.
//!
//! `host`: the host side (the unix sockets and the connections); this
//! file: the device model (the queues and the packets' header).

mod host;

use std::io::Write;
use std::sync::{Arc, Mutex};

use virtio_queue::{Queue, QueueT};
use vm_memory::ByteValued;

use super::queue::{self, Handled};
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
/// SHUTDOWN flags: the sender will receive no more, send no more.
pub const SHUTDOWN_RCV: u32 = 1;
pub const SHUTDOWN_SEND: u32 = 2;
/// Our receive buffer per connection, as advertised to the guest: a
/// packet that would buffer more of the guest's data than this for a host
/// socket is over the guest's credit and resets its connection.
pub const BUF_ALLOC: u32 = 256 * 1024;
/// The most connections (either direction) of one device: each holds a
/// host socket, so a guest must not be able to open them without bound
/// (the VMM would run out of file descriptors). Far more than an agent
/// and its streams need, well below the usual limit of 1024 fds.
pub const MAX_CONNS: usize = 256;
/// Packets queued for the guest above which we stop taking its transmit
/// queue (every guest packet may queue a reply): the guest has to give
/// receive buffers first, as in Firecracker.
pub const RX_QUEUE_MAX: usize = 1024;
/// Largest payload of one packet we send.
const MAX_PKT: usize = 4096;
/// Longest `CONNECT P\n` line of a host client.
const CONNECT_LINE_MAX: usize = 64;
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

pub use host::VsockHost;

/// The device model.
pub struct Vsock {
    host: Arc<Mutex<VsockHost>>,
    config: [u8; 8],
    /// The transmit queue has packets we left (see [`VsockHost::tx_blocked`]).
    tx_stalled: bool,
}

const USED_RING_FAULT: &str = "vsock bad used ring";

impl Vsock {
    pub fn new(host: Arc<Mutex<VsockHost>>, guest_cid: u64) -> Self {
        Vsock { host, config: guest_cid.to_le_bytes(), tx_stalled: false }
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let host = self.host.clone();
        let mut stalled = false;
        let used = queue::process(queue, mem, report, USED_RING_FAULT, |chain| {
            let mut host = crate::lock(&host);
            if host.tx_blocked() {
                stalled = true;
                return Handled::Later;
            }
            let head = chain.head_index();
            match chain.reader(mem) {
                Ok(mut r) => match r.read_obj::<Header>() {
                    Ok(h) => {
                        let len = h.len as usize;
                        if len > r.available_bytes() || len > BUF_ALLOC as usize {
                            guest_fault!(report, "vsock bad packet", "len {len} with {} bytes", r.available_bytes());
                        } else {
                            host.guest_packet(h, &mut r);
                        }
                    }
                    Err(e) => guest_fault!(report, "vsock bad descriptor chain", "head {head}: {e}"),
                },
                Err(e) => guest_fault!(report, "vsock bad descriptor chain", "head {head}: {e}"),
            }
            Handled::Used(0)
        });
        self.tx_stalled = stalled;
        used
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
            if !self.tx_stalled || crate::lock(&self.host).tx_blocked() {
                return used;
            }
            match queues.get_mut(TX) {
                Some(q) if q.ready() => used |= self.transmit(q, mem, report),
                _ => return used,
            }
        }
    }

    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut host = crate::lock(&self.host);
        queue::process(queue, mem, report, USED_RING_FAULT, |chain| {
            let Some((h, payload)) = host.rx.pop_front() else { return Handled::Later };
            let head = chain.head_index();
            match chain.writer(mem) {
                Ok(mut w) if w.available_bytes() >= HDR_LEN + payload.len() => match w.write_obj(h).and_then(|_| w.write_all(&payload)) {
                    Ok(()) => return Handled::Used((HDR_LEN + payload.len()) as u32),
                    Err(e) => guest_fault!(report, "vsock bad descriptor chain", "head {head}: {e}"),
                },
                Ok(w) => guest_fault!(report, "vsock receive buffer too small", "{} bytes", w.available_bytes()),
                Err(e) => guest_fault!(report, "vsock bad descriptor chain", "head {head}: {e}"),
            }
            Handled::Used(0)
        })
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
    fn read_config(&self, offset: u64, data: &mut [u8]) -> bool {
        read_config_bytes(&self.config, offset, data)
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
    fn host_event(&mut self, _source: usize, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        self.pump(queues, mem, report)
    }
    fn reset(&mut self) {
        self.tx_stalled = false;
        crate::lock(&self.host).reset();
    }
}

//! virtio-fs (device id 26) through a vhost-user backend such as
//! virtiofsd: rpc-vmm is the vhost-user frontend on the virtio-mmio
//! transport, the backend serves the FUSE requests straight from the
//! guest's rings.
//!
//! Setup (when the VM is built): connect to the backend's unix socket,
//! SET_OWNER, GET_FEATURES, GET/SET_PROTOCOL_FEATURES (MQ, REPLY_ACK),
//! GET_QUEUE_NUM and SET_MEM_TABLE with the guest's memfd regions (see
//! `memory::create`; guest memory is shared whenever an fs device exists).
//! When the driver sets DRIVER_OK ([`VirtioDevice::activate`]):
//! SET_FEATURES with what it accepted, then per ready queue
//! SET_VRING_NUM/ADDR/BASE/CALL/KICK/ENABLE. A guest reset (status 0)
//! stops the started rings with GET_VRING_BASE.
//!
//! Kicks never reach the VMM: each queue's eventfd is a KVM ioeventfd on
//! the QueueNotify register (datamatch = queue index), handed to the
//! backend as its kick fd. Calls go through [`FsRelay`] (see there why).
//!
//! Every socket exchange is bounded by a watchdog (10 s; past it the
//! socket is shut down), so a stuck backend cannot hang a vCPU or the
//! setup; a backend that goes away (or is cut off so) is reported once
//! (`rpc-vmm: virtio-fs TAG: vhost-user backend disconnected`), the
//! device is marked DEVICE_NEEDS_RESET with a configuration interrupt and
//! the VM keeps running (its other devices are unaffected); restarting
//! the device then fails with a reported error.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_ioctls::{IoEventAddress, VmFd};
use vhost::vhost_user::message::{VhostUserHeaderFlag, VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryBackend};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::mmio::MmioTransport;
use super::{read_config_bytes, ActivateError, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::lock;
use crate::memory::GuestMemoryMmap;
use crate::report::Reporter;

pub const TYPE_FS: u32 = 26;
/// The longest tag (virtio spec: 36 bytes, not NUL-terminated when full).
pub const TAG_LEN: usize = 36;
/// One high-priority queue and one request queue (virtiofsd serves one).
const REQUEST_QUEUES: u32 = 1;
const NUM_QUEUES: usize = 1 + REQUEST_QUEUES as usize;
const QUEUE_SIZE: u16 = 256;
/// The offset of QueueNotify in the virtio-mmio window.
const QUEUE_NOTIFY: u64 = 0x50;
/// The longest one exchange with the backend may take (the setup, one
/// activation, one GET_VRING_BASE); see [`Watchdog`].
const BACKEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The virtio ring features passed through to the backend, if it has
/// them (VIRTIO_F_VERSION_1, which it must have, the transport adds).
const RING_FEATURES: u64 =
    (1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC) | (1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX);

/// Errors of the virtio-fs frontend.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("tag {0:?}: want 1 to 36 bytes without NUL")]
    BadTag(String),
    #[error("vhost-user backend socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("vhost-user {what}: {source}")]
    Protocol {
        what: &'static str,
        #[source]
        source: vhost::Error,
    },
    #[error("vhost-user backend lacks {0}")]
    BackendFeature(&'static str),
    #[error("vhost-user backend has {have} queues, need {need}")]
    QueueCount { have: u64, need: usize },
    #[error("queue {index}: {why}")]
    Queue { index: usize, why: &'static str },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("vhost-user backend disconnected")]
    Disconnected,
    #[error("vhost-user backend did not answer within {0:?}; disconnected from it ({1})")]
    Timeout(Duration, String),
}

type FsResult<T> = std::result::Result<T, FsError>;

fn proto(what: &'static str) -> impl FnOnce(vhost::Error) -> FsError {
    move |source| FsError::Protocol { what, source }
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> FsError {
    move |source| FsError::Io { what, source }
}

/// The virtio-fs device model: the vhost-user frontend of one backend.
pub struct Fs {
    tag: String,
    config: [u8; TAG_LEN + 4],
    frontend: Frontend,
    features: u64,
    kicks: Vec<EventFd>,
    calls: Vec<EventFd>,
    /// The queues the backend runs (between activation and reset).
    started: [bool; NUM_QUEUES],
    /// Set by the relay when the backend's socket hangs up.
    broken: Arc<AtomicBool>,
    report: Arc<Reporter>,
    watchdog: Watchdog,
    /// The relay thread, once started ([`FsHost::start`]); stopped when
    /// the device goes.
    _relay: Arc<Mutex<Option<FsRelay>>>,
}

/// What the VM needs besides the device model: the kick eventfds (to
/// register as ioeventfds), the relay's inputs and where its handle goes.
pub struct FsHost {
    kicks: Vec<EventFd>,
    relay: Relay,
    /// The device's slot for the relay thread's handle.
    slot: Arc<Mutex<Option<FsRelay>>>,
}

/// What the relay thread owns.
struct Relay {
    tag: String,
    calls: Vec<EventFd>,
    socket: UnixStream,
    broken: Arc<AtomicBool>,
}

/// The setup exchange with the backend; returns its virtio features.
fn handshake(frontend: &mut Frontend, mem: &GuestMemoryMmap) -> FsResult<u64> {
    frontend.set_owner().map_err(proto("SET_OWNER"))?;
    let backend_features = frontend.get_features().map_err(proto("GET_FEATURES"))?;
    let protocol_bit = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
    if backend_features & protocol_bit == 0 {
        return Err(FsError::BackendFeature("VHOST_USER_F_PROTOCOL_FEATURES"));
    }
    if backend_features & VIRTIO_F_VERSION_1 == 0 {
        return Err(FsError::BackendFeature("VIRTIO_F_VERSION_1"));
    }
    let offered = frontend.get_protocol_features().map_err(proto("GET_PROTOCOL_FEATURES"))?;
    let wanted = offered & (VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK);
    frontend.set_protocol_features(wanted).map_err(proto("SET_PROTOCOL_FEATURES"))?;
    if wanted.contains(VhostUserProtocolFeatures::REPLY_ACK) {
        // Every request is acknowledged: a backend's refusal is an
        // error here, not a silently dead ring later.
        frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
    }
    if wanted.contains(VhostUserProtocolFeatures::MQ) {
        let have = frontend.get_queue_num().map_err(proto("GET_QUEUE_NUM"))?;
        if have < NUM_QUEUES as u64 {
            return Err(FsError::QueueCount { have, need: NUM_QUEUES });
        }
    }
    let regions = mem
        .iter()
        .map(VhostUserMemoryRegionInfo::from_guest_region)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(proto("guest memory region (not shared)"))?;
    frontend.set_mem_table(&regions).map_err(proto("SET_MEM_TABLE"))?;
    Ok(backend_features)
}

impl Fs {
    /// Connects to the vhost-user backend at `socket` and sets it up for
    /// the guest memory `mem`, which must be shared (file-backed).
    pub fn new(tag: &str, socket: &Path, mem: &GuestMemoryMmap, report: Arc<Reporter>) -> FsResult<(Fs, FsHost)> {
        if tag.is_empty() || tag.len() > TAG_LEN || tag.contains('\0') {
            return Err(FsError::BadTag(tag.to_string()));
        }
        let stream = UnixStream::connect(socket).map_err(|source| FsError::Connect { path: socket.to_owned(), source })?;
        let watch = stream.try_clone().map_err(io("socket clone"))?;
        let broken = Arc::new(AtomicBool::new(false));
        let watchdog = Watchdog::new(stream.try_clone().map_err(io("socket clone"))?, broken.clone())?;
        let mut frontend = Frontend::from_stream(stream, NUM_QUEUES as u64);
        let backend_features = {
            let _armed = watchdog.arm();
            handshake(&mut frontend, mem).map_err(|e| watchdog.explain(e))?
        };

        let new_fds = || -> FsResult<Vec<EventFd>> { (0..NUM_QUEUES).map(|_| EventFd::new(EFD_NONBLOCK).map_err(io("eventfd"))).collect() };
        let (kicks, calls) = (new_fds()?, new_fds()?);
        let clone = |fds: &[EventFd]| -> FsResult<Vec<EventFd>> { fds.iter().map(|f| f.try_clone().map_err(io("eventfd"))).collect() };
        let relay = Arc::new(Mutex::new(None));
        let host = FsHost {
            kicks: clone(&kicks)?,
            relay: Relay { tag: tag.to_string(), calls: clone(&calls)?, socket: watch, broken: broken.clone() },
            slot: relay.clone(),
        };

        let mut config = [0u8; TAG_LEN + 4];
        config[..tag.len()].copy_from_slice(tag.as_bytes());
        config[TAG_LEN..].copy_from_slice(&REQUEST_QUEUES.to_le_bytes());
        let fs = Fs {
            tag: tag.to_string(),
            config,
            frontend,
            features: backend_features & RING_FEATURES,
            kicks,
            calls,
            started: [false; NUM_QUEUES],
            broken,
            report,
            watchdog,
            _relay: relay,
        };
        Ok((fs, host))
    }

    fn start_queues(&mut self, queues: &[Queue], mem: &GuestMemoryMmap, driver_features: u64) -> FsResult<()> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(FsError::Disconnected);
        }
        // What the driver took of what we offered (the transport offers
        // VIRTIO_F_VERSION_1 besides ours; the backend has it).
        let offered = self.features | VIRTIO_F_VERSION_1;
        let features = (driver_features & offered) | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        self.frontend.set_features(features).map_err(proto("SET_FEATURES"))?;
        let hva = |index: usize, gpa: u64, len: u64| -> FsResult<u64> {
            ring_hva(mem, gpa, len).ok_or(FsError::Queue { index, why: "ring outside memory" })
        };
        for (index, q) in queues.iter().enumerate().take(NUM_QUEUES) {
            if !q.ready() {
                continue;
            }
            if !q.is_valid(mem) {
                return Err(FsError::Queue { index, why: "bad size or rings outside memory" });
            }
            let n = u64::from(q.size());
            let ring = VringConfigData {
                queue_max_size: q.max_size(),
                queue_size: q.size(),
                flags: 0,
                desc_table_addr: hva(index, q.desc_table(), 16 * n)?,
                used_ring_addr: hva(index, q.used_ring(), 6 + 8 * n)?,
                avail_ring_addr: hva(index, q.avail_ring(), 6 + 2 * n)?,
                log_addr: None,
            };
            self.frontend.set_vring_num(index, q.size()).map_err(proto("SET_VRING_NUM"))?;
            self.frontend.set_vring_addr(index, &ring).map_err(proto("SET_VRING_ADDR"))?;
            self.frontend.set_vring_base(index, q.next_avail()).map_err(proto("SET_VRING_BASE"))?;
            self.frontend.set_vring_call(index, &self.calls[index]).map_err(proto("SET_VRING_CALL"))?;
            self.frontend.set_vring_kick(index, &self.kicks[index]).map_err(proto("SET_VRING_KICK"))?;
            self.started[index] = true;
            self.frontend.set_vring_enable(index, true).map_err(proto("SET_VRING_ENABLE"))?;
        }
        Ok(())
    }
}

/// The backend's address of a ring of `len` bytes at guest address `gpa`,
/// if all of it lies in one memory region (the backend gets one pointer
/// per ring, valid only inside the mapping of one region): checked here
/// besides `Queue::is_valid`, which accepts a ring spanning two regions
/// that touch in guest addresses but not in host ones.
fn ring_hva(mem: &GuestMemoryMmap, gpa: u64, len: u64) -> Option<u64> {
    let slice = mem.get_slice(GuestAddress(gpa), usize::try_from(len).ok()?).ok()?;
    Some(slice.ptr_guard().as_ptr() as u64)
}

impl VirtioDevice for Fs {
    fn device_type(&self) -> u32 {
        TYPE_FS
    }
    fn name(&self) -> &'static str {
        "virtio-fs"
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; NUM_QUEUES]
    }
    fn features(&self) -> u64 {
        self.features
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) -> bool {
        read_config_bytes(&self.config, offset, data)
    }
    /// Never called: KVM's ioeventfds take every notify of our queues (a
    /// 4-byte write of 0 or 1 to QueueNotify), and the transport refuses
    /// every other before it gets here.
    fn process_queue(&mut self, _index: usize, _queues: &mut [Queue], _mem: &GuestMemoryMmap, _report: &Reporter) -> bool {
        false
    }
    fn activate(&mut self, queues: &[Queue], mem: &GuestMemoryMmap, driver_features: u64) -> std::result::Result<(), ActivateError> {
        let result = {
            let _armed = self.watchdog.arm();
            self.start_queues(queues, mem, driver_features)
        };
        result.map_err(|e| {
            let e = self.watchdog.explain(e);
            let guest = matches!(e, FsError::Queue { .. });
            let text = format!("{} {}: {e}", self.name(), self.tag);
            if guest {
                ActivateError::Guest(text)
            } else {
                ActivateError::Backend(text)
            }
        })
    }
    fn reset(&mut self) {
        for index in 0..NUM_QUEUES {
            if !std::mem::take(&mut self.started[index]) || self.broken.load(Ordering::SeqCst) {
                continue;
            }
            let result = {
                let _armed = self.watchdog.arm();
                self.frontend.get_vring_base(index).map_err(proto("GET_VRING_BASE"))
            };
            if let Err(e) = result {
                let e = self.watchdog.explain(e);
                self.report.host_error("virtio-fs backend error", format_args!("{}: queue {index}: {e}", self.tag));
            }
        }
    }
}

impl FsHost {
    /// Registers the kick eventfds as ioeventfds on the QueueNotify
    /// register of the device's window at `base`, and starts the relay of
    /// the backend's calls to `transport` (owned by the device: it stops
    /// when the device goes).
    pub fn start(self, vm: &VmFd, base: u64, transport: Weak<Mutex<MmioTransport>>) -> crate::Result<()> {
        // The thread gets the relay's inputs, not its own handle's slot.
        let FsHost { kicks, relay, slot } = self;
        // (KVM keeps its own reference to each eventfd.)
        for (index, kick) in kicks.iter().enumerate() {
            vm.register_ioevent(kick, &IoEventAddress::Mmio(base + QUEUE_NOTIFY), index as u32)
                .map_err(crate::Error::kvm("KVM_IOEVENTFD"))?;
        }
        let epoll = Epoll::new().map_err(io("epoll"))?;
        let stop = EventFd::new(EFD_NONBLOCK).map_err(io("eventfd"))?;
        let stop2 = stop.try_clone().map_err(io("eventfd"))?;
        let add = |fd: i32, events: EventSet, token: u64| {
            epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(events, token)).map_err(io("epoll_ctl"))
        };
        add(stop.as_raw_fd(), EventSet::IN, STOP)?;
        add(relay.socket.as_raw_fd(), EventSet::READ_HANG_UP, SOCKET)?;
        for (index, call) in relay.calls.iter().enumerate() {
            add(call.as_raw_fd(), EventSet::IN, index as u64)?;
        }
        let thread = spawn_quiet(&format!("virtio-fs-{}", relay.tag), move || relay.run(epoll, stop2, transport));
        let thread = thread.map_err(|e| crate::Error::Thread(e.to_string()))?;
        *lock(&slot) = Some(FsRelay { stop, thread: Some(thread) });
        Ok(())
    }
}

impl Relay {
    /// The relay loop: a backend call sets the used-ring bit and raises
    /// the device's IRQ; a hang-up of the backend's socket marks the
    /// device broken; the stop eventfd ends it.
    fn run(self, epoll: Epoll, _stop: EventFd, transport: Weak<Mutex<MmioTransport>>) {
        let mut events = vec![EpollEvent::default(); NUM_QUEUES + 2];
        loop {
            let n = match epoll.wait(-1, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("rpc-vmm: virtio-fs {}: epoll_wait: {e}; no more interrupts from the backend", self.tag);
                    return;
                }
            };
            for ev in &events[..n] {
                let token = ev.data();
                if token == STOP {
                    return;
                }
                let Some(t) = transport.upgrade() else { return };
                if token == SOCKET {
                    let _ = epoll.ctl(ControlOperation::Delete, self.socket.as_raw_fd(), EpollEvent::default());
                    self.broken.store(true, Ordering::SeqCst);
                    eprintln!("rpc-vmm: virtio-fs {}: {}; the device needs a reset, the VM goes on", self.tag, FsError::Disconnected);
                    lock(&t).backend_failed();
                } else if let Some(call) = usize::try_from(token).ok().and_then(|i| self.calls.get(i)) {
                    if call.read().is_ok() {
                        lock(&t).backend_interrupt();
                    }
                }
            }
        }
    }
}

const STOP: u64 = u64::MAX;
const SOCKET: u64 = u64::MAX - 1;

/// The thread relaying a vhost-user backend's calls (used-buffer
/// notifications) to the guest; stopped and joined when dropped.
///
/// Why not hand the device's irqfd to the backend as its call fd: the
/// guest's virtio-mmio interrupt handler reads InterruptStatus first and
/// ignores the interrupt when bit 0 (used ring) is clear, and an irqfd
/// alone cannot set that register (Linux would soon disable the IRQ line
/// as spurious). Reporting the bit as always set would work but lies to
/// the driver on every shared or configuration interrupt. So each queue
/// gets its own call eventfd, and this thread, blocked in epoll on them,
/// sets the bit through the transport and triggers the irqfd: one thread
/// wakeup per interrupt, and the thread also watches the backend's
/// socket for a hang-up.
pub struct FsRelay {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FsRelay {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(t) = self.thread.take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// Bounds every exchange with the backend: the vhost crate retries a
/// socket read that times out (EAGAIN) forever, so SO_RCVTIMEO cannot do
/// it. While armed, a thread waits for the deadline; past it, it shuts
/// the socket down (the pending read then ends, as after a disconnect)
/// and marks the device broken.
struct Watchdog {
    state: Arc<(Mutex<Watch>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Watch {
    deadline: Option<Instant>,
    fired: bool,
    stop: bool,
}

/// An armed [`Watchdog`]; disarms it when dropped.
struct Armed(Arc<(Mutex<Watch>, Condvar)>);

impl Watchdog {
    fn new(socket: UnixStream, broken: Arc<AtomicBool>) -> FsResult<Watchdog> {
        let state = Arc::new((Mutex::new(Watch::default()), Condvar::new()));
        let state2 = state.clone();
        let thread = spawn_quiet("virtio-fs-watch", move || {
            let (m, cv) = &*state2;
            let mut w = lock(m);
            loop {
                if w.stop {
                    return;
                }
                w = match w.deadline {
                    None => cv.wait(w).unwrap_or_else(|e| e.into_inner()),
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            w.deadline = None;
                            w.fired = true;
                            broken.store(true, Ordering::SeqCst);
                            let _ = socket.shutdown(std::net::Shutdown::Both);
                            continue;
                        }
                        cv.wait_timeout(w, d - now).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0)
                    }
                };
            }
        })
        .map_err(io("watchdog thread"))?;
        Ok(Watchdog { state, thread: Some(thread) })
    }

    fn arm(&self) -> Armed {
        let (m, cv) = &*self.state;
        lock(m).deadline = Some(Instant::now() + BACKEND_TIMEOUT);
        cv.notify_one();
        Armed(self.state.clone())
    }

    /// `e`, or a timeout if the watchdog cut the exchange short.
    fn explain(&self, e: FsError) -> FsError {
        if lock(&self.state.0).fired {
            FsError::Timeout(BACKEND_TIMEOUT, e.to_string())
        } else {
            e
        }
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        lock(&self.0 .0).deadline = None;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (m, cv) = &*self.state;
        lock(m).stop = true;
        cv.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Spawns a helper thread with every signal blocked: these threads start
/// in `Vm::new`, before `Vm::run` blocks the stop signals, and a SIGTERM
/// delivered to one of them would kill the process instead of reaching
/// the event loop's signalfd.
fn spawn_quiet<F: FnOnce() + Send + 'static>(name: &str, f: F) -> std::io::Result<JoinHandle<()>> {
    // SAFETY: plain libc calls on local, initialised sets; the old mask
    // is restored right after the spawn.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let t = std::thread::Builder::new().name(name.to_string()).spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring must lie in one region: across two regions that touch, or
    /// past the end of memory, the backend is not told of it.
    #[test]
    fn rings_stay_inside_one_region() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000), (GuestAddress(0x10000), 0x10000)]).unwrap();
        let base = mem.get_host_address(GuestAddress(0x1000)).unwrap() as u64;
        assert_eq!(ring_hva(&mem, 0x1000, 0x1000), Some(base));
        assert_eq!(ring_hva(&mem, 0xff00, 0x100), Some(base + 0xef00));
        assert_eq!(ring_hva(&mem, 0xff00, 0x101), None, "spans two regions");
        assert_eq!(ring_hva(&mem, 0x1ff00, 0x1000), None, "runs past the end");
        assert_eq!(ring_hva(&mem, 0x20000, 16), None, "outside");
        assert_eq!(ring_hva(&mem, u64::MAX - 8, 16), None, "wraps");
    }
}

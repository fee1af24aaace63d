//! Fuzz targets of what a guest writes (issue 19, "the suite"): the
//! virtio-mmio registers and the virtqueues' descriptor chains, driven at
//! the function level (no KVM: a transport over 64 KiB of guest memory),
//! with `testkit::fuzz` on the stable toolchain.
//!
//! An input is a small program of guest actions ([`Op`]): register reads
//! and writes, writes to guest memory, descriptor-table entries, available
//! ring entries, queue notifies, host events. Seeds drive each device
//! properly (a disk read, a frame sent and received, console output, a
//! vsock connect); mutations break them. Nothing may panic, and a device
//! must keep answering reads of its registers.
//!
//! `cargo test -p vmm --test fuzz`: 2 s a device with a fixed seed;
//! `make fuzz` runs longer (`RPC_FUZZ_SECS`, `RPC_FUZZ_SEED=time`).

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use testkit::fuzz::{self, Budget, Kind, Mutator};
use vm_memory::{Bytes, GuestAddress};
use vmm::devices::virtio::block::Block;
use vmm::devices::virtio::console::{Console, ConsoleHost};
use vmm::devices::virtio::mmio::MmioTransport;
use vmm::devices::virtio::net::{Net, NetHost};
use vmm::devices::virtio::vsock::{Vsock, VsockHost};
use vmm::devices::virtio::VirtioDevice;
use vmm::memory::GuestMemoryMmap;
use vmm::report::Reporter;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM: u64 = 0x10000;
/// Where queue `q`'s rings go in the seeds' setup: descriptor table,
/// available ring and used ring, 4 KiB apart.
const fn ring(q: u64) -> (u64, u64, u64) {
    let base = 0x1000 + q * 0x3000;
    (base, base + 0x1000, base + 0x2000)
}
/// Data buffers of the seeds.
const DATA: u64 = 0xd000;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus").join(target)
}

/// One guest action. The encoding: an opcode byte, then its operands
/// (little-endian), as [`Op::encode`] writes them.
#[derive(Debug, Clone)]
enum Op {
    /// A register write of `data` (1, 2, 4 or 8 bytes) at `off`.
    Write { off: u16, data: Vec<u8> },
    /// A register read of `len` bytes at `off`.
    Read { off: u16, len: u8 },
    /// Guest memory at `addr` gets `data`.
    Mem { addr: u16, data: Vec<u8> },
    /// The driver's whole setup (reset, features, queues 0 to `q` of size
    /// `size` at the seeds' ring addresses, DRIVER_OK).
    Setup { q: u8, size: u16, features: u32 },
    /// Descriptor `i` of queue `q`'s table.
    Desc { q: u8, i: u16, addr: u64, len: u32, flags: u16, next: u16 },
    /// `head` made available on queue `q` (the index advances).
    Avail { q: u8, head: u16 },
    /// The driver notifies queue `q`.
    Notify { q: u8 },
    /// The host side of the device had an event (`source`), with `data`
    /// sent from the host first where the device has a host end (a frame
    /// on the tap).
    Host { source: u8, data: Vec<u8> },
}

impl Op {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::Write { off, data } => {
                out.push(0);
                out.extend_from_slice(&off.to_le_bytes());
                out.push(data.len() as u8);
                out.extend_from_slice(data);
            }
            Op::Read { off, len } => {
                out.push(1);
                out.extend_from_slice(&off.to_le_bytes());
                out.push(*len);
            }
            Op::Mem { addr, data } => {
                out.push(2);
                out.extend_from_slice(&addr.to_le_bytes());
                out.push(data.len() as u8);
                out.extend_from_slice(data);
            }
            Op::Setup { q, size, features } => {
                out.push(3);
                out.push(*q);
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&features.to_le_bytes());
            }
            Op::Desc { q, i, addr, len, flags, next } => {
                out.push(4);
                out.push(*q);
                out.extend_from_slice(&i.to_le_bytes());
                out.extend_from_slice(&addr.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&flags.to_le_bytes());
                out.extend_from_slice(&next.to_le_bytes());
            }
            Op::Avail { q, head } => {
                out.push(5);
                out.push(*q);
                out.extend_from_slice(&head.to_le_bytes());
            }
            Op::Notify { q } => {
                out.push(6);
                out.push(*q);
            }
            Op::Host { source, data } => {
                out.push(7);
                out.push(*source);
                out.push(data.len() as u8);
                out.extend_from_slice(data);
            }
        }
    }
}

/// A reader of the operands; short input reads as zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        let b = self.bytes(2);
        u16::from_le_bytes([b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)])
    }
    fn u32(&mut self) -> u32 {
        let mut a = [0u8; 4];
        for (i, x) in self.bytes(4).into_iter().enumerate() {
            a[i] = x;
        }
        u32::from_le_bytes(a)
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
}

fn decode(data: &[u8]) -> Vec<Op> {
    let mut i = Input(data);
    let mut ops = Vec::new();
    while !i.0.is_empty() && ops.len() < 512 {
        let op = match i.u8() % 8 {
            0 => {
                let off = i.u16();
                let n = i.u8() as usize;
                Op::Write { off, data: i.bytes(n % 9) }
            }
            1 => Op::Read { off: i.u16(), len: i.u8() % 9 },
            2 => {
                let addr = i.u16();
                let n = i.u8() as usize;
                Op::Mem { addr, data: i.bytes(n) }
            }
            3 => Op::Setup { q: i.u8(), size: i.u16(), features: i.u32() },
            4 => Op::Desc { q: i.u8(), i: i.u16(), addr: i.u64(), len: i.u32(), flags: i.u16(), next: i.u16() },
            5 => Op::Avail { q: i.u8(), head: i.u16() },
            6 => Op::Notify { q: i.u8() },
            _ => {
                let source = i.u8();
                let n = i.u8() as usize;
                Op::Host { source, data: i.bytes(n) }
            }
        };
        ops.push(op);
    }
    ops
}

fn w32(t: &mut MmioTransport, off: u64, v: u32) {
    t.write(off, &v.to_le_bytes());
}

fn r32(t: &mut MmioTransport, off: u64) -> u32 {
    let mut d = [0u8; 4];
    t.read(off, &mut d);
    u32::from_le_bytes(d)
}

/// A device under test and what it needs around it.
struct Rig {
    t: MmioTransport,
    mem: GuestMemoryMmap,
    /// The host end of a tap (net).
    tap_peer: Option<OwnedFd>,
    /// The next available index of each queue, as the driver keeps it.
    avail_idx: [u16; 8],
    sizes: [u16; 8],
}

impl Rig {
    /// Runs the guest's actions; returns whether the device used a buffer
    /// (the used-ring interrupt bit), which tells the fuzzer the input got
    /// through the transport into the device.
    fn run(&mut self, ops: &[Op]) -> bool {
        for op in ops {
            match op {
                Op::Write { off, data } => self.t.write(u64::from(*off), data),
                Op::Read { off, len } => {
                    let mut d = vec![0u8; *len as usize];
                    self.t.read(u64::from(*off), &mut d);
                }
                Op::Mem { addr, data } => {
                    let _ = self.mem.write_slice(data, GuestAddress(u64::from(*addr)));
                }
                Op::Setup { q, size, features } => self.setup(*q, *size, *features),
                Op::Desc { q, i, addr, len, flags, next } => {
                    let (desc, _, _) = ring(u64::from(*q % 3));
                    let size = self.sizes[(*q % 8) as usize].max(1);
                    let at = desc + 16 * u64::from(*i % size);
                    // Addresses mostly inside guest memory, sometimes not.
                    let addr = if addr >> 63 == 1 { *addr } else { addr % MEM };
                    let mut d = Vec::with_capacity(16);
                    d.extend_from_slice(&addr.to_le_bytes());
                    d.extend_from_slice(&len.to_le_bytes());
                    d.extend_from_slice(&flags.to_le_bytes());
                    d.extend_from_slice(&next.to_le_bytes());
                    let _ = self.mem.write_slice(&d, GuestAddress(at));
                }
                Op::Avail { q, head } => {
                    let qi = (*q % 8) as usize;
                    let (_, avail, _) = ring(u64::from(*q % 3));
                    let size = self.sizes[qi].max(1);
                    let idx = self.avail_idx[qi];
                    let _ = self.mem.write_obj(*head, GuestAddress(avail + 4 + 2 * u64::from(idx % size)));
                    self.avail_idx[qi] = idx.wrapping_add(1);
                    let _ = self.mem.write_obj(self.avail_idx[qi], GuestAddress(avail + 2));
                }
                Op::Notify { q } => w32(&mut self.t, 0x050, u32::from(*q % 8)),
                Op::Host { source, data } => {
                    if let Some(peer) = &self.tap_peer {
                        // SAFETY: a valid fd and buffer; a full socket just drops it.
                        unsafe { libc::send(fd(peer), data.as_ptr().cast(), data.len(), libc::MSG_DONTWAIT) };
                    }
                    self.t.host_event(usize::from(*source % 4));
                }
            }
        }
        // Whatever happened, the device still answers: magic and version.
        assert_eq!(r32(&mut self.t, 0x000), 0x7472_6976, "magic");
        assert_eq!(r32(&mut self.t, 0x004), 2, "version");
        r32(&mut self.t, 0x060) & 1 != 0
    }

    /// The driver's setup sequence, as Linux does it: reset, features,
    /// queues 0 to `last`, DRIVER_OK.
    fn setup(&mut self, last: u8, size: u16, features: u32) {
        let t = &mut self.t;
        w32(t, 0x070, 0);
        w32(t, 0x070, 1 | 2);
        w32(t, 0x014, 0);
        let f0 = r32(t, 0x010);
        w32(t, 0x024, 0);
        w32(t, 0x020, f0 & features);
        w32(t, 0x024, 1);
        w32(t, 0x020, 1);
        w32(t, 0x070, 1 | 2 | 8);
        for q in 0..=u64::from(last % 4) {
            let (desc, avail, used) = ring(q % 3);
            w32(&mut self.t, 0x030, q as u32);
            let max = r32(&mut self.t, 0x034);
            let size = u32::from(size).min(max.max(1));
            w32(&mut self.t, 0x038, size);
            for (off, a) in [(0x080, desc), (0x090, avail), (0x0a0, used)] {
                w32(&mut self.t, off, a as u32);
                w32(&mut self.t, off + 4, (a >> 32) as u32);
            }
            w32(&mut self.t, 0x044, 1);
            self.sizes[q as usize] = size as u16;
            self.avail_idx[q as usize] = 0;
            // Fresh rings: the driver zeroes them.
            let _ = self.mem.write_slice(&[0u8; 0x3000], GuestAddress(desc));
        }
        w32(&mut self.t, 0x070, 1 | 2 | 8 | 4);
    }
}

fn fd(f: &OwnedFd) -> RawFd {
    std::os::fd::AsRawFd::as_raw_fd(f)
}

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap()
}

fn rig(device: Box<dyn VirtioDevice>, report: &Arc<Reporter>, tap_peer: Option<OwnedFd>) -> Rig {
    let mem = memory();
    let t = MmioTransport::new(device, mem.clone(), EventFd::new(EFD_NONBLOCK).unwrap(), report.clone()).unwrap();
    Rig { t, mem, tap_peer, avail_idx: [0; 8], sizes: [0; 8] }
}

fn encode(ops: &[Op]) -> Vec<u8> {
    let mut v = Vec::new();
    for op in ops {
        op.encode(&mut v);
    }
    v
}

/// A chain of descriptors at DATA: `bufs` of (len, device-writable).
fn chain(q: u8, first: u16, bufs: &[(u32, bool)]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut addr = DATA;
    for (k, (len, write)) in bufs.iter().enumerate() {
        let i = first + k as u16;
        let more = k + 1 < bufs.len();
        let flags = if more { 1 } else { 0 } | if *write { 2 } else { 0 };
        ops.push(Op::Desc { q, i, addr, len: *len, flags, next: i + 1 });
        addr += u64::from(*len);
    }
    ops.push(Op::Avail { q, head: first });
    ops
}

fn run_target(name: &str, seeds: Vec<Vec<Op>>, mut make: impl FnMut() -> Rig) {
    // Each seed must get a buffer used: else the mutants start from an
    // input the device never looks at.
    for (i, s) in seeds.iter().enumerate() {
        assert!(make().run(&decode(&encode(s))), "{name}: seed {i} had no buffer used: {s:?}");
    }
    let seeds: Vec<Vec<u8>> = seeds.iter().map(|s| encode(s)).collect();
    let m = Mutator::new(Kind::Bytes, 4096, &[], &seeds);
    fuzz::run(name, &corpus(name), &seeds, &m, &Budget::from_env(2.0), |data| make().run(&decode(data)));
}

/// One reporter per target: it prints the first few faults of each kind
/// once, not for every input.
fn reporter() -> Arc<Reporter> {
    Arc::new(Reporter::new(false))
}

#[test]
fn fuzz_virtio_block() {
    let dir = std::env::temp_dir().join(format!("rpc-fuzz-vmm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0x5au8; 64 << 10]).unwrap();
    let report = reporter();
    let hdr = |t: u32, sector: u64| {
        let mut h = t.to_le_bytes().to_vec();
        h.extend_from_slice(&[0; 4]);
        h.extend_from_slice(&sector.to_le_bytes());
        h
    };
    let read = [
        vec![Op::Setup { q: 0, size: 8, features: u32::MAX }, Op::Mem { addr: DATA as u16, data: hdr(0, 1) }],
        chain(0, 0, &[(16, false), (512, true), (1, true)]),
        vec![Op::Notify { q: 0 }],
    ]
    .concat();
    let write = [
        vec![Op::Setup { q: 0, size: 8, features: 0 }, Op::Mem { addr: DATA as u16, data: hdr(1, 2) }],
        chain(0, 0, &[(16, false), (1024, false), (1, true)]),
        vec![Op::Notify { q: 0 }],
    ]
    .concat();
    let id_flush = [
        vec![Op::Setup { q: 0, size: 4, features: u32::MAX }, Op::Mem { addr: DATA as u16, data: hdr(8, 0) }],
        chain(0, 0, &[(16, false), (20, true), (1, true)]),
        vec![Op::Mem { addr: (DATA + 0x100) as u16, data: hdr(4, 0) }],
        chain(0, 3, &[(16, false), (1, true)]),
        vec![Op::Notify { q: 0 }, Op::Read { off: 0x100, len: 8 }],
    ]
    .concat();
    run_target("virtio-block", vec![read, write, id_flush], || rig(Box::new(Block::new(&disk, false, 0).unwrap()), &report, None));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fuzz_virtio_net() {
    let report = reporter();
    let tx = [vec![Op::Setup { q: 1, size: 16, features: u32::MAX }], chain(1, 0, &[(12, false), (60, false)]), vec![Op::Notify { q: 1 }]]
        .concat();
    let rx = [
        vec![Op::Setup { q: 1, size: 16, features: 0 }],
        chain(0, 0, &[(1526, true)]),
        vec![Op::Notify { q: 0 }, Op::Host { source: 0, data: vec![0xab; 60] }, Op::Host { source: 0, data: vec![] }],
    ]
    .concat();
    run_target("virtio-net", vec![tx, rx], || {
        let mut sv = [0; 2];
        assert_eq!(
            // SAFETY: `sv` is a valid array for the two fds.
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()) },
            0
        );
        // SAFETY: both fds were just made and are owned here.
        let (tap, peer) = unsafe { (File::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
        let host = Arc::new(Mutex::new(NetHost::new(tap)));
        rig(Box::new(Net::new(host, [2, 0, 0, 0, 0, 1])), &report, Some(peer))
    });
}

#[test]
fn fuzz_virtio_console() {
    let report = reporter();
    // SAFETY: plain call; the fd lives as long as the test.
    let epoll = unsafe { OwnedFd::from_raw_fd(libc::epoll_create1(libc::EPOLL_CLOEXEC)) };
    let out = [
        vec![Op::Setup { q: 1, size: 8, features: u32::MAX }, Op::Mem { addr: DATA as u16, data: b"hello".to_vec() }],
        chain(1, 0, &[(5, false)]),
        vec![Op::Notify { q: 1 }],
    ]
    .concat();
    // Receive buffers given (no host input comes: the port has no host
    // end), then output in a chain of two.
    let input = [
        vec![Op::Setup { q: 1, size: 8, features: 0 }],
        chain(0, 0, &[(64, true)]),
        vec![Op::Notify { q: 0 }, Op::Host { source: 0, data: vec![] }],
        chain(1, 2, &[(3, false), (4, false)]),
        vec![Op::Notify { q: 1 }],
    ]
    .concat();
    run_target("virtio-console", vec![out, input], || {
        let host = Arc::new(Mutex::new(ConsoleHost::new(None, fd(&epoll), 0)));
        rig(Box::new(Console::new(host)), &report, None)
    });
}

#[test]
fn fuzz_virtio_vsock() {
    let report = reporter();
    let dir = std::env::temp_dir().join(format!("rpc-fuzz-vsock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // SAFETY: plain call; the fd lives as long as the test.
    let epoll = unsafe { OwnedFd::from_raw_fd(libc::epoll_create1(libc::EPOLL_CLOEXEC)) };
    // A connect request from the guest (cid 3, port 1000) to host port 52.
    let mut pkt = Vec::new();
    pkt.extend_from_slice(&3u64.to_le_bytes()); // src_cid
    pkt.extend_from_slice(&2u64.to_le_bytes()); // dst_cid
    pkt.extend_from_slice(&1000u32.to_le_bytes()); // src_port
    pkt.extend_from_slice(&52u32.to_le_bytes()); // dst_port
    pkt.extend_from_slice(&0u32.to_le_bytes()); // len
    pkt.extend_from_slice(&1u16.to_le_bytes()); // type: stream
    pkt.extend_from_slice(&1u16.to_le_bytes()); // op: request
    pkt.extend_from_slice(&0u32.to_le_bytes()); // flags
    pkt.extend_from_slice(&(256u32 * 1024).to_le_bytes()); // buf_alloc
    pkt.extend_from_slice(&0u32.to_le_bytes()); // fwd_cnt
    let connect = [
        vec![Op::Setup { q: 2, size: 8, features: u32::MAX }],
        chain(0, 0, &[(300, true)]),
        vec![Op::Mem { addr: (DATA + 0x400) as u16, data: pkt }],
        vec![Op::Desc { q: 1, i: 0, addr: DATA + 0x400, len: 44, flags: 0, next: 0 }, Op::Avail { q: 1, head: 0 }],
        vec![Op::Notify { q: 1 }, Op::Notify { q: 0 }, Op::Host { source: 0, data: vec![] }],
    ]
    .concat();
    run_target("virtio-vsock", vec![connect], || {
        let host = VsockHost::new(dir.join("v.sock"), 3, fd(&epoll), report.clone()).unwrap();
        rig(Box::new(Vsock::new(Arc::new(Mutex::new(host)), 3)), &report, None)
    });
    let _ = std::fs::remove_dir_all(&dir);
}

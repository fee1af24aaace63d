//! virtio-net on a host tap device (no offloads, no control queue): the
//! guest's frames go to the tap, the tap's frames into the guest's
//! receive buffers with a zeroed virtio_net_hdr_v1.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};

use virtio_queue::{Queue, QueueT};

use super::queue::{self, Handled};
use super::{read_config_bytes, VirtioDevice, TYPE_NET};
use crate::guest_fault;
use crate::memory::GuestMemoryMmap;
use crate::report::Reporter;
use crate::{Error, Result};

const QUEUE_SIZE: u16 = 256;
const RX: usize = 0;
const TX: usize = 1;
const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// virtio_net_hdr_v1: flags, gso_type, hdr_len, gso_size, csum_start,
/// csum_offset, num_buffers.
const HDR_LEN: usize = 12;
/// The largest frame we read from the tap (no GSO: MTU-sized frames).
const FRAME_MAX: usize = 65550;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

/// Opens (creating it if needed) the tap device `name`, non-blocking.
pub fn open_tap(name: &str) -> Result<File> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(Error::Config(format!("tap name {name:?}")));
    }
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|source| Error::File { path: "/dev/net/tun".into(), source })?;
    // SAFETY: ifreq is plain data; TUNSETIFF reads the name and flags.
    unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in name.bytes().enumerate() {
            ifr.ifr_name[i] = b as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI;
        use std::os::fd::AsRawFd;
        if libc::ioctl(tun.as_raw_fd(), TUNSETIFF, &ifr) < 0 {
            return Err(Error::Io { what: "TUNSETIFF", source: std::io::Error::last_os_error() });
        }
    }
    Ok(tun)
}

/// The tap, shared with the event loop (which polls it). A frame is
/// read from it only into a receive buffer the guest gave: until then it
/// waits in the tap.
pub struct NetHost {
    pub tap: File,
}

impl NetHost {
    pub fn new(tap: File) -> Self {
        NetHost { tap }
    }
}

/// The device model.
pub struct Net {
    host: Arc<Mutex<NetHost>>,
    config: [u8; 6],
    /// A frame read from the tap ([`FRAME_MAX`] bytes, allocated on the
    /// first receive and kept).
    frame: Vec<u8>,
}

impl Net {
    pub fn new(host: Arc<Mutex<NetHost>>, mac: [u8; 6]) -> Self {
        Net { host, config: mac, frame: Vec::new() }
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let host = &self.host;
        queue::process(queue, mem, report, USED_RING_FAULT, |chain| {
            let head = chain.head_index();
            match chain.reader(mem) {
                Ok(mut r) if r.available_bytes() >= HDR_LEN && r.available_bytes() <= HDR_LEN + FRAME_MAX => {
                    let mut buf = Vec::with_capacity(r.available_bytes());
                    match r.read_to_end(&mut buf) {
                        // A tap never blocks a writer: a frame it has no
                        // room for is dropped, as on a wire.
                        Ok(_) => {
                            if let Err(e) = crate::lock(host).tap.write(&buf[HDR_LEN..]) {
                                report.quiet("virtio-net tap write failed", format_args!("{e}"));
                            }
                        }
                        Err(e) => guest_fault!(report, "virtio-net bad descriptor chain", "head {head}: {e}"),
                    }
                }
                Ok(r) => guest_fault!(report, "virtio-net bad frame", "head {head}: {} bytes", r.available_bytes()),
                Err(e) => guest_fault!(report, "virtio-net bad descriptor chain", "head {head}: {e}"),
            }
            Handled::Used(0)
        })
    }

    /// Moves frames from the tap into receive buffers while both last.
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let mut host = crate::lock(&self.host);
        if self.frame.len() < FRAME_MAX {
            self.frame.resize(FRAME_MAX, 0);
        }
        let buf = &mut self.frame;
        queue::process(queue, mem, report, USED_RING_FAULT, |chain| {
            let frame = match host.tap.read(buf) {
                Ok(n) if n > 0 => &buf[..n],
                _ => return Handled::Later,
            };
            let head = chain.head_index();
            match chain.writer(mem) {
                Ok(mut w) if w.available_bytes() >= HDR_LEN + frame.len() => {
                    let mut hdr = [0u8; HDR_LEN];
                    hdr[10] = 1; // num_buffers
                    match w.write_all(&hdr).and_then(|_| w.write_all(frame)) {
                        Ok(()) => return Handled::Used((HDR_LEN + frame.len()) as u32),
                        Err(e) => guest_fault!(report, "virtio-net bad descriptor chain", "head {head}: {e}"),
                    }
                }
                Ok(w) => guest_fault!(
                    report,
                    "virtio-net receive buffer too small",
                    "head {head}: {} bytes for a {}-byte frame",
                    w.available_bytes(),
                    frame.len()
                ),
                Err(e) => guest_fault!(report, "virtio-net bad descriptor chain", "head {head}: {e}"),
            }
            Handled::Used(0)
        })
    }
}

const USED_RING_FAULT: &str = "virtio-net bad used ring";

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }
    fn name(&self) -> &'static str {
        "virtio-net"
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        VIRTIO_NET_F_MAC
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) -> bool {
        read_config_bytes(&self.config, offset, data)
    }
    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        match (index, queues) {
            (TX, [_, tx]) => self.transmit(tx, mem, report),
            (RX, [rx, _]) => self.receive(rx, mem, report),
            _ => false,
        }
    }
    fn host_event(&mut self, _source: usize, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        match queues {
            [rx, _] if rx.ready() => self.receive(rx, mem, report),
            _ => false,
        }
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("52:54:00:12:34:56"), Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("52:54:00:12:34:56:78"), None);
        assert_eq!(parse_mac("zz:54:00:12:34:56"), None);
    }
}

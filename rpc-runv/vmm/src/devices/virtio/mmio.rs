//! The virtio-mmio transport, version 2 ("modern"): one 4 KiB register
//! window and one IRQ per device, declared to Linux on its command line.
//! Every register access is checked: a bad width, offset, queue index or
//! state is reported and ignored.

use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::EventFd;

use super::{ActivateError, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::guest_fault;
use crate::memory::GuestMemoryMmap;
use crate::report::Reporter;

const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR_ID: u32 = 0x5250_4356; // "VCPR"

pub const STATUS_ACKNOWLEDGE: u32 = 1;
pub const STATUS_DRIVER: u32 = 2;
pub const STATUS_DRIVER_OK: u32 = 4;
pub const STATUS_FEATURES_OK: u32 = 8;
pub const STATUS_DEVICE_NEEDS_RESET: u32 = 0x40;
pub const STATUS_FAILED: u32 = 0x80;

const INT_USED_RING: u32 = 1;
const INT_CONFIG: u32 = 2;

/// One virtio device as the guest sees it at its MMIO window.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    queues: Vec<Queue>,
    mem: GuestMemoryMmap,
    irq: EventFd,
    report: Arc<Reporter>,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    interrupt_status: u32,
    config_generation: u32,
    /// Per queue, the rings (RING_DESC, RING_AVAIL, RING_USED) whose last
    /// address written was misaligned. `virtio-queue` refuses such an
    /// address and keeps the previous one (0 after a reset): without this
    /// the device would run, or hand its backend, rings at an address the
    /// driver never chose.
    misaligned: Vec<u8>,
    /// Per queue, whether it is not ready or its size and rings lie in
    /// guest memory where the driver put them ([`MmioTransport::queue_ok`]),
    /// found when the driver set DRIVER_OK: queue registers cannot change
    /// while the device is live, so this holds until a reset.
    valid: Vec<bool>,
}

const RING_DESC: u8 = 1;
const RING_AVAIL: u8 = 2;
const RING_USED: u8 = 4;

impl MmioTransport {
    pub fn new(device: Box<dyn VirtioDevice>, mem: GuestMemoryMmap, irq: EventFd, report: Arc<Reporter>) -> crate::Result<Self> {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&max| Queue::new(max).map_err(|e| crate::Error::Config(format!("virtqueue: {e}"))))
            .collect::<crate::Result<Vec<_>>>()?;
        let misaligned = vec![0; queues.len()];
        let valid = vec![false; queues.len()];
        Ok(MmioTransport {
            device,
            queues,
            mem,
            irq,
            report,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
            config_generation: 0,
            misaligned,
            valid,
        })
    }

    pub fn device_name(&self) -> &'static str {
        self.device.name()
    }

    fn device_features(&self) -> u64 {
        self.device.features() | VIRTIO_F_VERSION_1
    }

    fn reset(&mut self) {
        for q in &mut self.queues {
            q.reset();
        }
        self.misaligned.fill(0);
        self.valid.fill(false);
        self.device.reset();
        self.status = 0;
        self.driver_features = 0;
        self.driver_features_sel = 0;
        self.device_features_sel = 0;
        self.queue_sel = 0;
        self.interrupt_status = 0;
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        let sel = self.queue_sel as usize;
        match self.queues.get_mut(sel) {
            Some(q) => Some(q),
            None => {
                let name = self.device.name();
                guest_fault!(self.report, "virtio bad queue index", "{name}: queue {sel}");
                None
            }
        }
    }

    /// Whether queue `index` (ready) has its size and rings where the
    /// driver put them, inside guest memory.
    fn queue_ok(&self, index: usize) -> bool {
        self.misaligned.get(index) == Some(&0) && self.queues.get(index).is_some_and(|q| q.is_valid(&self.mem))
    }

    fn signal_used(&mut self) {
        self.interrupt_status |= INT_USED_RING;
        if let Err(e) = self.irq.write(1) {
            self.report.quiet("virtio irq failed", format_args!("{e}"));
        }
    }

    /// Marks the device broken after a fatal guest error, as the spec
    /// allows (DEVICE_NEEDS_RESET and a configuration interrupt).
    fn needs_reset(&mut self) {
        self.status |= STATUS_DEVICE_NEEDS_RESET;
        self.interrupt_status |= INT_CONFIG;
        let _ = self.irq.write(1);
        self.device.host_blocked();
    }

    fn ready_to_process(&mut self, index: usize) -> bool {
        let name = self.device.name();
        if self.status & STATUS_DRIVER_OK == 0 || self.status & STATUS_DEVICE_NEEDS_RESET != 0 {
            guest_fault!(self.report, "virtio notify while not live", "{name}: queue {index}, status {:#x}", self.status);
            return false;
        }
        let Some(q) = self.queues.get(index) else {
            guest_fault!(self.report, "virtio bad queue index", "{name}: notify of queue {index}");
            return false;
        };
        if !q.ready() {
            guest_fault!(self.report, "virtio notify of a queue not ready", "{name}: queue {index}");
            return false;
        }
        if self.valid.get(index) != Some(&true) {
            guest_fault!(self.report, "virtio invalid queue", "{name}: queue {index} (size or rings outside memory)");
            self.needs_reset();
            return false;
        }
        true
    }

    /// The guest notified queue `index`.
    fn notify(&mut self, index: usize) {
        if !self.ready_to_process(index) {
            return;
        }
        if self.device.process_queue(index, &mut self.queues, &self.mem, &self.report) {
            self.signal_used();
        }
    }

    /// The host side changed: data or room for the guest, a client came or
    /// went (called by the event loop); `source` is the device's host end
    /// that had the event ([`VirtioDevice::host_event`]).
    pub fn host_event(&mut self, source: usize) {
        let live = self.status & STATUS_DRIVER_OK != 0 && self.status & STATUS_DEVICE_NEEDS_RESET == 0;
        if !live || self.valid.contains(&false) {
            self.device.host_blocked();
            return;
        }
        if self.device.host_event(source, &mut self.queues, &self.mem, &self.report) {
            self.signal_used();
        }
    }

    /// The device's vhost-user backend used buffers (its call eventfd
    /// fired): set the used-ring interrupt bit and raise the IRQ.
    pub fn backend_interrupt(&mut self) {
        if self.status & STATUS_DRIVER_OK != 0 {
            self.signal_used();
        }
    }

    /// The device's backend is gone: DEVICE_NEEDS_RESET and a
    /// configuration interrupt, if the device is live.
    pub fn backend_failed(&mut self) {
        if self.status & STATUS_DRIVER_OK != 0 && self.status & STATUS_DEVICE_NEEDS_RESET == 0 {
            self.needs_reset();
        }
    }

    /// A guest read at `offset` in the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= 0x100 {
            if !self.device.read_config(offset - 0x100, data) {
                let name = self.device.name();
                guest_fault!(
                    self.report,
                    "virtio bad config access",
                    "{name}: read of {} bytes at config offset {:#x}",
                    data.len(),
                    offset - 0x100
                );
            }
            return;
        }
        if data.len() != 4 || !offset.is_multiple_of(4) {
            let name = self.device.name();
            guest_fault!(self.report, "virtio bad register access", "{name}: read of {} bytes at {offset:#x}", data.len());
            data.fill(0xff);
            return;
        }
        let features = self.device_features();
        let v: u32 = match offset {
            0x000 => MAGIC,
            0x004 => VERSION,
            0x008 => self.device.device_type(),
            0x00c => VENDOR_ID,
            0x010 => match self.device_features_sel {
                0 => features as u32,
                1 => (features >> 32) as u32,
                _ => 0,
            },
            0x034 => self.selected_queue().map(|q| u32::from(q.max_size())).unwrap_or(0),
            0x044 => self.selected_queue().map(|q| u32::from(q.ready())).unwrap_or(0),
            0x060 => self.interrupt_status,
            0x070 => self.status,
            0x0fc => self.config_generation,
            _ => {
                let name = self.device.name();
                guest_fault!(self.report, "virtio bad register access", "{name}: read of {offset:#x}");
                0
            }
        };
        data.copy_from_slice(&v.to_le_bytes());
    }

    /// A guest write at `offset` in the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let name = self.device.name();
        if offset >= 0x100 {
            // Only a write the device took changes the configuration.
            if self.device.write_config(offset - 0x100, data) {
                self.config_generation = self.config_generation.wrapping_add(1);
            } else {
                guest_fault!(
                    self.report,
                    "virtio bad config access",
                    "{name}: write of {} bytes at config offset {:#x}",
                    data.len(),
                    offset - 0x100
                );
            }
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            guest_fault!(self.report, "virtio bad register access", "{name}: write of {} bytes at {offset:#x}", data.len());
            return;
        };
        if !offset.is_multiple_of(4) {
            guest_fault!(self.report, "virtio bad register access", "{name}: unaligned write at {offset:#x}");
            return;
        }
        let v = u32::from_le_bytes(bytes);
        // Queue setup is allowed only while the driver sets the device up.
        let setting_up = self.status & STATUS_DRIVER_OK == 0;
        match offset {
            0x014 => self.device_features_sel = v,
            0x020 => {
                if self.status & STATUS_FEATURES_OK != 0 {
                    guest_fault!(self.report, "virtio bad state", "{name}: features written after FEATURES_OK");
                    return;
                }
                let offered = self.device_features();
                match self.driver_features_sel {
                    0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v),
                    1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32),
                    sel => {
                        guest_fault!(self.report, "virtio bad register access", "{name}: driver features page {sel}");
                        return;
                    }
                }
                if self.driver_features & !offered != 0 {
                    guest_fault!(
                        self.report,
                        "virtio bad feature",
                        "{name}: driver asked for {:#x}, offered {offered:#x}",
                        self.driver_features
                    );
                    self.driver_features &= offered;
                }
            }
            0x024 => self.driver_features_sel = v,
            0x030 => self.queue_sel = v,
            0x038 | 0x044 | 0x080 | 0x084 | 0x090 | 0x094 | 0x0a0 | 0x0a4 => {
                if !setting_up {
                    guest_fault!(self.report, "virtio bad state", "{name}: queue register {offset:#x} written while live");
                    return;
                }
                let report = self.report.clone();
                let sel = self.queue_sel as usize;
                if self.selected_queue().is_none() {
                    return;
                }
                // The alignment the spec requires of each ring (2.7).
                let (ring, align) = match offset {
                    0x080 => (RING_DESC, 16),
                    0x090 => (RING_AVAIL, 2),
                    0x0a0 => (RING_USED, 4),
                    _ => (0, 1),
                };
                if ring != 0 {
                    let bad = v % align != 0;
                    if bad {
                        guest_fault!(
                            report,
                            "virtio bad ring address",
                            "{name}: queue {sel}: {v:#x} at {offset:#x}, want {align}-byte alignment"
                        );
                    }
                    if let Some(m) = self.misaligned.get_mut(sel) {
                        *m = if bad { *m | ring } else { *m & !ring };
                    }
                    if bad {
                        return;
                    }
                }
                let Some(q) = self.queues.get_mut(sel) else { return };
                match offset {
                    0x038 => {
                        if v == 0 || v > u32::from(q.max_size()) || !v.is_power_of_two() {
                            guest_fault!(report, "virtio bad queue size", "{name}: {v}");
                        } else {
                            q.set_size(v as u16);
                        }
                    }
                    0x044 => q.set_ready(v == 1),
                    0x080 => q.set_desc_table_address(Some(v), None),
                    0x084 => q.set_desc_table_address(None, Some(v)),
                    0x090 => q.set_avail_ring_address(Some(v), None),
                    0x094 => q.set_avail_ring_address(None, Some(v)),
                    0x0a0 => q.set_used_ring_address(Some(v), None),
                    _ => q.set_used_ring_address(None, Some(v)),
                }
            }
            0x050 => self.notify(v as usize),
            0x064 => self.interrupt_status &= !v,
            0x070 => self.set_status(v),
            _ => guest_fault!(self.report, "virtio bad register access", "{name}: write of {v:#x} to {offset:#x}"),
        }
    }

    fn set_status(&mut self, v: u32) {
        let name = self.device.name();
        if v == 0 {
            self.reset();
            return;
        }
        // The driver only adds bits, one step at a time.
        if v & self.status != self.status {
            guest_fault!(self.report, "virtio bad state", "{name}: status {:#x} -> {v:#x}", self.status);
            return;
        }
        let new = v & !self.status;
        if new & STATUS_FEATURES_OK != 0 && self.driver_features & VIRTIO_F_VERSION_1 == 0 {
            guest_fault!(self.report, "virtio bad feature", "{name}: driver did not accept VIRTIO_F_VERSION_1");
            self.status = v & !STATUS_FEATURES_OK;
            return;
        }
        if new & STATUS_DRIVER_OK != 0 {
            if self.status & STATUS_FEATURES_OK == 0 {
                guest_fault!(self.report, "virtio bad state", "{name}: DRIVER_OK before FEATURES_OK");
                return;
            }
            if let Some(index) = (0..self.queues.len()).find(|&i| self.queues[i].ready() && self.misaligned[i] != 0) {
                guest_fault!(self.report, "virtio invalid queue", "{name}: queue {index}: misaligned ring address");
                self.status = v;
                self.needs_reset();
                return;
            }
            for i in 0..self.queues.len() {
                self.valid[i] = !self.queues[i].ready() || self.queue_ok(i);
            }
            let event_idx = self.driver_features & (1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX) != 0;
            for q in &mut self.queues {
                q.set_event_idx(event_idx);
            }
            self.status = v;
            match self.device.activate(&self.queues, &self.mem, self.driver_features) {
                Ok(()) => {}
                Err(ActivateError::Guest(e)) => {
                    guest_fault!(self.report, "virtio device start failed", "{e}");
                    self.needs_reset();
                }
                Err(ActivateError::Backend(e)) => {
                    self.report.host_error("virtio device start failed", format_args!("{e}"));
                    self.needs_reset();
                }
            }
            return;
        }
        self.status = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    /// A device with one queue that counts the chains it is notified of.
    struct Probe(u16);

    impl VirtioDevice for Probe {
        fn device_type(&self) -> u32 {
            2
        }
        fn name(&self) -> &'static str {
            "probe"
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[8]
        }
        fn features(&self) -> u64 {
            0
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) -> bool {
            super::super::read_config_bytes(&[1, 2], offset, data)
        }
        fn process_queue(&mut self, _: usize, _: &mut [Queue], _: &GuestMemoryMmap, _: &Reporter) -> bool {
            self.0 += 1;
            false
        }
    }

    fn w(t: &mut MmioTransport, offset: u64, v: u32) {
        t.write(offset, &v.to_le_bytes());
    }

    fn transport() -> (MmioTransport, Arc<Reporter>) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let report = Arc::new(Reporter::new(false));
        let t = MmioTransport::new(Box::new(Probe(0)), mem, EventFd::new(EFD_NONBLOCK).unwrap(), report.clone()).unwrap();
        (t, report)
    }

    /// Sets queue 0 up at desc/avail/used and starts the device.
    fn start(t: &mut MmioTransport, desc: u32, avail: u32, used: u32) {
        w(t, 0x070, 0);
        w(t, 0x070, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        w(t, 0x024, 1);
        w(t, 0x020, 1);
        w(t, 0x070, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        w(t, 0x030, 0);
        w(t, 0x038, 8);
        w(t, 0x080, desc);
        w(t, 0x090, avail);
        w(t, 0x0a0, used);
        w(t, 0x044, 1);
        w(t, 0x070, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    }

    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    /// Regression: a misaligned ring address used to be dropped by
    /// virtio-queue, which kept the old one (0 after a reset), and the
    /// device then ran (or a vhost-user backend was given) rings the
    /// driver never placed there. Now it is reported and the device
    /// refuses to start until a reset and an aligned address.
    #[test]
    fn misaligned_rings_are_refused() {
        for (desc, avail, used) in [(0x1008, 0x2000, 0x3000), (0x1000, 0x2001, 0x3000), (0x1000, 0x2000, 0x3002)] {
            let (mut t, report) = transport();
            start(&mut t, desc, avail, used);
            assert_ne!(t.status & STATUS_DEVICE_NEEDS_RESET, 0, "{desc:#x} {avail:#x} {used:#x}");
            assert_eq!(report.count("virtio bad ring address"), 1);
            w(&mut t, 0x050, 0);
            start(&mut t, 0x1000, 0x2000, 0x3000);
            assert_eq!(t.status & STATUS_DEVICE_NEEDS_RESET, 0);
            w(&mut t, 0x050, 0);
            assert_eq!(t.queues[0].desc_table(), 0x1000);
        }
    }

    /// A ring outside memory is found when the driver sets DRIVER_OK and
    /// refused (reported, DEVICE_NEEDS_RESET) when the queue is used.
    #[test]
    fn queue_outside_memory_is_refused_when_used() {
        let (mut t, report) = transport();
        start(&mut t, 0x20000, 0x2000, 0x3000);
        assert_eq!(t.status & STATUS_DEVICE_NEEDS_RESET, 0);
        t.host_event(0);
        assert_eq!(report.count("virtio invalid queue"), 0);
        w(&mut t, 0x050, 0);
        assert_eq!(report.count("virtio invalid queue"), 1);
        assert_ne!(t.status & STATUS_DEVICE_NEEDS_RESET, 0);
        start(&mut t, 0x1000, 0x2000, 0x3000);
        w(&mut t, 0x050, 0);
        assert_eq!(t.status & STATUS_DEVICE_NEEDS_RESET, 0);
        assert_eq!(report.count("virtio invalid queue"), 1);
    }

    /// Config reads past the end and writes to a read-only config are
    /// reported, and such a write does not change the generation.
    #[test]
    fn bad_config_accesses_are_reported() {
        let (mut t, report) = transport();
        let mut d = [0u8; 4];
        t.read(0x100, &mut d[..2]);
        assert_eq!(report.count("virtio bad config access"), 0);
        t.read(0x101, &mut d);
        assert_eq!(d, [2, 0, 0, 0]);
        t.write(0x100, &[9]);
        assert_eq!(report.count("virtio bad config access"), 2);
        t.read(0x0fc, &mut d);
        assert_eq!(d, [0; 4], "generation");
    }
}

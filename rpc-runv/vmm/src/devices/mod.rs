//! The devices of a VM and the dispatch of guest port and MMIO accesses
//! to them. Every access is bounds-checked here or in the device: an
//! access to nothing reads as all-ones and is reported, never a panic.

pub mod i8042;
pub mod serial;
pub mod virtio;

use std::sync::{Arc, Mutex};

use crate::lock;

use crate::guest_fault;
use crate::layout::{EXIT_PORT, I8042_COMMAND_PORT, I8042_DATA_PORT, SERIAL_PORT};
use crate::report::Reporter;
use crate::vm::VmExit;
use serial::SerialConsole;
use virtio::mmio::MmioTransport;

/// All devices of a VM, shared by its vCPU threads and event loop.
pub struct Devices {
    pub serial: Mutex<SerialConsole>,
    /// virtio-mmio devices at increasing 4 KiB slots.
    pub virtio: Vec<Arc<Mutex<MmioTransport>>>,
    pub reporter: Arc<Reporter>,
}

impl Devices {
    /// A guest `in` from `port` into `data` (1, 2 or 4 bytes, or more for
    /// `rep ins`).
    pub fn pio_read(&self, port: u16, data: &mut [u8]) {
        match port {
            p if (SERIAL_PORT..SERIAL_PORT + 8).contains(&p) => {
                let mut s = lock(&self.serial);
                for b in data.iter_mut() {
                    *b = s.read((p - SERIAL_PORT) as u8);
                }
            }
            I8042_DATA_PORT | I8042_COMMAND_PORT => data.fill(i8042::read(port)),
            _ => {
                data.fill(0xff);
                self.reporter.quiet("port read of no device", format_args!("{port:#x}"));
            }
        }
    }

    /// A guest `out` of `data` to `port`; `Some` when it stops the VM.
    pub fn pio_write(&self, port: u16, data: &[u8]) -> Option<VmExit> {
        let first = *data.first()?;
        match port {
            p if (SERIAL_PORT..SERIAL_PORT + 8).contains(&p) => {
                let mut s = lock(&self.serial);
                for b in data {
                    if let Err(e) = s.write((p - SERIAL_PORT) as u8, *b) {
                        self.reporter.quiet("serial output failed", format_args!("{e}"));
                    }
                }
                None
            }
            I8042_DATA_PORT | I8042_COMMAND_PORT => match i8042::write(port, first) {
                i8042::I8042Action::Reset => Some(VmExit::Reset),
                i8042::I8042Action::None => None,
            },
            EXIT_PORT => Some(VmExit::Status(first)),
            _ => {
                self.reporter.quiet("port write to no device", format_args!("{port:#x} <- {first:#x}"));
                None
            }
        }
    }

    fn virtio_at(&self, addr: u64) -> Option<(&Arc<Mutex<MmioTransport>>, u64)> {
        let off = addr.checked_sub(crate::layout::VIRTIO_MMIO_BASE)?;
        let slot = usize::try_from(off / crate::layout::VIRTIO_MMIO_SIZE).ok()?;
        Some((self.virtio.get(slot)?, off % crate::layout::VIRTIO_MMIO_SIZE))
    }

    /// A guest MMIO read at `addr` into `data`.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        match self.virtio_at(addr) {
            Some((dev, off)) => lock(dev).read(off, data),
            None => {
                data.fill(0xff);
                guest_fault!(self.reporter, "MMIO read of no device", "{addr:#x} ({} bytes)", data.len());
            }
        }
    }

    /// A guest MMIO write of `data` at `addr`.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) {
        match self.virtio_at(addr) {
            Some((dev, off)) => lock(dev).write(off, data),
            None => {
                guest_fault!(self.reporter, "MMIO write to no device", "{addr:#x} ({} bytes)", data.len());
            }
        }
    }
}
